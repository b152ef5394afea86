"""The safe formula compiler: ``"a*t**2 + b*t + c"`` -> torch operations.

The text is parsed once with :mod:`ast` and every node is checked against a whitelist
(numbers, names, ``+ - * / **``, unary ``-``/``+``, calls of the functions in
:mod:`gradfit.models.formula_functions`). A name that is not a Python identifier (a column
called ``body mass`` or ``CO2 (ppm)``) is written between backquotes: ``a * `body mass` + b``.
Allowed nodes become small closures that call torch; evaluating a :class:`Formula` never looks
at the text again, and nothing the user wrote is ever executed (no ``eval``, ``exec``, bytecode
or attribute lookup on user names).
"""

from __future__ import annotations

import ast
import functools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NoReturn

import torch
from torch import Tensor

from gradfit.errors import FormulaError, ModelError
from gradfit.models.formula_functions import (
    BINARY,
    CONSTANTS,
    FAMILY,
    FUNCTIONS,
    HINT,
    REFUSED,
    SYMBOLS,
    allowed_functions,
)

MAX_LENGTH = 10_000
MAX_NODES = 2_000
MAX_DEPTH = 100

# A compiled part of a formula: the variables' values and the context -> its values.
_Node = Callable[[Mapping[str, Tensor], "_Context"], Tensor]
# The whole formula: a constant one gives its number as it is (evaluate() makes it a tensor).
_Root = Callable[[Mapping[str, Tensor], "_Context"], "Tensor | float"]
# What the parser gives a position: every expression, and a call's keyword arguments.
_Positioned = ast.expr | ast.keyword


@dataclass(frozen=True)
class _Context:
    """What one evaluation needs besides the variables: where numbers become tensors."""

    dtype: torch.dtype
    device: torch.device | None
    aggregates: Mapping[int, Tensor | float] | None = None  # values of reductions, by index, given from outside

    def tensor(self, value: Tensor | float) -> Tensor:
        if isinstance(value, Tensor):
            return value
        return torch.tensor(value, dtype=self.dtype, device=self.device)


def _apply(op: Callable, a: Tensor | float, b: Tensor | float, ctx: _Context) -> Tensor:
    # A Python number next to a tensor takes the tensor's dtype; two numbers must not be
    # combined by Python (1/0 would raise, 2**0.5 would be float64), so one becomes a tensor.
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = ctx.tensor(a)
    return op(a, b)


@dataclass(frozen=True)
class Reduction:
    """One ``sum(...)`` or ``mean(...)`` in a formula.

    Attributes
    ----------
    index : int
        Its position among the formula's reductions; inner ones come first.
    function : str
        ``"sum"`` or ``"mean"``.
    text : str
        The call as written, e.g. ``"mean(x)"``.
    names : tuple of str
        Every name its argument uses.
    row_names : tuple of str
        The names its argument uses outside inner reductions: where these are data columns, the
        reduction runs over rows.
    span : (int, int)
        Where it stands in the formula: (offset, length).
    """

    index: int
    function: str
    text: str
    names: tuple[str, ...]
    row_names: tuple[str, ...]
    span: tuple[int, int]


REDUCTIONS = ("sum", "mean")


