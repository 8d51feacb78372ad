"""FAO GSOCseq uncertainty layers from the central / min / max bracket runs (reference §4.2).

Stock uncertainty (eq. 12.7), %: ``U = 100·(SOC_max − SOC_min) / (2·SOC)``.
Rate uncertainty (eq. 12.2 as coded in FAO's ``14_Points_To_Raster.R``), %:
``U_rate = sqrt((U_a·a)² + (U_b·b)²) / |a + b|`` for the two stocks ``a``, ``b`` whose difference is
the rate. The denominator is the *sum* of the stocks, as FAO computes it (so the values are of the
order of the stock uncertainties); it is reproduced for compatibility.
Also owns the bracket runs' input perturbations (:class:`Bracket`, :data:`BRACKET_RUNS`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gsocseq.vocabulary import SSM_LABELS

#: Bracket perturbations of reference §4.2 (min run, max run): multiplicative factors.
TEMPERATURE_FACTORS: tuple[float, float] = (1.02, 0.98)
PRECIPITATION_FACTORS: tuple[float, float] = (0.95, 1.05)
CLAY_FACTORS: tuple[float, float] = (0.90, 1.10)
SOC_FACTORS: tuple[float, float] = (0.80, 1.20)
SSM_INPUT_SHIFT: float = 0.15
"""SSM input factor shift of the medium scenario's brackets: (f_med − 0.15, f_med + 0.15)."""


class Bracket(NamedTuple):
    """Multiplicative input factors of one bracket run (all 1.0: the central run)."""

    soc: float = 1.0
    clay: float = 1.0
    tmp: float = 1.0
    prec: float = 1.0
    ssm_shift: float = 0.0
    """Added to the medium SSM input factor (−0.15 min, +0.15 max)."""


CENTRAL = Bracket()
BRACKET_RUNS: dict[str, Bracket] = {
    "min": Bracket(SOC_FACTORS[0], CLAY_FACTORS[0], TEMPERATURE_FACTORS[0], PRECIPITATION_FACTORS[0],
                   -SSM_INPUT_SHIFT),
    "max": Bracket(SOC_FACTORS[1], CLAY_FACTORS[1], TEMPERATURE_FACTORS[1], PRECIPITATION_FACTORS[1],
                   SSM_INPUT_SHIFT),
}
"""The min and max runs of reference §4.2, keyed as :data:`gsocseq.vocabulary.BRACKETS`."""


def stock_uncertainty(central: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Return the stock uncertainty in % from the central, min and max bracket stocks (t C/ha)."""
    central = np.asarray(central, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 100.0 * (np.asarray(high) - np.asarray(low)) / (2.0 * central)


def rate_uncertainty(
    stock_a: np.ndarray, unc_a: np.ndarray, stock_b: np.ndarray, unc_b: np.ndarray
) -> np.ndarray:
    """Return the uncertainty in % of a rate between two stocks (t C/ha) with uncertainties (%)."""
    a = np.asarray(stock_a, dtype=np.float64)
    b = np.asarray(stock_b, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.hypot(np.asarray(unc_a) * a, np.asarray(unc_b) * b) / np.abs(a + b)


def uncertainty_layers(
    *,
    t0: np.ndarray,
    t0_min: np.ndarray,
    t0_max: np.ndarray,
    bau: np.ndarray,
    bau_min: np.ndarray,
    bau_max: np.ndarray,
    ssm_med: np.ndarray,
    ssm_med_min: np.ndarray,
    ssm_med_max: np.ndarray,
    ssm: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> dict[str, np.ndarray]:
    """Return the ten FAO uncertainty layers (%) keyed by their ``vocabulary.LAYERS`` names.

    Stocks in t C/ha: ``t0`` (2020), ``bau`` (2040 BAU), ``ssm_med`` (2040 SSM medium = SSM2), each with
    its min/max bracket, and ``ssm`` the three central 2040 SSM stocks (SSM1, SSM2, SSM3).
    """
    u_t0 = stock_uncertainty(t0, t0_min, t0_max)
    u_bau = stock_uncertainty(bau, bau_min, bau_max)
    u_ssm = stock_uncertainty(ssm_med, ssm_med_min, ssm_med_max)
    out = {
        "T0_Uncertainty": u_t0,
        "BAU_Uncertainty": u_bau,
        "SSM_Uncertainty": u_ssm,
        "ASR_BAU_Uncertainty": rate_uncertainty(bau, u_bau, t0, u_t0),
    }
    for label, final in zip(SSM_LABELS, ssm, strict=True):
        out[f"ASR_{label}_Uncertainty"] = rate_uncertainty(final, u_ssm, t0, u_t0)
    for label, final in zip(SSM_LABELS, ssm, strict=True):
        out[f"RSR_{label}_Uncertainty"] = rate_uncertainty(final, u_ssm, bau, u_bau)
    return out
