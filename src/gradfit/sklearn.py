"""scikit-learn estimators: ``GradfitRegressor`` and ``GradfitClassifier``.

Any gradfit model (a zoo name, a formula over the columns ``x0, x1, ...``, a function or an
``nn.Module``) fitted by :func:`gradfit.fit`, behind scikit-learn's ``fit / predict / score``, so it
drops into pipelines, grid searches and cross-validation. Constructors only store their arguments;
everything is checked in ``fit``. A ``ConvergenceWarning`` says when a fit diverged or ran out of
steps while the loss was still falling. scikit-learn is an optional dependency
(``pip install 'gradfit[sklearn]'``); ``import gradfit`` never imports it.

Examples
--------
>>> import numpy as np
>>> X = np.arange(10.0).reshape(-1, 1)
>>> reg = GradfitRegressor().fit(X, 3 * X[:, 0] + 2)
>>> np.round(reg.coef_, 6).tolist(), round(reg.intercept_, 6)
([3.0], 2.0)
"""

from __future__ import annotations

import math
import warnings

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import _check_sample_weight, check_is_fitted
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "gradfit.sklearn needs scikit-learn, which is not installed. Install it with "
        "pip install 'gradfit[sklearn]' (or pip install scikit-learn)."
    ) from exc

import numpy as np

from gradfit.options import OPTIONS

try:
    from sklearn.utils.validation import validate_data as _validate_data  # scikit-learn >= 1.6
except ImportError:  # pragma: no cover - older scikit-learn

    def _validate_data(estimator, X="no_validation", y="no_validation", **kwargs):
        return estimator._validate_data(X, y, **kwargs)


# Checks of sklearn.utils.estimator_checks.check_estimator that cannot pass, by estimator: {check: why}.
# None with scikit-learn 1.9 (check_array_api_input is skipped unless SCIPY_ARRAY_API=1, and passes then).
EXPECTED_FAILED_CHECKS: dict[str, dict[str, str]] = {
    "GradfitRegressor": {},
    "GradfitClassifier": {},
}

#: The options of gradfit.fit the estimators take and pass on (marked ``sklearn`` in gradfit.options.OPTIONS).
PASSED = tuple(name for name, option in OPTIONS.items() if option.sklearn)
#: The estimators' defaults where they differ from gradfit.fit's: a fixed budget of L-BFGS in float64, so that
#: the fits of a grid search or a cross-validation are alike (tests/test_options.py checks the others).
OWN_DEFAULTS = {"optimizer": "lbfgs", "steps": 200, "dtype": "float64", "scale": False}

_STILL_FALLING_RTOL = 1e-6  # relative drop over the last tenth of the fit that counts as "still falling"


class _GradfitEstimator(BaseEstimator):
    """Shared by both estimators: validation, the call to gradfit.fit, warnings, predictions."""

    def _run(self, X: np.ndarray, targets: np.ndarray, loss: str, sample_weight=None):
        import gradfit

        data = {f"x{i}": np.array(X[:, i], dtype=np.float64) for i in range(X.shape[1])}
        data["y"] = np.array(targets, dtype=np.float64)
        options = {name: getattr(self, name) for name in PASSED if name not in ("loss", "scale")}
        options["loss"] = loss
        if self.scale:
            options["scale"] = True  # only when asked: scale=False is "automatic" here, as leaving out --scale
        if sample_weight is not None:
            options["weights"] = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        result = gradfit.fit(
            self.model,
            data,
            y="y",
            catch_signals=False,
            init=self.init,
            fix=self.fix,
            bounds=self.bounds,
            model_options=self.model_options,
            **options,
        )
        _warn_if_not_converged(result)
        self.result_ = result
        self.n_features_in_ = X.shape[1]
        self._set_coefficients(result)
        return self

    def _set_coefficients(self, result) -> None:
        name = getattr(result.model, "zoo_name", None)
        if name not in ("linear", "logistic"):
            for attr in ("coef_", "intercept_"):  # from an earlier fit with another model
                self.__dict__.pop(attr, None)
            return
        w = next(iter(result.params.values())).detach().double().cpu().numpy()
        self.coef_, self.intercept_ = self._split_weights(w)

    def _raw(self, X) -> np.ndarray:
        """The fitted model's outputs for ``X`` (float64)."""
        check_is_fitted(self, "result_")
        X = _validate_data(self, X, dtype=np.float64, reset=False)
        columns = {f"x{i}": np.array(X[:, i], dtype=np.float64) for i in range(X.shape[1])}  # writable copies for torch
        return np.asarray(self.result_.predict(columns), dtype=np.float64)