@dataclass(frozen=True)
class Formula:
    """A compiled formula. Build it with :func:`compile_formula`.

    Attributes
    ----------
    text : str
        The formula as given.
    names : tuple of str
        Its free variables in order of first appearance (functions and constants excluded).
    """

    text: str
    names: tuple[str, ...]
    _root: _Root = field(repr=False, compare=False)
    spans: Mapping[str, tuple[int, int]] = field(default_factory=dict, repr=False, compare=False)
    """Where each name first appears in ``text``: (offset, length), backquotes included."""
    constants: tuple[str, ...] = field(default=(), compare=False)
    """The named constants it uses (``pi``, ``e``), in order of first appearance."""
    reductions: tuple[Reduction, ...] = field(default=(), compare=False)
    """Its ``sum(...)``/``mean(...)`` calls, inner ones first (see :meth:`reduction_total`)."""
    _reduction_args: tuple = field(default=(), repr=False, compare=False)
    size: int = field(default=1, compare=False)
    """Its number of parts (numbers, names, operations): each holds one value per row while it is evaluated."""

    def evaluate(
        self,
        env: Mapping[str, Tensor | float],
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        aggregates: Mapping[int, Tensor | float] | None = None,
    ) -> Tensor:
        """The formula's value for the variables in ``env``.

        Numbers in the formula take the dtype and device of the first tensor among the
        formula's variables in ``env`` (float32 on the CPU when there is none), unless
        ``dtype``/``device`` are given. ``aggregates`` gives the values of reductions by their
        index (see :attr:`reductions`): those are used instead of reducing what ``env`` holds.

        Examples
        --------
        >>> f = compile_formula("a*t**2 + b")
        >>> f.evaluate({"a": 2.0, "t": torch.tensor([1.0, 3.0]), "b": 1.0})
        tensor([ 3., 19.])
        >>> compile_formula("t - mean(t)").evaluate({"t": torch.tensor([1.0, 3.0])}, aggregates={0: 0.0})
        tensor([1., 3.])
        """
        values, ctx = self._prepare(env, self.names, dtype, device, aggregates)
        return ctx.tensor(self._root(values, ctx))

    def reduction_total(
        self,
        index: int,
        env: Mapping[str, Tensor | float],
        *,
        dtype: torch.dtype | None = None,
        aggregates: Mapping[int, Tensor | float] | None = None,
    ) -> tuple[Tensor, int]:
        """The float64 sum of reduction ``index``'s argument over the values in ``env``, and how many were summed.

        Summed over chunks of rows, these give a ``sum()`` or ``mean()`` over all the rows whatever the
        chunking; ``env`` needs only the names the argument uses (inner reductions from ``aggregates``).

        Examples
        --------
        >>> f = compile_formula("a*(x - mean(x))")
        >>> f.reduction_total(0, {"x": torch.tensor([1.0, 2.0])})
        (tensor(3., dtype=torch.float64), 2)
        """
        reduction = self.reductions[index]
        values, ctx = self._prepare(env, reduction.names, dtype, None, aggregates)
        arg = self._reduction_args[index]
        value = ctx.tensor(arg(values, ctx) if callable(arg) else arg)
        return value.double().sum(), value.numel()

    def _prepare(self, env, names, dtype, device, aggregates):
        missing = [n for n in names if n not in env]
        if missing:
            raise ModelError(
                f"The formula {self.text.strip()!r} needs a value for {', '.join(map(repr, missing))}. "
                f"Got values for: {', '.join(map(repr, env)) or '(nothing)'}. Give every name in {list(self.names)}."
            )
        used = [env[n] for n in names]
        tensors = [v for v in used if isinstance(v, Tensor)]
        if dtype is None:
            dtype = next((t.dtype for t in tensors if t.is_floating_point()), torch.float32)
        if device is None and tensors:
            device = tensors[0].device
        ctx = _Context(dtype, None if device is None else torch.device(device), aggregates)
        values = {}
        for name, value in zip(names, used):
            if not isinstance(value, Tensor):
                try:
                    value = torch.as_tensor(value, dtype=dtype, device=ctx.device)
                except (TypeError, ValueError, RuntimeError) as err:
                    raise ModelError(
                        f"The value of {name!r} must be a tensor or a number. Got {type(value).__name__} instead."
                    ) from err
            values[name] = value
        return values, ctx

    def __reduce__(self):
        # Closures cannot be pickled; the text is enough to rebuild them.
        return (compile_formula, (self.text,))

    def __repr__(self) -> str:
        return f"Formula({self.text!r}, names={self.names!r})"


def compile_formula(text: str) -> Formula:
    """Parse and check ``text`` once and compile it into torch operations.

    Parameters
    ----------
    text : str
        One Python-style arithmetic expression, e.g. ``"b1*(1-exp(-b2*x))"``.

    Returns
    -------
    Formula

    Raises
    ------
    FormulaError
        For anything outside the whitelist, with a caret under the offending part.

    Examples
    --------
    >>> compile_formula("a*t**2 + b*t + c").names
    ('a', 't', 'b', 'c')
    >>> compile_formula("a * `body mass` + b").names
    ('a', 'body mass', 'b')
    """
    if not isinstance(text, str):
        raise FormulaError(f"The formula must be a string such as 'a*x + b'. Got {type(text).__name__} instead.")
    if not text.strip():
        raise FormulaError(f"The formula is empty. Write an expression such as 'a*x + b'. {HINT}", formula=text)
    if len(text) > MAX_LENGTH:
        raise FormulaError(
            f"The formula is {len(text):,} characters long; at most {MAX_LENGTH:,} are allowed. "
            "Shorten it or write the model as a Python function."
        )
    return _compiled(text)


