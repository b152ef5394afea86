"""Losses against torch.nn.functional, target checks and names."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gradfit.errors import ConfigError, DataError
from gradfit.losses import LOSS_NAMES, CallableLoss, Loss, get_loss

DT = torch.float64
G = torch.Generator().manual_seed(0)
N = 40


def _regression():
    return torch.randn(N, generator=G, dtype=DT), torch.randn(N, generator=G, dtype=DT) * 2


def _classes(c=4):
    return torch.randn(N, c, generator=G, dtype=DT), torch.randint(0, c, (N,), generator=G).to(DT)


def _binary():
    return torch.randn(N, generator=G, dtype=DT) * 3, torch.rand(N, generator=G, dtype=DT).round()


CASES = [
    ("mse", {}, _regression, lambda p, t: F.mse_loss(p, t)),
    ("mae", {}, _regression, lambda p, t: F.l1_loss(p, t)),
    ("huber", {}, _regression, lambda p, t: F.huber_loss(p, t)),
    ("huber", {"delta": 0.3}, _regression, lambda p, t: F.huber_loss(p, t, delta=0.3)),
    ("cross_entropy", {}, _classes, lambda p, t: F.cross_entropy(p, t.long())),
    ("bce", {}, _binary, lambda p, t: F.binary_cross_entropy_with_logits(p, t)),
    (
        "bce",
        {},
        lambda: (_binary()[0], torch.rand(N, generator=G, dtype=DT)),  # probabilities
        lambda p, t: F.binary_cross_entropy_with_logits(p, t),
    ),
]


@pytest.mark.parametrize(("name", "options", "data", "oracle"), CASES)
def test_loss_equals_torch_functional_in_value_and_gradient(name, options, data, oracle):
    loss = get_loss(name, **options)
    pred, target = data()
    p1, p2 = pred.clone().requires_grad_(), pred.clone().requires_grad_()
    value = loss(p1, target)
    expected = oracle(p2, target)
    torch.testing.assert_close(value, expected, rtol=1e-12, atol=1e-12)
    value.backward()
    expected.backward()
    torch.testing.assert_close(p1.grad, p2.grad, rtol=1e-12, atol=1e-14)
    rows = loss.per_row(pred, target)
    assert rows.shape == (N,)
    torch.testing.assert_close(loss.total(pred, target), expected * N, rtol=1e-12, atol=1e-12)
    # chunks add up to the whole: what the training loop relies on
    chunks = sum(loss.total(pred[i : i + 7], target[i : i + 7]) for i in range(0, N, 7))
    torch.testing.assert_close(chunks, expected * N, rtol=1e-12, atol=1e-12)


def test_least_squares_flag_and_describe():
    assert get_loss("mse").least_squares
    assert not any(get_loss(n).least_squares for n in LOSS_NAMES if n != "mse")
    assert get_loss("huber", delta=2).describe() == {"name": "huber", "delta": 2.0}


def test_float32_chunk_of_65536_rows_is_summed_accurately():
    g = torch.Generator().manual_seed(1)
    pred = torch.randn(65_536, generator=g) + 100
    target = torch.randn(65_536, generator=g)
    for name in ("mse", "mae", "huber"):
        loss = get_loss(name)
        exact = loss.total(pred.double(), target.double())
        assert abs(float(loss.total(pred, target)) - float(exact)) / float(exact) < 1e-6


@pytest.mark.parametrize(
    ("spelling", "name"),
    [
        ("MSE", "mse"),
        ("L1", "mae"),
        ("Huber", "huber"),
        ("ce", "cross_entropy"),
        ("crossentropy", "cross_entropy"),
        ("Cross-Entropy", "cross_entropy"),
        ("cross_entropy", "cross_entropy"),
        ("binary_cross_entropy", "bce"),
        ("binary-cross-entropy", "bce"),
        ("BCE", "bce"),
    ],
)
def test_names_are_case_and_separator_insensitive(spelling, name):
    assert get_loss(spelling).name == name


@pytest.mark.parametrize(
    ("spelling", "closest"), [("hubber", "huber"), ("crossentropi", "cross_entropy"), ("msee", "mse")]
)
def test_unknown_name_lists_the_losses_and_the_closest_match(spelling, closest):
    with pytest.raises(ConfigError, match=rf"Did you mean '{closest}'\?.*mse, mae, huber, cross_entropy, bce"):
        get_loss(spelling)


def test_bad_options():
    with pytest.raises(ConfigError, match="unknown option"):
        get_loss("mse", delta=1.0)
    with pytest.raises(ConfigError, match="unknown option"):
        get_loss("huber", beta=1.0)
    for bad in (0, -1, "1", True):
        with pytest.raises(ConfigError, match="'delta'"):
            get_loss("huber", delta=bad)
    with pytest.raises(ConfigError, match="only apply to a loss given by name"):
        get_loss(lambda p, t: (p - t).abs().mean(), delta=1.0)
    with pytest.raises(ConfigError, match="must be a name"):
        get_loss(3)


def test_cross_entropy_check_targets():
    loss = get_loss("cross_entropy")
    y = torch.zeros(10)
    y[7] = 2.5
    with pytest.raises(DataError, match=r"whole numbers 0\.\.2\. Found 2\.5 at row 7"):
        loss.check_targets(y, 3)
    y[7] = 3.0
    with pytest.raises(DataError, match=r"labels 0\.\.2 .* Found 3 at row 7"):
        loss.check_targets(y, 3)
    y[7] = -1.0
    with pytest.raises(DataError, match="Found -1 at row 7"):
        loss.check_targets(y, 3)
    y[7] = float("nan")
    with pytest.raises(DataError, match="Found nan at row 7"):
        loss.check_targets(y, 3)
    with pytest.raises(ConfigError, match="n_outputs >= 2"):
        loss.check_targets(torch.zeros(3), 1)
    loss.check_targets(torch.tensor([0.0, 1.0, 2.0, 2.0]), 3)


def test_bce_check_targets():
    loss = get_loss("bce")
    loss.check_targets(torch.tensor([0.0, 1.0, 0.25]), 1)
    with pytest.raises(DataError, match=r"0/1 labels or probabilities in \[0, 1\]\. Found 2 at row 3"):
        loss.check_targets(torch.tensor([0.0, 1.0, 1.0, 2.0]), 1)
    with pytest.raises(DataError, match="Found nan at row 0"):
        loss.check_targets(torch.tensor([float("nan")]), 1)
    with pytest.raises(ConfigError, match="one output"):
        loss.check_targets(torch.tensor([0.0, 1.0]), 2)


def test_regression_losses_need_one_output_and_same_shapes():
    with pytest.raises(ConfigError, match="3 outputs"):
        get_loss("mse").check_targets(torch.zeros(4), 3)
    get_loss("mae").check_targets(torch.zeros(4), 1)
    with pytest.raises(ConfigError, match="same shape"):
        get_loss("mse")(torch.zeros(4, 1), torch.zeros(4))
    with pytest.raises(ConfigError, match=r"\(n, C\) class logits"):
        get_loss("ce")(torch.zeros(4), torch.zeros(4))


def test_callable_loss_is_a_mean_scaled_to_a_sum():
    def rmse4(pred, target):
        return ((pred - target) ** 4).mean()

    loss = get_loss(rmse4)
    assert isinstance(loss, CallableLoss) and loss.name == "rmse4" and not loss.least_squares
    pred, target = _regression()
    torch.testing.assert_close(loss(pred, target), rmse4(pred, target))
    torch.testing.assert_close(loss.total(pred, target), rmse4(pred, target) * N)
    assert loss.per_row(pred, target).shape == (N,)
    chunks = sum(loss.total(pred[i : i + 8], target[i : i + 8]) for i in range(0, N, 8))
    torch.testing.assert_close(chunks, rmse4(pred, target) * N)
    same = get_loss(loss)
    assert same is loss and isinstance(same, Loss)


def test_callable_loss_must_return_a_torch_scalar():
    pred, target = _regression()
    with pytest.raises(ConfigError, match="torch.mean, not numpy.mean"):
        get_loss(lambda p, t: float(((p - t) ** 2).mean()))(pred, target)
    with pytest.raises(ConfigError, match="must return a scalar"):
        get_loss(lambda p, t: (p - t) ** 2).total(pred, target)