class GradfitRegressor(RegressorMixin, _GradfitEstimator):
    """A gradfit model fitted by gradient descent (or L-BFGS), as a scikit-learn regressor.

    Parameters
    ----------
    model : str, callable, nn.Module or Model
        ``"linear"`` (default), any zoo name, or a formula over the columns ``x0, x1, ...``
        (``"a*exp(-k*x0) + c"``).
    loss : str
        ``"mse"`` (default), ``"mae"``, ``"huber"`` or a function, as in :func:`gradfit.fit`.
    optimizer, lr, steps, batch_size, init, fix, bounds, model_options, dtype, seed, tol, scale
        Passed to :func:`gradfit.fit` unchanged.

    Attributes
    ----------
    result_ : FitResult
        The whole fit: parameters, history, stop reason.
    n_features_in_ : int
    coef_, intercept_ : ndarray, float
        For ``model="linear"``: the weights and the intercept, as in LinearRegression.

    Notes
    -----
    Every check of ``sklearn.utils.estimator_checks.check_estimator`` passes (scikit-learn 1.9); any
    that cannot would be listed, with the reason, in ``EXPECTED_FAILED_CHECKS["GradfitRegressor"]``.
    ``sample_weight`` weights the rows (gradfit's ``weights``: the loss is ``Σ wᵢℓᵢ / Σ wᵢ``), so the
    sample-weight checks run too. They pass with ``dtype="float32"`` too.

    Examples
    --------
    >>> X = np.linspace(0, 1, 20)[:, None]
    >>> reg = GradfitRegressor("a*exp(k*x0)", init={"a": 1.0, "k": 1.0}).fit(X, 2 * np.exp(0.5 * X[:, 0]))
    >>> round(reg.score(X, 2 * np.exp(0.5 * X[:, 0])), 6)
    1.0
    """

    def __init__(
        self,
        model="linear",
        loss="mse",
        optimizer="lbfgs",
        lr=None,
        steps=200,
        batch_size=None,
        init=None,
        fix=None,
        bounds=None,
        model_options=None,
        dtype="float64",
        seed=0,
        tol=None,
        scale=False,
    ):
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.lr = lr
        self.steps = steps
        self.batch_size = batch_size
        self.init = init
        self.fix = fix
        self.bounds = bounds
        self.model_options = model_options
        self.dtype = dtype
        self.seed = seed
        self.tol = tol
        self.scale = scale

    def fit(self, X, y, sample_weight=None):
        """Fit the model to ``X`` (``(n, k)``) and ``y`` (``(n,)``), rows weighted by ``sample_weight``; returns self."""
        X, y = _validate_data(self, X, y, dtype=np.float64, y_numeric=True, ensure_min_samples=2)
        return self._run(X, y, self.loss, sample_weight)

    def predict(self, X) -> np.ndarray:
        """Predictions, shape ``(n,)``."""
        return self._raw(X)

    @staticmethod
    def _split_weights(w: np.ndarray):
        return (w[:-1].copy(), float(w[-1])) if w.ndim == 1 else (w[:-1].T.copy(), w[-1].copy())


