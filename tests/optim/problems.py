"""Nonlinear least-squares test problems, shared by the Levenberg-Marquardt and uncertainty tests.

Each :class:`Problem` carries the model twice, as a gradfit formula string (input column ``x``,
target ``y``) and as a numpy function ``f(x, *p)`` for scipy, with its data and two starting
points: ``starts[0]`` the difficult one (far from the solution, NIST's "start 1" where the problem
is from NIST StRD), ``starts[1]`` the easy one. ``certified`` holds NIST's certified values where
the data are NIST's own, else the parameters the synthetic data were drawn from (not the
least-squares solution: the oracle for tests is scipy on the same data).

Import it without a package: ``sys.path.insert(0, str(Path(__file__).parent)); from problems import PROBLEMS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Problem:
    name: str
    formula: str
    params: tuple[str, ...]
    x: np.ndarray
    y: np.ndarray
    f: Callable[..., np.ndarray]
    starts: tuple[tuple[float, ...], tuple[float, ...]]
    certified: tuple[float, ...] | None = None
    source: str = ""

    @property
    def data(self) -> dict[str, np.ndarray]:
        """The data as gradfit takes it: ``gradfit.fit(p.formula, p.data, y="y")``."""
        return {"x": self.x, "y": self.y}

    def init(self, which: int) -> dict[str, float]:
        """Starting point ``which`` (0 difficult, 1 easy) as gradfit's ``init`` mapping."""
        return dict(zip(self.params, self.starts[which]))


def _names(k: int) -> tuple[str, ...]:
    return tuple(f"b{i}" for i in range(1, k + 1))


def _noisy(f, x, p, sd, seed, relative=False) -> np.ndarray:
    clean = f(x, *p)
    noise = np.random.default_rng(seed).normal(0.0, sd, size=x.shape)
    return clean * (1 + noise) if relative else clean + noise


# --- NIST StRD data, typed in ---------------------------------------------------------------------


def _misra1a(x, b1, b2):
    return b1 * (1 - np.exp(-b2 * x))


MISRA1A = Problem(
    "misra1a",
    "b1*(1 - exp(-b2*x))",
    _names(2),
    np.array([77.6, 114.9, 141.1, 190.8, 239.9, 289.0, 332.8, 378.4, 434.8, 477.3, 536.8, 593.1, 689.1, 760.0]),
    np.array([10.07, 14.73, 17.94, 23.93, 29.61, 35.18, 40.02, 44.82, 50.76, 55.05, 61.01, 66.40, 75.47, 81.78]),
    _misra1a,
    ((500.0, 1e-4), (250.0, 5e-4)),
    (2.3894212918e02, 5.5015643181e-04),
    "NIST StRD Misra1a",
)

BOXBOD = Problem(
    "boxbod",
    "b1*(1 - exp(-b2*x))",
    _names(2),
    np.array([1.0, 2.0, 3.0, 5.0, 7.0, 10.0]),
    np.array([109.0, 149.0, 149.0, 191.0, 213.0, 224.0]),
    _misra1a,
    ((1.0, 1.0), (100.0, 0.75)),
    (2.1380940889e02, 5.4723748542e-01),
    "NIST StRD BoxBOD",
)


def _danwood(x, b1, b2):
    return b1 * x**b2


DANWOOD = Problem(
    "danwood",
    "b1*x**b2",
    _names(2),
    np.array([1.309, 1.471, 1.490, 1.565, 1.611, 1.680]),
    np.array([2.138, 3.421, 3.597, 4.340, 4.882, 5.660]),
    _danwood,
    ((1.0, 5.0), (0.7, 4.0)),
    (7.6886226176e-01, 3.8604055871e00),
    "NIST StRD DanWood",
)


def _mgh09(x, b1, b2, b3, b4):
    return b1 * (x**2 + x * b2) / (x**2 + x * b3 + b4)