@functools.lru_cache(maxsize=256)
def _compiled(text: str) -> Formula:
    """The checked and compiled formula, once per text: a fit reads its formula three times (the names, the
    default inputs, the model), each a parse, on small fits a tenth of the call. A Formula is immutable; errors
    are raised again each time (lru_cache keeps only results)."""
    _check_encoding(text)
    _check_bracket_depth(text)
    return _Compiler(text).run()


def _check_encoding(text: str) -> None:
    # A lone surrogate (e.g. a non-UTF-8 byte in argv, kept by surrogateescape) makes the parser raise
    # UnicodeEncodeError; the formula is not echoed, as it cannot be printed either.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise FormulaError(
            f"The formula holds a character that is not valid text (U+{ord(text[err.start]):04X}, "
            f"at offset {err.start}; often a byte that is not UTF-8). Retype it in plain text."
        ) from None


def _check_bracket_depth(text: str) -> None:
    # Python's parser can hit RecursionError/MemoryError on deep nesting, so refuse it first.
    depth = 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
            if depth > MAX_DEPTH:
                raise FormulaError(
                    f"The formula nests brackets deeper than {MAX_DEPTH} levels; "
                    f"at most {MAX_DEPTH} are allowed. Simplify it.",
                    formula=text,
                    offset=i,
                )
        elif ch in ")]}":
            depth -= 1


