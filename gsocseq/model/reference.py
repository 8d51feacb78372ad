"""A slow, readable pure-Python RothC-26.3 for one pixel, written from the model description.

This is the test oracle of :mod:`gsocseq.model.rothc` (kernels must agree to ~1e-12); it follows
``RothC.for`` / ``RothC_Py`` step by step with Python floats and :mod:`math`, one pool at a time.
Never use it for production runs (about 10⁵ pixel-months per second).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
    rain: float
    evap: float
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
    smd: float, rain: float, evap: float, cover: float, clay: float, depth: float,
    evap_factor: float = 0.75,
) -> tuple[float, float]:
    """Return (new deficit in mm, moisture rate modifier b) for one month."""
    smd_max = -(20.0 + 1.3 * clay - 0.01 * clay * clay) * depth / 23.0
    smd_1bar = 0.444 * smd_max
    smd_bare = 0.556 * smd_max
    df = rain - evap_factor * evap
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
    smd, b = moisture(state.smd, m.rain, m.evap, m.cover, clay, depth, evap_factor)
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