class GradfitClassifier(ClassifierMixin, _GradfitEstimator):
    """A gradfit model of class logits, as a scikit-learn classifier.

    Labels of any kind are mapped to ``0..C-1`` (``classes_`` keeps them): two classes are fitted
    with one logit and the ``bce`` loss, more with ``C`` logits and ``cross_entropy``. There is no
    penalty, so on separable data the weights grow until the step budget ends (with a
    ``ConvergenceWarning``); the predictions are right all the same.

    Parameters
    ----------
    model : str, callable, nn.Module or Model
        ``"logistic"`` (default), ``"mlp"``, or a model with one output per logit.
    optimizer, lr, steps, batch_size, init, fix, bounds, model_options, dtype, seed, tol, scale
        Passed to :func:`gradfit.fit` unchanged.

    Attributes
    ----------
    result_ : FitResult
    classes_ : ndarray
    n_features_in_ : int
    coef_, intercept_ : ndarray
        For ``model="logistic"``: shapes ``(1, k)`` and ``(1,)`` for two classes, ``(C, k)`` and
        ``(C,)`` for more, as in LogisticRegression.

    Notes
    -----
    Every check of ``check_estimator`` passes (scikit-learn 1.9); any that cannot would be listed in
    ``EXPECTED_FAILED_CHECKS["GradfitClassifier"]``. ``sample_weight`` weights the rows (gradfit's
    ``weights``); ``class_weight`` is not supported.
    """

    def __init__(
        self,
        model="logistic",
        optimizer="lbfgs",
        lr=None,
        steps=200,
        batch_size=None,
        init=None,
        fix=None,
        bounds=None,
        model_options=None,
        dtype="float64",
        seed=0,
        tol=None,
        scale=False,
    ):
        self.model = model
        self.optimizer = optimizer
        self.lr = lr
        self.steps = steps
        self.batch_size = batch_size
        self.init = init
        self.fix = fix
        self.bounds = bounds
        self.model_options = model_options
        self.dtype = dtype
        self.seed = seed
        self.tol = tol
        self.scale = scale

    def fit(self, X, y, sample_weight=None):
        """Fit the model to ``X`` (``(n, k)``) and the labels ``y``, rows weighted by ``sample_weight``; returns self."""
        X, y = _validate_data(self, X, y, dtype=np.float64, ensure_min_samples=2)
        check_classification_targets(y)
        classes, codes = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"The classifier needs at least two classes in y. Got only one class: {classes[0]!r}.")
        self.classes_ = classes
        return self._run(X, codes, "bce" if len(classes) == 2 else "cross_entropy", sample_weight)

    def decision_function(self, X) -> np.ndarray:
        """Logits: ``(n,)`` (of ``classes_[1]``) for two classes, ``(n, C)`` for more."""
        return self._raw(X)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, ``(n, C)``, columns in ``classes_`` order."""
        z = self._raw(X)
        if z.ndim == 1:
            p = 1.0 / (1.0 + np.exp(-z))
            return np.column_stack([1.0 - p, p])
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        """The most probable class of each row."""
        z = self._raw(X)
        return self.classes_[(z > 0).astype(int) if z.ndim == 1 else z.argmax(axis=1)]

    @staticmethod
    def _split_weights(w: np.ndarray):
        return (w[None, :-1].copy(), w[-1:].copy()) if w.ndim == 1 else (w[:-1].T.copy(), w[-1].copy())


def _warn_if_not_converged(result) -> None:
    """ConvergenceWarning when the fit diverged, or stopped on its budget while the loss still fell."""
    if result.stop_reason == "diverged":
        warnings.warn(f"The gradfit fit diverged. {result.message}", ConvergenceWarning, stacklevel=4)
        return
    if result.stop_reason not in ("max_steps", "max_epochs"):
        return
    loss = np.asarray(result.history.loss, dtype=np.float64)
    loss = loss[np.isfinite(loss)]
    if len(loss) < 3:
        return
    before, last = loss[-1 - max(1, len(loss) // 10)], loss[-1]
    # a loss that has fallen to rounding level of where it started is not "still falling"
    floor = 1e-12 * abs(loss[0])
    if before - last > _STILL_FALLING_RTOL * max(abs(before), floor, math.ulp(1.0)):
        warnings.warn(
            f"The gradfit fit used all {result.steps} steps while the loss was still falling "
            f"({before:.6g} -> {last:.6g} over the last tenth). Increase 'steps', raise 'lr', "
            f"or try optimizer='lbfgs'.",
            ConvergenceWarning,
            stacklevel=4,
        )
