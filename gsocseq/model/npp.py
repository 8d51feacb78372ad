"""MIAMI net primary production (Lieth 1975), the GSOCseq driver of year-to-year C inputs.

Reference §3.4: ``NPP = min(3000/(1+exp(1.315−0.119·T)), 3000·(1−exp(−0.000664·P)))`` g DM/m²/yr from
the annual mean temperature T (°C) and annual precipitation P (mm); ×0.01 (g/m² → t/ha) ×0.5 (carbon
fraction of dry matter, as the FAO scripts) gives t C/ha/yr. Only ratios of NPP enter the warm-up, so
the constant factors cancel.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from gsocseq.errors import InputValidationError

G_PER_M2_TO_T_PER_HA: float = 0.01
CARBON_FRACTION: float = 0.5
"""Carbon fraction of dry matter used by the FAO scripts (the manual's eq. 6.9 says 0.48)."""


def miami_npp(tmp_mean: np.ndarray, prec_total: np.ndarray) -> np.ndarray:
    """Return MIAMI NPP in g DM/m²/yr from annual mean temperature (°C) and precipitation (mm/yr)."""
    t = np.asarray(tmp_mean, dtype=np.float64)
    p = np.asarray(prec_total, dtype=np.float64)
    shape = np.broadcast_shapes(t.shape, p.shape)
    # 3000 / (1 + exp(1.315 - 0.119·T)) and 3000·(1 - exp(-0.000664·P)), each step in place:
    # the same operations (the same numbers) without a temporary array per step
    npp_t = np.multiply(0.119, t, out=np.empty(shape))
    np.subtract(1.315, npp_t, out=npp_t)
    np.exp(npp_t, out=npp_t)
    np.add(1.0, npp_t, out=npp_t)
    np.divide(3000.0, npp_t, out=npp_t)
    npp_p = np.multiply(-0.000664, p, out=np.empty(shape))
    np.exp(npp_p, out=npp_p)
    np.subtract(1.0, npp_p, out=npp_p)
    np.multiply(3000.0, npp_p, out=npp_p)
    return np.minimum(npp_t, npp_p, out=npp_t)


@njit(inline="always")
def miami_npp_point(tmp_mean: float, prec_total: float) -> float:
    """:func:`miami_npp` of one pixel-year inside compiled kernels (g DM/m²/yr; °C, mm/yr).

    The same formula as :func:`miami_npp`, kept beside it: that one stays NumPy (its ``exp`` is
    NumPy's, the central run's bytes), this one is inlined into the Monte Carlo kernel.
    """
    npp_t = 3000.0 / (1.0 + math.exp(1.315 - 0.119 * tmp_mean))
    npp_p = 3000.0 * (1.0 - math.exp(-0.000664 * prec_total))
    return min(npp_t, npp_p)


def miami_npp_carbon(tmp_mean: np.ndarray, prec_total: np.ndarray) -> np.ndarray:
    """Return MIAMI NPP in t C/ha/yr (dry matter × 0.01 × carbon fraction 0.5)."""
    npp = miami_npp(tmp_mean, prec_total)
    return np.multiply(npp, G_PER_M2_TO_T_PER_HA * CARBON_FRACTION, out=npp)


def annual_npp(tmp: np.ndarray, prec: np.ndarray) -> np.ndarray:
    """Return MIAMI NPP per calendar year in t C/ha/yr, shape ``(n_years, n)``.

    ``tmp`` (°C) and ``prec`` (mm/month) have shape ``(12·n_years, n)``, January first; each year uses
    the mean of its twelve monthly temperatures and the sum of its twelve precipitation totals.
    """
    tmp = np.asarray(tmp, dtype=np.float64)
    prec = np.asarray(prec, dtype=np.float64)
    if tmp.shape != prec.shape or tmp.ndim != 2 or tmp.shape[0] % 12:
        raise InputValidationError(
            f"tmp {tmp.shape} and prec {prec.shape} must both be (12*n_years, n_pixels)"
        )
    n_years = tmp.shape[0] // 12
    t_year = tmp.reshape(n_years, 12, -1).mean(axis=1)
    p_year = prec.reshape(n_years, 12, -1).sum(axis=1)
    return miami_npp_carbon(t_year, p_year)
