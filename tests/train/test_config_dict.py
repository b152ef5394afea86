"""``FitConfig.to_dict`` and ``Choice.to_dict`` skip ``asdict``'s deep copy when every value is plain: the dict must
be ``asdict``'s (the oracle) for plain options, and containers must still be copied, not shared."""

from __future__ import annotations

from dataclasses import asdict

from gradfit.optim.auto import Choice
from gradfit.train.config import FitConfig


def expected(config: FitConfig) -> dict:
    out = asdict(config)
    out["dtype"] = config.resolved_dtype
    if callable(config.loss):
        out["loss"] = getattr(config.loss, "__name__", "custom")
    return out


def test_plain_options_give_asdicts_dict():
    for config in (FitConfig(), FitConfig(optimizer="lm", lr=0.1, epochs=3, dtype="float32")):
        assert config.to_dict() == expected(config)
        assert list(config.to_dict()) == list(expected(config))


def test_containers_and_callables_are_copied_as_asdict_copies_them():
    options = {"ftol": 1e-9}

    def my_loss(pred, y):
        return ((pred - y) ** 2).mean()

    config = FitConfig(optimizer="lm", optimizer_options=options, loss=my_loss)
    out = config.to_dict()
    assert out == expected(config)
    assert out["loss"] == "my_loss"
    assert out["optimizer_options"] == options and out["optimizer_options"] is not options


def test_a_choice_is_asdicts_dict():
    choice = Choice(optimizer="lm", dtype="float64", scale=False, lr_rule=None, reason="least squares")
    assert choice.to_dict() == asdict(choice)


def test_nested_options_take_asdicts_deep_copy():
    inner = {"betas": [0.9, 0.99]}
    config = FitConfig(optimizer="adam", optimizer_options=inner, loss_options={"delta": 1.0})
    out = config.to_dict()
    assert out == expected(config)
    assert out["optimizer_options"]["betas"] is not inner["betas"]  # copied all the way down, as asdict does
    assert out["loss_options"] == {"delta": 1.0} and out["loss_options"] is not config.loss_options
