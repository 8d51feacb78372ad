"""A slow, readable pure-Python RothC-26.3 for one pixel, written from the model description.

This is the test oracle of :mod:`gsocseq.model.rothc` (kernels must agree to ~1e-12); it follows
``RothC.for`` / ``RothC_Py`` step by step with Python floats and :mod:`math`, one pool at a time.
Never use it for production runs (about 10⁵ pixel-months per second). Also owns the kernel table
(:data:`KERNELS`: kernel, reference, tolerance) that the tests and the benchmarks share.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from gsocseq.model import fao, rothc

#: Decomposition rate constants (yr⁻¹).
RATE_CONSTANTS = {"dpm": 10.0, "rpm": 0.3, "bio": 0.66, "hum": 0.02}
#: Time step (yr): one month.
TSTEP = 1.0 / 12.0


@dataclass
class State:
    """State of one pixel: pools (t C/ha) and moisture deficit (mm, ≤ 0)."""

    dpm: float
    rpm: float
    bio: float
    hum: float
    iom: float
    smd: float = 0.0

    @property
    def soc(self) -> float:
        """Total SOC (t C/ha)."""
        return self.dpm + self.rpm + self.bio + self.hum + self.iom


@dataclass(frozen=True)
class Month:
    """Inputs of one month: °C, mm, mm, vegetated share, t C/ha, t C/ha, DPM/RPM ratio."""

    tmp: float
    prec: float
    pet: float
    cover: float
    c_inp: float
    fym: float
    dpm_rpm: float


def temperature_factor(tmp: float) -> float:
    """Return the temperature rate modifier a for mean air temperature ``tmp`` (°C)."""
    if tmp < -5.0:
        return 0.0
    return 47.91 / (1.0 + math.exp(106.06 / (tmp + 18.27)))


def moisture(
    smd: float, prec: float, pet: float, cover: float, clay: float, depth: float,
    evap_factor: float = 0.75,
) -> tuple[float, float]:
    """Return (new deficit in mm, moisture rate modifier b) for one month."""
    smd_max = -(20.0 + 1.3 * clay - 0.01 * clay * clay) * depth / 23.0
    smd_1bar = 0.444 * smd_max
    smd_bare = 0.556 * smd_max
    df = prec - evap_factor * pet
    if cover >= 0.5:  # covered
        new = max(smd_max, min(0.0, smd + df))
    else:  # bare
        new = max(min(smd_bare, smd), min(0.0, smd + df))
    if new > smd_1bar:
        b = 1.0
    else:
        b = 0.2 + (1.0 - 0.2) * (smd_max - new) / (smd_max - smd_1bar)
    return new, b


def cover_factor(cover: float) -> float:
    """Return the plant-cover rate modifier c = 1 - 0.4·cover (0.6 covered, 1.0 bare)."""
    return 1.0 - 0.4 * cover


def month(
    state: State, m: Month, clay: float, depth: float, evap_factor: float = 0.75,
    rate_modifier: float = 1.0,
) -> tuple[State, float]:
    """Return the end-of-month state and the CO₂-C released that month (t C/ha)."""
    smd, b = moisture(state.smd, m.prec, m.pet, m.cover, clay, depth, evap_factor)
    rate = temperature_factor(m.tmp) * b * cover_factor(m.cover) * rate_modifier
    x = 1.67 * (1.85 + 1.60 * math.exp(-0.0786 * clay))
    to_co2, to_bio, to_hum = x / (x + 1.0), 0.46 / (x + 1.0), 0.54 / (x + 1.0)

    remaining = {}
    decomposed = {}
    for name, k in RATE_CONSTANTS.items():
        pool = getattr(state, name)
        remaining[name] = pool * math.exp(-rate * k * TSTEP)
        decomposed[name] = pool - remaining[name]

    co2 = sum(d * to_co2 for d in decomposed.values())
    bio = remaining["bio"] + sum(d * to_bio for d in decomposed.values())
    hum = remaining["hum"] + sum(d * to_hum for d in decomposed.values())
    dpm = remaining["dpm"]
    rpm = remaining["rpm"]

    # inputs after decomposition: plant C by the DPM/RPM ratio, manure 49 % / 49 % / 2 % HUM
    dpm += m.dpm_rpm / (m.dpm_rpm + 1.0) * m.c_inp + 0.49 * m.fym
    rpm += 1.0 / (m.dpm_rpm + 1.0) * m.c_inp + 0.49 * m.fym
    hum += 0.02 * m.fym
    return State(dpm, rpm, bio, hum, state.iom, smd), co2


def run(
    state: State, months: list[Month], clay: float, depth: float, evap_factor: float = 0.75,
    rate_modifier: float = 1.0,
) -> list[tuple[State, float]]:
    """Return the end-of-month states and CO₂-C (t C/ha) of every month of ``months``."""
    out = []
    for m in months:
        state, co2 = month(state, m, clay, depth, evap_factor, rate_modifier)
        out.append((state, co2))
    return out


def equilibrium_by_iteration(
    iom: float, year: list[Month], clay: float, depth: float, evap_factor: float = 0.75,
    tol: float = 1e-6, max_years: int = 100_000,
) -> tuple[State, int]:
    """Cycle ``year`` from empty pools and zero deficit like the official driver (``Shell.for``).

    Stops when the December active SOC changes by less than ``tol`` t C/ha in a year; returns the
    state and the number of months run.
    """
    state = State(0.0, 0.0, 0.0, 0.0, iom, 0.0)
    previous = 0.0
    for years in range(1, max_years + 1):
        for m in year:
            state, _ = month(state, m, clay, depth, evap_factor)
        active = state.dpm + state.rpm + state.bio + state.hum
        if abs(active - previous) < tol:
            return state, 12 * years
        previous = active
    return state, 12 * max_years


# ---------------------------------------------------------------------------------------------
# The kernel table: every fast path with its independent reference and tolerance (used by the
# tests, which run each case on a few pixels, and by ``benchmarks/bench_rothc.py``, which times
# both sides).


class KernelCase(NamedTuple):
    """A fast kernel, an independent way to compute the same numbers, and how close they agree."""

    name: str
    kernel: Callable[[dict[str, Any]], np.ndarray]
    reference: Callable[[dict[str, Any]], np.ndarray]
    rtol: float
    atol: float
    months: int
    """Months of inputs the case needs (``synthetic_case(n, months)``)."""
    work: Callable[[dict[str, Any]], float]
    """Pixel-months the case computes (for throughput figures)."""


def synthetic_case(n_pixels: int, n_months: int, seed: int = 0) -> dict[str, Any]:
    """Return seasonal inputs of ``n_pixels`` (units of :mod:`gsocseq.model.rothc`) and a state."""
    rng = np.random.default_rng(seed)
    month = np.arange(n_months) % 12
    season = np.cos(2 * np.pi * (month - 6) / 12)[:, None]
    tmp = rng.uniform(-2, 26, n_pixels) + rng.uniform(1, 14, n_pixels) * season
    tmp = tmp + rng.normal(0, 1, (n_months, n_pixels))
    cover = np.repeat(((month >= 3) & (month <= 9))[:, None], n_pixels, 1).astype(float)
    pools = np.zeros((n_pixels, 5))
    pools[:, 1:4] = rng.uniform(1, 30, (n_pixels, 3))
    pools[:, 4] = 3.0
    clay = rng.uniform(5, 60, n_pixels)
    return {
        "pools": pools, "smd": rng.uniform(0, 0.9, n_pixels) * _smd_max(clay, 30.0),
        "tmp": tmp, "prec": rng.uniform(0, 150, (n_months, n_pixels)),
        "pet": np.clip(20 + 4 * tmp, 0, None), "cover": cover,
        "c_inp": np.full((n_months, n_pixels), 0.25), "fym": np.zeros((n_months, n_pixels)),
        "dpm_rpm": np.full(n_pixels, 1.44), "clay": clay, "depth": np.full(n_pixels, 30.0),
        "rate_modifier": rng.choice([1.0, 0.4], n_pixels), "evap_factor": 1.0,
    }


def _smd_max(clay: np.ndarray, depth: float) -> np.ndarray:
    return -(20.0 + 1.3 * clay - 0.01 * clay * clay) * depth / 23.0


def _site(c: dict[str, Any]) -> Any:
    keys = ("tmp", "prec", "pet", "cover", "dpm_rpm", "clay", "depth", "rate_modifier",
            "evap_factor")
    return rothc.site(**{k: c[k] for k in keys})


def _simulate_kernel(c: dict[str, Any]) -> np.ndarray:
    return rothc.simulate(c["pools"], c["smd"], _site(c), c_inp=c["c_inp"], fym=c["fym"],
                          monthly=True)[0]


def _simulate_reference(c: dict[str, Any]) -> np.ndarray:
    n_months, n = c["tmp"].shape
    out = np.empty((n_months, n, 5))
    names = ("tmp", "prec", "pet", "cover", "c_inp", "fym")
    for i in range(n):
        months = [Month(*(float(c[k][m, i]) for k in names), float(c["dpm_rpm"][i]))
                  for m in range(n_months)]
        states = run(State(*c["pools"][i], smd=float(c["smd"][i])), months, float(c["clay"][i]),
                     float(c["depth"][i]), c["evap_factor"], float(c["rate_modifier"][i]))
        out[:, i] = [[s.dpm, s.rpm, s.bio, s.hum, s.iom] for s, _ in states]
    return out


def _affine_kernel(c: dict[str, Any], years: int = 20) -> np.ndarray:
    site = _site(c)
    m = rothc.annual_affine_map(site, c_inp=c["c_inp"], fym=c["fym"], smd0=c["smd"],
                                periodic=True)
    return rothc.simulate_years_affine(c["pools"], m.a, m.b_fixed, years)


def _affine_reference(c: dict[str, Any], years: int = 20) -> np.ndarray:
    site = _site(c)
    smd = rothc.steady_smd(site, c["smd"])
    return rothc.simulate(c["pools"], smd, site, c_inp=c["c_inp"], fym=c["fym"], repeat=years)[0]


def _equilibrium_kernel(c: dict[str, Any]) -> np.ndarray:
    return rothc.equilibrium(c["pools"][:, 4], _site(c), c_inp=c["c_inp"], fym=c["fym"])[0]


def _equilibrium_reference(c: dict[str, Any], years: int = 100_000) -> np.ndarray:
    start = np.zeros_like(c["pools"])
    start[:, 4] = c["pools"][:, 4]
    return rothc.simulate(start, np.zeros(start.shape[0]), _site(c), c_inp=c["c_inp"],
                          fym=c["fym"], repeat=years)[0]


def _euler_kernel(c: dict[str, Any], years: int = 20) -> np.ndarray:
    xi = _euler_modifiers(c)
    cin = np.full(c["clay"].shape, 3.0)
    return fao.euler_run(c["pools"][:, :4].T, cin, c["dpm_rpm"], c["clay"], xi,
                         years_per_call=years)


def _euler_modifiers(c: dict[str, Any]) -> np.ndarray:
    return fao.rate_modifiers(np.maximum(c["tmp"], -18.0), c["prec"], c["pet"], c["clay"],
                              1.0 - 0.4 * c["cover"], c["rate_modifier"])


def _euler_reference(c: dict[str, Any], years: int = 20) -> np.ndarray:
    """Explicit Euler written out with numpy over the pixels, one step at a time."""
    xi = _euler_modifiers(c)
    k = np.array([10.0, 0.3, 0.66, 0.02])[:, None]
    x = 1.67 * (1.85 + 1.6 * np.exp(-0.0786 * c["clay"]))
    fb, fh = 0.46 / (x + 1.0), 0.54 / (x + 1.0)
    dr = c["dpm_rpm"]
    p = c["pools"][:, :4].T.copy()
    h = 1.0 / 12.0
    inp = np.stack([dr / (1 + dr), 1 / (1 + dr)]) * 3.0
    for s in range(12 * years - 1):
        r = xi[s % 12]
        flux = k * p
        decomposed = flux.sum(axis=0)
        d = np.empty_like(p)
        d[0] = h * inp[0] - h * r * flux[0]
        d[1] = h * inp[1] - h * r * flux[1]
        d[2] = h * r * (fb * decomposed - flux[2])
        d[3] = h * r * (fh * decomposed - flux[3])
        p += d
    return p


KERNELS: tuple[KernelCase, ...] = (
    KernelCase("simulate (monthly steps)", _simulate_kernel, _simulate_reference, 1e-12, 1e-12,
               24, lambda c: c["tmp"].size),
    KernelCase("affine year map x20", _affine_kernel, _affine_reference, 1e-11, 1e-12, 12,
               lambda c: 20.0 * c["tmp"].size),
    KernelCase("closed-form equilibrium", _equilibrium_kernel, _equilibrium_reference, 1e-9, 0.0,
               12, lambda c: float(c["clay"].size)),
    KernelCase("fao explicit Euler x20", _euler_kernel, _euler_reference, 1e-12, 1e-12, 12,
               lambda c: 20.0 * c["tmp"].size),
)
"""Every kernel with its reference: monthly RothC vs the pure-Python oracle of this module; the
affine year map vs month-by-month steps; the closed-form equilibrium vs a 100 000-year iteration
(the exactness bar of the official comparison); FAO's Euler kernel vs numpy steps."""