MGH09 = Problem(
    "mgh09",
    "b1*(x**2 + x*b2) / (x**2 + x*b3 + b4)",
    _names(4),
    np.array([4.0, 2.0, 1.0, 0.5, 0.25, 0.167, 0.125, 0.1, 0.0833, 0.0714, 0.0625]),
    np.array([0.1957, 0.1947, 0.1735, 0.1600, 0.0844, 0.0627, 0.0456, 0.0342, 0.0323, 0.0235, 0.0246]),
    _mgh09,
    ((25.0, 39.0, 41.5, 39.0), (0.25, 0.39, 0.415, 0.39)),
    (1.9280693458e-01, 1.9128232873e-01, 1.2305650693e-01, 1.3606233068e-01),
    "NIST StRD MGH09 (Kowalik-Osborne)",
)


def _three_exp(x, b1, b2, b3, b4, b5, b6):
    return b1 * np.exp(-b2 * x) + b3 * np.exp(-b4 * x) + b5 * np.exp(-b6 * x)


_LX = np.round(np.arange(24) * 0.05, 2)
LANCZOS3 = Problem(
    "lanczos3",
    "b1*exp(-b2*x) + b3*exp(-b4*x) + b5*exp(-b6*x)",
    _names(6),
    _LX,
    np.round(_three_exp(_LX, 0.0951, 1.0, 0.8607, 3.0, 1.5576, 5.0), 4),
    _three_exp,
    ((1.2, 0.3, 5.6, 5.5, 6.5, 7.6), (0.5, 0.7, 3.6, 4.2, 4.0, 6.3)),
    (8.6816414977e-02, 9.5498101505e-01, 8.4400777463e-01, 2.9515951832e00, 1.5825685901e00, 4.9863565084e00),
    "NIST StRD Lanczos3 (regenerated: Lanczos' function rounded to 4 decimals)",
)


# --- synthetic data in the shape of NIST problems (fixed seeds) -------------------------------------


def _gauss2(x, b1, b2, b3, b4, b5, b6, b7, b8):
    return b1 * np.exp(-b2 * x) + b3 * np.exp(-((x - b4) ** 2) / b5**2) + b6 * np.exp(-((x - b7) ** 2) / b8**2)


_GX = np.arange(1.0, 251.0)
_GTRUE = (98.778, 0.0105, 100.49, 67.48, 23.13, 71.99, 178.99, 18.39)
GAUSS_TWO_PEAKS = Problem(
    "gauss_two_peaks",
    "b1*exp(-b2*x) + b3*exp(-(x - b4)**2/b5**2) + b6*exp(-(x - b7)**2/b8**2)",
    _names(8),
    _GX,
    _noisy(_gauss2, _GX, _GTRUE, 2.5, seed=1),
    _gauss2,
    ((90.0, 0.008, 80.0, 55.0, 15.0, 90.0, 165.0, 25.0), (97.0, 0.009, 100.0, 65.0, 20.0, 70.0, 178.0, 16.5)),
    _GTRUE,
    "synthetic, NIST Gauss1's model and parameters, noise sd 2.5 (seed 1)",
)


def _gauss_line(x, a, mu, s, c, d):
    return a * np.exp(-((x - mu) ** 2) / (2 * s**2)) + c + d * x


_PX = np.linspace(0.0, 10.0, 101)
_PTRUE = (5.0, 4.2, 0.8, 1.0, 0.3)
GAUSS_PEAK = Problem(
    "gauss_peak",
    "a*exp(-(x - mu)**2/(2*s**2)) + c + d*x",
    ("a", "mu", "s", "c", "d"),
    _PX,
    _noisy(_gauss_line, _PX, _PTRUE, 0.1, seed=2),
    _gauss_line,
    ((2.0, 5.5, 2.0, 0.0, 0.0), (4.0, 4.0, 1.0, 1.0, 0.2)),
    _PTRUE,
    "synthetic: one Gaussian peak on a linear baseline, noise sd 0.1 (seed 2)",
)


