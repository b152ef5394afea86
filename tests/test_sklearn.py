"""gradfit.sklearn: scikit-learn's own estimator checks, and oracles from sklearn.linear_model."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import make_blobs, make_classification, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from gradfit.sklearn import EXPECTED_FAILED_CHECKS, GradfitClassifier, GradfitRegressor  # noqa: E402


# 30 L-BFGS steps: enough for every check's tiny data, and the whole run stays well under a minute.
@parametrize_with_checks(
    [GradfitRegressor(steps=30), GradfitClassifier(steps=30)],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS[type(est).__name__],
)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def test_regressor_matches_linear_regression():
    X, y = make_regression(n_samples=200, n_features=4, noise=5.0, bias=3.0, random_state=0)
    reg = GradfitRegressor().fit(X, y)
    ref = LinearRegression().fit(X, y)
    np.testing.assert_allclose(reg.coef_, ref.coef_, rtol=1e-6)
    assert reg.intercept_ == pytest.approx(ref.intercept_, rel=1e-6)
    np.testing.assert_allclose(reg.predict(X), ref.predict(X), rtol=1e-6)
    assert reg.score(X, y) == pytest.approx(ref.score(X, y), rel=1e-9)
    assert reg.n_features_in_ == 4 and reg.result_.success


def test_binary_classifier_matches_unpenalised_logistic_regression():
    """Overlapping classes have a unique optimum: same coefficients and probabilities as sklearn's."""
    X, y = make_classification(n_samples=300, n_features=3, n_informative=2, n_redundant=0, flip_y=0.2, random_state=1)
    labels = np.array(["no", "yes"])[y]
    clf = GradfitClassifier().fit(X, labels)
    ref = LogisticRegression(C=1e10, tol=1e-12, max_iter=10_000).fit(X, labels)
    assert list(clf.classes_) == ["no", "yes"]
    assert clf.coef_.shape == (1, 3) and clf.intercept_.shape == (1,)
    np.testing.assert_allclose(clf.coef_, ref.coef_, rtol=1e-5)
    np.testing.assert_allclose(clf.intercept_, ref.intercept_, rtol=1e-5)
    np.testing.assert_allclose(clf.predict_proba(X), ref.predict_proba(X), atol=1e-7)
    np.testing.assert_allclose(clf.decision_function(X), ref.decision_function(X), rtol=1e-5, atol=1e-7)
    assert (clf.predict(X) == ref.predict(X)).all()


def test_multiclass_classifier_matches_logistic_regression_probabilities():
    X, y = make_blobs(n_samples=300, centers=3, cluster_std=2.5, random_state=2)
    clf = GradfitClassifier().fit(X, y + 10)
    ref = LogisticRegression(C=1e10, tol=1e-12, max_iter=10_000).fit(X, y + 10)
    assert clf.coef_.shape == (3, 2) and clf.intercept_.shape == (3,)
    # unpenalised multinomial weights are defined up to a shared shift; the probabilities are unique
    np.testing.assert_allclose(clf.predict_proba(X), ref.predict_proba(X), atol=1e-5)
    assert clf.score(X, y + 10) == pytest.approx(ref.score(X, y + 10))


@pytest.mark.parametrize("centers", [2, 3])
def test_classifier_accuracy_on_separable_blobs(centers):
    X, y = make_blobs(n_samples=150, centers=centers, cluster_std=0.4, random_state=3)
    ref = LogisticRegression(C=1e10, max_iter=10_000).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # separable: the weights grow without end
        clf = GradfitClassifier(steps=50).fit(X, y)
    assert clf.score(X, y) == ref.score(X, y) == 1.0
    np.testing.assert_allclose(clf.predict_proba(X).sum(axis=1), 1.0)


def test_convergence_warnings():
    X, y = make_regression(n_samples=50, n_features=2, random_state=0)
    with pytest.warns(ConvergenceWarning, match="still falling"):
        GradfitRegressor(optimizer="sgd", lr=1e-3, steps=20).fit(X, y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        GradfitRegressor(optimizer="sgd", lr=1e3, steps=50).fit(X, y)
    assert any(w.category is ConvergenceWarning and "diverged" in str(w.message) for w in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        GradfitRegressor().fit(X, y)  # L-BFGS reaches the optimum: no warning


def test_pipeline_and_grid_search_over_lr_and_model_options():
    rng = np.random.default_rng(0)
    X = rng.uniform(-3, 3, size=(120, 1))
    y = 0.5 * X[:, 0] ** 2 - X[:, 0] + 2 + rng.normal(0, 0.1, 120)
    pipe = make_pipeline(StandardScaler(), GradfitRegressor(model="poly", optimizer="sgd", lr=0.1, steps=300))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search = GridSearchCV(
            pipe,
            {"gradfitregressor__model_options": [{"degree": 1}, {"degree": 2}], "gradfitregressor__lr": [1e-4, 0.1]},
            cv=3,
        ).fit(X, y)
    assert search.best_params_ == {"gradfitregressor__model_options": {"degree": 2}, "gradfitregressor__lr": 0.1}
    assert search.best_score_ > 0.99


def test_formula_model_on_some_columns_and_clone():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 3))
    y = 2.0 * np.exp(0.3 * X[:, 1])
    reg = GradfitRegressor("a*exp(k*x1)", init={"a": 1.0, "k": 0.1}, tol=1e-14).fit(X, y)
    np.testing.assert_allclose(reg.result_.flat_params["a"], 2.0, rtol=1e-8)
    np.testing.assert_allclose(reg.predict(X), y, rtol=1e-8)
    assert not hasattr(reg, "coef_")
    copy = clone(reg)
    assert copy.get_params() == reg.get_params() and not hasattr(copy, "result_")
    copy.set_params(steps=5, init={"a": 3.0, "k": 0.0})
    assert clone(copy).get_params()["init"] == {"a": 3.0, "k": 0.0} and reg.get_params()["steps"] == 200


def test_import_gradfit_does_not_import_sklearn_and_missing_sklearn_is_explained():
    code = (
        "import sys, gradfit; gradfit.fit; gradfit.FitResult\n"
        "assert 'sklearn' not in sys.modules\n"
        "sys.modules['sklearn'] = None\n"
        "try:\n    import gradfit.sklearn\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "pip install 'gradfit[sklearn]'" in out.stdout


def test_sample_weight_matches_sklearns_weighted_estimators():
    X, y = make_regression(n_samples=120, n_features=3, noise=5.0, bias=3.0, random_state=2)
    w = np.random.default_rng(0).random(120) * 3
    reg = GradfitRegressor().fit(X, y, sample_weight=w)
    ref = LinearRegression().fit(X, y, sample_weight=w)
    np.testing.assert_allclose(reg.coef_, ref.coef_, rtol=1e-6)
    assert reg.intercept_ == pytest.approx(ref.intercept_, rel=1e-6)
    assert reg.result_.data["weights"]["from"] == "array"
    assert np.abs(reg.coef_ - LinearRegression().fit(X, y).coef_).max() > 1e-3  # the weights mattered
    Xc, yc = make_classification(
        n_samples=300, n_features=3, n_informative=2, n_redundant=0, flip_y=0.2, random_state=1
    )
    clf = GradfitClassifier().fit(Xc, yc, sample_weight=w.repeat(3)[:300])
    ref = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(Xc, yc, sample_weight=w.repeat(3)[:300])
    np.testing.assert_allclose(clf.predict_proba(Xc), ref.predict_proba(Xc), atol=1e-6)
