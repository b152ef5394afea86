"""The pure-Python writer of small number tables against Arrow's (gradfit.numbers_csv): the same bytes."""

from __future__ import annotations

import numpy as np
import pytest

from gradfit.numbers_csv import write_numbers_csv
from gradfit.numbers_text import SMALL_TABLE_NUMBERS, format_float, write_small_numbers_csv


class _Table:
    def __init__(self, names, columns):
        self.names, self._columns = names, columns

    def __len__(self):
        return len(self._columns[0])

    def rows(self, start, stop):
        return [c[start:stop] for c in self._columns]


def _special() -> np.ndarray:
    powers = [s * m * float(f"1e{k}") for k in range(-330, 308) for m in (1.0, 1.5, 9.999999999999999) for s in (1, -1)]
    edges = [0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 0.1, 1 / 3]
    return np.array(powers + edges + [np.nextafter(1e10, 0), np.nextafter(1e-6, 0), 999999999.5, 1e-6, 9.99999e9])


def _random_floats(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2**64, size=n, dtype=np.uint64).view(np.float64)  # every exponent, every pattern
    return np.concatenate([bits, rng.standard_normal(n) * 10.0 ** rng.integers(-12, 14, n), rng.random(n)])


def test_floats_are_formatted_as_arrow_formats_them(tmp_path):
    values = np.concatenate([_special(), _random_floats(3000, 0)])
    ints = np.array([0, -1, 7, 2**62, -(2**63), 2**63 - 1] * (len(values) // 6 + 1), dtype=np.int64)[: len(values)]
    table = _Table(["a b", 'q"uote', "c,1"], [values, ints, values[::-1].copy()])
    assert len(table) * 3 <= SMALL_TABLE_NUMBERS
    assert write_small_numbers_csv(table, tmp_path / "python.csv")
    write_numbers_csv(table, tmp_path / "arrow.csv")
    assert (tmp_path / "python.csv").read_bytes() == (tmp_path / "arrow.csv").read_bytes()


@pytest.mark.parametrize("x", [0.0, -0.0, 1.0, 1e-7, 1e-6, 1e10, 123456789.0, 1.5e300, 0.15000000000000002])
def test_format_float_reads_back_to_the_same_float(x):
    text = format_float(x)
    assert float(text) == x and np.signbit(float(text)) == np.signbit(x)


def test_large_or_other_tables_are_left_to_arrow(tmp_path):
    big = _Table(["a"], [np.zeros(SMALL_TABLE_NUMBERS + 1)])
    assert not write_small_numbers_csv(big, tmp_path / "big.csv") and not (tmp_path / "big.csv").exists()
    floats32 = _Table(["a"], [np.zeros(3, dtype=np.float32)])
    assert not write_small_numbers_csv(floats32, tmp_path / "f32.csv")


def test_a_table_without_rows_is_its_header(tmp_path):
    table = _Table(["step", "loss"], [np.zeros(0, dtype=np.int64), np.zeros(0)])
    assert write_small_numbers_csv(table, tmp_path / "python.csv")
    write_numbers_csv(table, tmp_path / "arrow.csv")
    assert (tmp_path / "python.csv").read_bytes() == (tmp_path / "arrow.csv").read_bytes() == b"step,loss\n"


def test_every_writer_of_a_small_history_takes_the_python_path_with_the_same_bytes(tmp_path, monkeypatch):
    """save_run and FitResult.save_history write history.csv through one chooser (numbers_csv.write_csv): a small
    history never reaches Arrow's writer (whose import costs a small fit more than its work), and both write the
    same bytes."""
    import warnings

    import gradfit
    from gradfit import numbers_csv
    from gradfit.outputs import save_run

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = gradfit.fit("a*x + b", "builtin:linear", y="y", optimizer="sgd", lr=0.1, steps=20)
    monkeypatch.setattr(numbers_csv, "write_numbers_csv", lambda *a, **k: pytest.fail("Arrow wrote a small table"))
    save_run(r, tmp_path / "run")
    r.save_history(tmp_path / "history.csv")
    assert (tmp_path / "history.csv").read_bytes() == (tmp_path / "run" / "history.csv").read_bytes()