def _eckerle4(x, b1, b2, b3):
    return (b1 / b2) * np.exp(-0.5 * ((x - b3) / b2) ** 2)


_EX = np.linspace(400.0, 500.0, 35)
_ETRUE = (1.5543827178, 4.0888321754, 451.54121844)
ECKERLE4 = Problem(
    "eckerle4",
    "(b1/b2) * exp(-0.5*((x - b3)/b2)**2)",
    _names(3),
    _EX,
    _noisy(_eckerle4, _EX, _ETRUE, 0.0015, seed=3),
    _eckerle4,
    ((1.0, 10.0, 500.0), (1.5, 5.0, 450.0)),
    _ETRUE,
    "synthetic, NIST Eckerle4's model and parameters, 35 points, noise sd 0.0015 (seed 3)",
)


def _thurber(x, b1, b2, b3, b4, b5, b6, b7):
    return (b1 + b2 * x + b3 * x**2 + b4 * x**3) / (1 + b5 * x + b6 * x**2 + b7 * x**3)


_TX = np.linspace(-3.067, 2.2, 37)
_TTRUE = (1288.1396800, 1491.0792535, 583.23836877, 75.416644291, 0.96629502864, 0.39797285797, 0.049727297349)
THURBER = Problem(
    "thurber",
    "(b1 + b2*x + b3*x**2 + b4*x**3) / (1 + b5*x + b6*x**2 + b7*x**3)",
    _names(7),
    _TX,
    _noisy(_thurber, _TX, _TTRUE, 13.0, seed=4),
    _thurber,
    ((1000.0, 1000.0, 400.0, 40.0, 0.7, 0.3, 0.03), (1300.0, 1500.0, 500.0, 75.0, 1.0, 0.4, 0.05)),
    _TTRUE,
    "synthetic, NIST Thurber's rational model and parameters, noise sd 13 (seed 4)",
)


def _chwirut(x, b1, b2, b3):
    return np.exp(-b1 * x) / (b2 + b3 * x)


_CX = np.linspace(0.5, 6.0, 54)
_CTRUE = (0.16657666537, 0.0051653291286, 0.012150007096)
CHWIRUT = Problem(
    "chwirut",
    "exp(-b1*x) / (b2 + b3*x)",
    _names(3),
    _CX,
    _noisy(_chwirut, _CX, _CTRUE, 0.03, seed=5, relative=True),
    _chwirut,
    ((0.1, 0.01, 0.02), (0.15, 0.008, 0.01)),
    _CTRUE,
    "synthetic, NIST Chwirut2's model and parameters, 3% relative noise (seed 5)",
)


def _two_exp(x, a1, k1, a2, k2):
    return a1 * np.exp(-k1 * x) + a2 * np.exp(-k2 * x)


_DX = np.linspace(0.0, 10.0, 60)
_DTRUE = (3.0, 1.5, 1.0, 0.2)
TWO_EXP = Problem(
    "two_exp",
    "a1*exp(-k1*x) + a2*exp(-k2*x)",
    ("a1", "k1", "a2", "k2"),
    _DX,
    _noisy(_two_exp, _DX, _DTRUE, 0.01, seed=6),
    _two_exp,
    ((1.0, 5.0, 1.0, 0.01), (2.0, 1.0, 1.0, 0.1)),
    _DTRUE,
    "synthetic: a two-exponential decay, noise sd 0.01 (seed 6)",
)

PROBLEMS: list[Problem] = [
    MISRA1A,
    BOXBOD,
    DANWOOD,
    MGH09,
    LANCZOS3,
    GAUSS_TWO_PEAKS,
    GAUSS_PEAK,
    ECKERLE4,
    THURBER,
    CHWIRUT,
    TWO_EXP,
]


def by_name(name: str) -> Problem:
    return next(p for p in PROBLEMS if p.name == name)