class _Compiler:
    """One compilation: the text, positions for carets, and the names met so far."""

    def __init__(self, text: str):
        self.text = text
        # Backquoted names become placeholders of the same length, so offsets (carets) stay the user's.
        masked, self.quoted = _mask_backquotes(text)
        self.source = masked.lstrip()
        self.shift = len(text) - len(self.source)  # the parser refuses leading indentation
        # Lines as the parser counts them: '\r' and '\r\n' end a line too.
        parts = re.split(r"(\r\n|\r|\n)", self.source)
        self.lines = parts[0::2]
        self.starts = [0]
        for line, end in zip(self.lines[:-1], parts[1::2]):
            self.starts.append(self.starts[-1] + len(line) + len(end))
        self.names: list[str] = []
        self.spans: dict[str, tuple[int, int]] = {}
        self.constants: list[str] = []
        self.reductions: list[Reduction] = []
        self.reduction_args: list = []

    def run(self) -> Formula:
        try:
            tree = ast.parse(self.source, mode="eval")
        except SyntaxError as err:
            self._syntax_error(err)
        except (RecursionError, MemoryError, ValueError, OverflowError) as err:
            raise FormulaError(
                f"The formula cannot be parsed ({type(err).__name__}); it is too deeply nested "
                f"or too large. Limits: {MAX_LENGTH:,} characters, {MAX_DEPTH} levels of nesting.",
                formula=self.text,
            ) from None
        n_nodes = sum(isinstance(n, ast.expr) for n in ast.walk(tree))
        if n_nodes > MAX_NODES:
            raise FormulaError(
                f"The formula has {n_nodes:,} parts (numbers, names, operations); at most "
                f"{MAX_NODES:,} are allowed. Simplify it or write the model as a Python function."
            )
        self._check_depth(tree.body)
        root = self.translate(tree.body)
        node = root if callable(root) else (lambda values, ctx, v=root: v)
        return Formula(
            self.text,
            tuple(self.names),
            node,
            self.spans,
            tuple(self.constants),
            tuple(self.reductions),
            tuple(self.reduction_args),
            n_nodes,
        )

    # -- positions and errors ----------------------------------------------------------------

    def offset(self, lineno: int, col_bytes: int) -> int:
        line = self.lines[lineno - 1]
        col = len(line.encode("utf-8")[:col_bytes].decode("utf-8", errors="ignore"))  # ast counts UTF-8 bytes
        return self.shift + self.starts[lineno - 1] + col

    def span(self, node: _Positioned) -> tuple[int, int]:
        start = self.offset(node.lineno, node.col_offset)
        return start, self.end(node) - start

    def end(self, node: _Positioned) -> int:
        """The offset just after ``node``."""
        assert node.end_lineno is not None and node.end_col_offset is not None  # ast.parse sets them on every node
        return self.offset(node.end_lineno, node.end_col_offset)

    def fail(self, message: str, node: _Positioned | None = None, span: tuple[int, int] | None = None) -> NoReturn:
        if span is None:
            assert node is not None, "fail() needs the node or the span at fault"
            span = self.span(node)
        start, length = span
        raise FormulaError(message, formula=self.text, offset=start, length=length)

    def _syntax_error(self, err: SyntaxError) -> NoReturn:
        lineno, col = err.lineno or 1, max(1, err.offset or 1) - 1
        start = self.shift + self.starts[min(lineno, len(self.starts)) - 1] + col
        end = err.end_offset or 0
        length = (end - 1 - col) if err.end_lineno == lineno and end > col + 1 else 1
        start = min(start, max(0, len(self.text) - 1))
        found = self.text[start : start + 1]
        if found == "=":  # the usual slip: 'y = a*x + b'
            reason = "assignments ('=') are not allowed; write only the right-hand side, e.g. 'a*x + b'"
        elif found == ";":
            reason = "';' separates statements; a formula is one expression"
        elif "integer string conversion" in str(err.msg):
            reason = "a number has more than 4,300 digits; write it with an exponent, e.g. 1.5e300"
        else:
            reason = f"{err.msg}; it must be one expression such as 'a*x + b'"
        raise FormulaError(
            f"The formula is not a valid expression: {reason}. {HINT}", formula=self.text, offset=start, length=length
        ) from None

    def _check_depth(self, root: ast.expr) -> None:
        stack = [(root, 1)]  # explicit stack: a deep tree must not overflow Python's own stack
        while stack:
            node, depth = stack.pop()
            if depth > MAX_DEPTH:
                self.fail(
                    f"The formula nests operations deeper than {MAX_DEPTH} levels; at most "
                    f"{MAX_DEPTH} are allowed. Simplify it.",
                    node,
                )
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.expr):
                    flat = (
                        isinstance(node, ast.BinOp)
                        and child is node.left
                        and isinstance(child, ast.BinOp)
                        and FAMILY.get(type(child.op), 0) == FAMILY.get(type(node.op), 1)
                    )
                    stack.append((child, depth if flat else depth + 1))

    # -- compiling ---------------------------------------------------------------------------

    def translate(self, node: ast.expr) -> _Node | float:
        """A closure computing ``node``, or a plain float for a literal (folded where exact)."""
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.BinOp):
            return self._binop(node)
        if isinstance(node, ast.UnaryOp):
            return self._unary(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.Attribute):
            while isinstance(node.value, ast.Attribute):  # point at the first '.name' of a chain
                node = node.value
            start, end = self.end(node.value), self.end(node)
            self.fail(
                f"attribute access ('.{node.attr}') is not allowed in a formula. {HINT}", span=(start, end - start)
            )
        message = REFUSED.get(type(node), f"{type(node).__name__} expressions are not allowed in a formula")
        self.fail(f"{message}. {HINT}", node)

    def _constant(self, node: ast.Constant) -> float:
        value = node.value
        if isinstance(value, bool) or value is None or value is Ellipsis:
            self.fail(f"{value!r} is not allowed in a formula; only numbers are. {HINT}", node)
        if isinstance(value, (str, bytes)):
            self.fail(f"strings are not allowed in a formula. {HINT}", node)
        if isinstance(value, complex):
            self.fail("complex numbers (such as 1j) are not allowed in a formula; use real numbers.", node)
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            self.fail("this number is too large to be a finite float.", node)
        return number

    def _name(self, node: ast.Name) -> _Node | float:
        name = node.id
        if name in self.quoted:  # a backquoted name is always a variable, even `exp` or `pi`
            return self._variable(self.quoted[name], node)
        if name.startswith("_"):
            self.fail(f"names starting with '_' are not allowed in a formula. Got {name!r}; rename it.", node)
        if name in FUNCTIONS:
            self.fail(f"{name} is a function; call it as {name}(...).", node)
        if name in CONSTANTS:
            if name not in self.constants:
                self.constants.append(name)
            return CONSTANTS[name]
        return self._variable(name, node)

    def _variable(self, name: str, node: ast.Name) -> _Node:
        if name not in self.names:
            self.names.append(name)
            self.spans[name] = self.span(node)
        return lambda values, ctx: values[name]

    def _binop(self, node: ast.BinOp) -> _Node:
        family = FAMILY.get(type(node.op))
        steps = []
        while True:  # unroll a left-associative chain iteratively
            if type(node.op) not in BINARY:
                self._bad_operator(node)
            steps.append((BINARY[type(node.op)], node.right))
            if family is None or not (isinstance(node.left, ast.BinOp) and FAMILY.get(type(node.left.op)) == family):
                break
            node = node.left
        first = self.translate(node.left)
        ops = [(op, self.translate(right)) for op, right in reversed(steps)]

        def chain(values, ctx):
            acc = first(values, ctx) if callable(first) else first
            for op, item in ops:
                acc = _apply(op, acc, item(values, ctx) if callable(item) else item, ctx)
            return acc

        return chain

    def _bad_operator(self, node: ast.BinOp) -> NoReturn:
        symbol = SYMBOLS.get(type(node.op), type(node.op).__name__)
        start = self.end(node.left)
        found = self.text.find(symbol, start)
        span = (found, len(symbol)) if found >= 0 else self.span(node)
        if symbol == "^":
            self.fail(
                "'^' is not a power operator in formulas (it is bitwise xor in Python); "
                "write powers with '**', e.g. x**2.",
                span=span,
            )
        self.fail(f"the operator '{symbol}' is not allowed in a formula; allowed operators are + - * / **.", span=span)

    def _unary(self, node: ast.UnaryOp) -> _Node | float:
        if not isinstance(node.op, (ast.USub, ast.UAdd)):
            symbol = "not" if isinstance(node.op, ast.Not) else "~"
            self.fail(f"the operator '{symbol}' is not allowed in a formula; allowed are unary - and +.", node)
        operand = self.translate(node.operand)
        if isinstance(node.op, ast.UAdd):
            return operand
        if not callable(operand):
            return -operand  # exact, so -2 stays a literal
        return lambda values, ctx: torch.neg(operand(values, ctx))

    def _call(self, node: ast.Call) -> _Node:
        if isinstance(node.func, ast.Name) and node.func.id in self.quoted:
            self.fail(
                f"`{self.quoted[node.func.id]}` is a name, not a function; write an operator after it, "
                f"e.g. `{self.quoted[node.func.id]}`*(...).",
                node.func,
            )
        if not isinstance(node.func, ast.Name):
            if isinstance(node.func, ast.Attribute):
                self.translate(node.func)  # reports the attribute access
            self.fail(f"only allowed functions can be called, by name, e.g. exp(x). {HINT}", node.func)
        name = node.func.id
        if name in CONSTANTS:
            self.fail(f"{name} is a constant, not a function; write {name}*(...) to multiply.", node.func)
        if name not in FUNCTIONS:
            self.fail(f"unknown function {name!r}; allowed functions are: {allowed_functions()}.", node.func)
        spec = FUNCTIONS[name]
        if node.keywords:
            self.fail(f"keyword arguments are not allowed in a formula; write {spec.usage}.", node.keywords[0])
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                self.fail(f"starred arguments (*x) are not allowed in a formula; write {spec.usage}.", arg)
        if len(node.args) != spec.arity:
            plural = "argument" if spec.arity == 1 else "arguments"
            self.fail(f"{name}() takes {spec.arity} {plural} ({spec.usage}); got {len(node.args)}.", node)
        args = [self.translate(arg) for arg in node.args]
        fn = spec.fn
        if spec.fn is FUNCTIONS["sum"].fn or spec.fn is FUNCTIONS["mean"].fn:
            return self._reduction(node, args[0], fn)

        def call(values, ctx):
            return fn(*(ctx.tensor(a(values, ctx) if callable(a) else a) for a in args))

        return call

    def _reduction(self, node: ast.Call, arg, fn) -> _Node:
        """A ``sum``/``mean`` call, numbered (after the ones inside it) so its value can be given from outside."""
        k = len(self.reductions)
        span = self.span(node)
        self.reductions.append(
            Reduction(
                k,
                "sum" if fn is FUNCTIONS["sum"].fn else "mean",
                self.text[span[0] : span[0] + span[1]],
                self._names_in(node.args[0], True),
                self._names_in(node.args[0], False),
                span,
            )
        )
        self.reduction_args.append(arg)

        def call(values, ctx):
            if ctx.aggregates is not None and k in ctx.aggregates:
                return ctx.tensor(ctx.aggregates[k])
            return fn(ctx.tensor(arg(values, ctx) if callable(arg) else arg))

        return call

    def _names_in(self, node: ast.expr, nested: bool) -> tuple[str, ...]:
        """The variables ``node`` uses, in order; without ``nested``, not those inside inner sum()/mean() calls."""
        found: list[str] = []
        stack: list[ast.AST] = [node]
        while stack:
            n = stack.pop()
            if isinstance(n, ast.Call) and not nested and isinstance(n.func, ast.Name) and n.func.id in REDUCTIONS:
                continue
            if isinstance(n, ast.Name):
                name = self.quoted.get(n.id)
                if name is None and n.id not in FUNCTIONS and n.id not in CONSTANTS:
                    name = n.id
                if name is not None and name not in found:
                    found.append(name)
            stack.extend(reversed(list(ast.iter_child_nodes(n))))
        return tuple(found)


