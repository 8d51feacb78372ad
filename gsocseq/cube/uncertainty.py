"""The cube's optional ``soc_uncertainty`` variable: from the regridded source to percent of SOC.

Owns the conversion of an absolute uncertainty (t C/ha) to percent of the 30″ cell's SOC, the
plausible range of the variable (used by the reason codes, :mod:`gsocseq.cube.mask`) and the
warning that names the source, file and values when pixels are masked for it. Pure numpy.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

#: Plausible ``soc_uncertainty`` in percent of SOC (half-width of the 95 % range); outside it a
#: modelled pixel is masked ``INPUT_OUT_OF_RANGE`` (negative values, absurd ones).
SOC_UNCERTAINTY_RANGE: tuple[float, float] = (0.0, 1000.0)


def to_percent(values: np.ndarray, units: str, soc: np.ndarray) -> np.ndarray:
    """Return the uncertainty in percent of the cell's SOC (float32, same shape).

    Parameters
    ----------
    values : numpy.ndarray
        (ny, nx) uncertainty on the 30″ cells, in ``units``.
    units : str
        ``%`` (already relative: returned as is) or ``t C/ha`` (absolute half-width).
    soc : numpy.ndarray
        (ny, nx) SOC stock 0-30 cm, t C/ha, on the same cells.

    Returns
    -------
    numpy.ndarray
        Half-width of the 95 % range, % of SOC: ``100 · values / soc``; 0 where SOC is 0 (a zero
        stock has no spread to draw), NaN where either input is NaN.
    """
    v = np.asarray(values, dtype=np.float64)
    if units == "%":
        return v.astype(np.float32)
    if units != "t C/ha":
        raise ValueError(f"soc_uncertainty units {units!r}: expected '%' or 't C/ha'")
    s = np.asarray(soc, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.where(s > 0, 100.0 * v / s, np.where(np.isnan(v), np.nan, 0.0))
    return np.where(np.isnan(s), np.nan, pct).astype(np.float32)


def report_masked(
    where: str, tile_id: str, unc: np.ndarray, soc: np.ndarray, candidates: np.ndarray
) -> int:
    """Log a warning naming ``where`` (source and file) when ``unc`` masks modelled pixels.

    ``candidates`` (bool) are the cells that would be modelled on their other inputs; among them,
    cells with valid SOC and a NaN or out-of-range uncertainty are counted. Returns that count.
    """
    lo, hi = SOC_UNCERTAINTY_RANGE
    with np.errstate(invalid="ignore"):
        bad_value = (unc < lo) | (unc > hi)
    missing = candidates & np.isfinite(soc) & np.isnan(unc)
    out = candidates & np.isfinite(soc) & bad_value
    n = int(missing.sum() + out.sum())
    if n:
        sample = unc[out][:3].tolist() if out.any() else []
        log.warning(
            "%s, tile %s: %d pixel(s) with valid SOC masked for soc_uncertainty (%d NaN/nodata, "
            "%d outside %s %% of SOC, e.g. %s)", where, tile_id, n, int(missing.sum()),
            int(out.sum()), list(SOC_UNCERTAINTY_RANGE), sample,
        )
    return n
