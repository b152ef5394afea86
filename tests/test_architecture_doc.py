"""docs/architecture.md matches the code: the paths it names exist, its layers are the import-linter contract,
its import table is the import graph.

The graph is read from the source with ``ast`` (every ``import gradfit...`` and ``from gradfit...
import``, inside functions and under ``TYPE_CHECKING`` too), one node per package of
``src/gradfit`` or per top-level module, the way the page names them.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "gradfit"
DOC = ROOT / "docs" / "architecture.md"


def node_of(module: str) -> str:
    """``gradfit.train.loop`` -> ``train/``; ``gradfit.api`` -> ``api.py``; ``gradfit`` -> ``__init__.py``."""
    parts = module.split(".")
    if len(parts) == 1:
        return "__init__.py"
    return f"{parts[1]}/" if (SRC / parts[1]).is_dir() else f"{parts[1]}.py"


def _is_module(dotted: str) -> bool:
    path = SRC.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in SRC.rglob("*.py"):
        module = ".".join(path.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__")
        source = node_of(module)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # `from gradfit import rowpass` imports the module rowpass, not the package's names
                targets = [
                    f"{node.module}.{a.name}" if _is_module(f"{node.module}.{a.name}") else node.module
                    for a in node.names
                ]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for target in targets:
                if target == "gradfit" or target.startswith("gradfit."):
                    if node_of(target) != source:
                        graph[source].add(node_of(target))
    return dict(graph)


def documented_graph() -> dict[str, set[str]]:
    text = DOC.read_text(encoding="utf-8")
    table = text[text.index("<!-- imports:") :].split("\n\n", 1)[0]
    graph = {}
    for row in re.findall(r"^\| `([^`]+)` \| (.+) \|$", table, re.MULTILINE):
        graph[row[0]] = set(re.findall(r"`([^`]+)`", row[1]))
    return graph


def test_the_import_table_is_the_import_graph_of_the_code():
    documented, actual = documented_graph(), import_graph()
    assert documented, "no import table found"
    for node in sorted(set(documented) | set(actual)):
        assert documented.get(node, set()) == actual.get(node, set()), node


def test_every_path_the_page_names_exists():
    text = DOC.read_text(encoding="utf-8")
    named = set(re.findall(r"\b((?:src|tests|docs)/[\w./]+?\.(?:py|md))\b", text))
    assert len(named) > 10
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert missing == []
    # the table of rooms names every package and top-level module there is, and nothing else
    rooms = text[text.index("## Each package's room") : text.index("## What each may import")]
    listed = set(re.findall(r"`([\w]+/|[\w]+\.py)`", rooms))
    on_disk = {f"{p.name}/" for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    on_disk |= {p.name for p in SRC.glob("*.py") if p.name != "__main__.py"}
    assert listed == on_disk


def test_short_paths_in_the_data_path_exist():
    """The data's path names some files relative to the package (``optim/registry.py``)."""
    text = DOC.read_text(encoding="utf-8")
    block = text[text.index("## The data's path") : text.index("## Each package's room")]
    short = set(re.findall(r"(?<![\w/])((?:data|models|optim|train|analysis|plots|cli)/\w+\.py)", block))
    assert short and sorted(p for p in short if not (SRC / p).exists()) == []


def documented_layers() -> list[str]:
    """The layer rows of the page's ``layers`` block, without their comments (two spaces or more start one)."""
    text = DOC.read_text(encoding="utf-8")
    block = text[text.index("<!-- layers:") :].split("```", 2)[1]
    rows = [re.split(r"\s{2,}", line.strip(), maxsplit=1)[0] for line in block.splitlines() if line.strip()]
    return [" ".join(row.split()) for row in rows]


def contract_layers() -> list[str]:
    tomllib = __import__("pytest").importorskip("tomllib")  # Python >= 3.11
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    (layers,) = [c for c in config["contracts"] if c["type"] == "layers"]
    assert layers["containers"] == ["gradfit"] and layers["exhaustive"]
    return [" ".join(row.split()) for row in layers["layers"]]


def test_the_pages_layers_are_the_import_linter_contract():
    assert documented_layers() == contract_layers()


def test_the_import_graph_keeps_the_layers():
    """The same rule as lint-imports, on the page's own graph: no package imports one in a layer above its own,
    nor a sibling across ``|``; so the page cannot show an import the contract forbids."""
    level: dict[str, int] = {}
    independent: dict[str, bool] = {}
    for i, row in enumerate(contract_layers()):
        names = re.split(r"\s*[|:]\s*", row)
        for name in names:
            node = f"{name}/" if (SRC / name).is_dir() else f"{name}.py"
            level[node], independent[node] = i, "|" in row
    graph = import_graph()
    for source, targets in graph.items():
        if source not in level:
            assert source in ("__init__.py", "__main__.py"), f"{source} is in no layer of the contract"
            continue
        for target in targets:
            if target == "__init__.py":
                continue  # the container: the command line and sklearn import `gradfit` itself
            assert level[target] >= level[source], f"{source} imports {target}, a layer above it"
            if level[target] == level[source]:
                assert not independent[source], f"{source} imports {target}, an independent sibling"