def _mask_backquotes(text: str) -> tuple[str, dict[str, str]]:
    """``a*`body mass`` -> ``a*_0________`` and ``{"_0________": "body mass"}``.

    Each placeholder is an identifier starting with ``_`` (which user names may not), as long
    as the backquoted text it replaces, so the parser's offsets are the user's offsets.
    """
    if "`" not in text:
        return text, {}
    out: list[str] = []
    quoted: dict[str, str] = {}  # placeholder -> name
    by_name: dict[str, str] = {}  # name -> placeholder
    i = 0
    while i < len(text):
        start = text.find("`", i)
        if start < 0:
            out.append(text[i:])
            break
        out.append(text[i:start])
        end = text.find("`", start + 1)
        newline = next((k for k in range(start + 1, len(text) if end < 0 else end) if text[k] in "\r\n"), None)
        if end < 0 or newline is not None:
            raise FormulaError(
                "this backquote is not closed: write a name with spaces or symbols between two "
                "backquotes on one line, e.g. a*`body mass` + b.",
                formula=text,
                offset=start,
            )
        name = text[start + 1 : end]
        if not name.strip():
            raise FormulaError(
                "empty backquotes: write the column's name between them, e.g. `body mass`.",
                formula=text,
                offset=start,
                length=end - start + 1,
            )
        for k, side in ((start - 1, "before"), (end + 1, "after")):
            if 0 <= k < len(text) and (text[k].isalnum() or text[k] in "_.`"):
                raise FormulaError(
                    f"a backquoted name must stand on its own; write an operator {side} it, e.g. 2*`{name}`.",
                    formula=text,
                    offset=k,
                )
        length = end - start + 1
        placeholder = by_name.get(name)
        if placeholder is None:
            placeholder = _placeholder(len(by_name), length)
            if placeholder is None:
                raise FormulaError(
                    "too many different backquoted names of this length; give the columns "
                    "shorter names or use fewer of them.",
                    formula=text,
                    offset=start,
                    length=length,
                )
            by_name[name] = placeholder
            quoted[placeholder] = name
        out.append(placeholder)
        i = end + 1
    return "".join(out), quoted


_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _placeholder(k: int, length: int) -> str | None:
    """The k-th placeholder of ``length`` characters: ``_`` and k in base 62, padded with ``_``."""
    digits = ""
    while True:
        k, r = divmod(k, len(_DIGITS))
        digits = _DIGITS[r] + digits
        if k == 0:
            break
    tag = "_" + digits
    return tag.ljust(length, "_") if len(tag) <= length else None
