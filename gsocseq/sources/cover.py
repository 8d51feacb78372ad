"""Monthly vegetation cover from 16-day MODIS NDVI composites, computed as FAO does (reference §3.6).

For calendar month m: ``P_veg(m) = #composites starting in m with NDVI > threshold / #valid
composites starting in m``, per 30″ cell (the cube's ``cover``; the model's factor is
``1 − 0.4·P_veg``). A month without any valid composite leaves the cell NaN, masked with
:attr:`~gsocseq.vocabulary.Reason.NO_VALID_NDVI` (FAO's scripts silently set it to 0 = bare).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from gsocseq.vocabulary import Reason

#: MOD13A1/MOD13A2 061 NDVI packing: int16, NDVI = raw × 1e-4, valid −2000…10000, fill −3000.
MOD13_SCALE: float = 1e-4
MOD13_FILL: int = -3000
MOD13_VALID: tuple[int, int] = (-2000, 10000)
#: MOD13 pixel reliability kept by the optional QA filter: 0 good, 1 marginal.
RELIABLE: tuple[int, ...] = (0, 1)


def raw_threshold(threshold: float, scale: float = MOD13_SCALE) -> float:
    """Return the NDVI threshold in raw units (0.4 → 4000, as ``gt(4000)`` in FAO's GEE script)."""
    return round(threshold / scale, 6)


def monthly_counts(
    raw: xr.DataArray,
    *,
    threshold: float,
    scale: float = MOD13_SCALE,
    fill: int = MOD13_FILL,
    valid_range: tuple[int, int] = MOD13_VALID,
    reliability: xr.DataArray | None = None,
) -> tuple[xr.DataArray, xr.DataArray]:
    """Count vegetated and valid composites per calendar month: two ``(month=12, …)`` arrays.

    ``raw`` holds packed NDVI with a ``time`` axis (composite start); lazy (dask) arrays stay lazy.
    A composite is valid when it is not ``fill``, lies in ``valid_range`` and, with
    ``reliability``, has reliability 0 or 1; vegetated when valid and NDVI > ``threshold``.
    """
    lo, hi = valid_range
    valid = (raw != fill) & (raw >= lo) & (raw <= hi)
    if reliability is not None:
        valid = valid & reliability.isin(RELIABLE)
    veg = valid & (raw > raw_threshold(threshold, scale))
    month = raw["time"].dt.month.rename("month")
    months = np.arange(1, 13)
    n_veg = veg.astype("int16").groupby(month).sum("time").reindex(month=months, fill_value=0)
    n_valid = valid.astype("int16").groupby(month).sum("time").reindex(month=months, fill_value=0)
    return n_veg, n_valid


def p_veg(n_veg: np.ndarray, n_valid: np.ndarray) -> np.ndarray:
    """Return the vegetated share (float32, 0-1), NaN where a month has no valid composite."""
    n_veg = np.asarray(n_veg, dtype=np.float64)
    n_valid = np.asarray(n_valid, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(n_valid > 0, n_veg / n_valid, np.nan)
    return share.astype(np.float32)


def cover_from_ndvi(
    raw: xr.DataArray,
    *,
    threshold: float,
    scale: float = MOD13_SCALE,
    fill: int = MOD13_FILL,
    reliability: xr.DataArray | None = None,
    io_threads: int = 4,
) -> xr.DataArray:
    """Return ``cover`` = P_veg as ``(month, latitude, longitude)`` float32, computed on dask.

    The reduction runs inside the calling task (a cube tile task on the cluster) on a local pool
    of ``io_threads`` threads, a few composite chunks at a time: memory is bounded by the tile,
    not by the period.
    """
    import dask

    n_veg, n_valid = monthly_counts(
        raw, threshold=threshold, scale=scale, fill=fill, reliability=reliability
    )
    n_veg, n_valid = dask.compute(n_veg, n_valid, scheduler="threads", num_workers=io_threads)
    share = p_veg(n_veg.values, n_valid.values)
    return xr.DataArray(
        share,
        dims=("month", "latitude", "longitude"),
        coords={"month": np.arange(1, 13), "latitude": raw["latitude"], "longitude": raw["longitude"]},
        attrs={"units": "1", "nan_reason": int(Reason.NO_VALID_NDVI)},
    )


def mark_no_valid_ndvi(reason: np.ndarray, cover: np.ndarray) -> np.ndarray:
    """Give missing-input cells whose cover is NaN in some month the NDVI reason (in place).

    ``reason`` (ny, nx) uint8 from :func:`gsocseq.cube.mask.reason_codes`; ``cover`` (ny, nx, 12).
    """
    no_ndvi = ~np.isfinite(cover).all(axis=-1)
    reason[(reason == Reason.MISSING_INPUT) & no_ndvi] = Reason.NO_VALID_NDVI
    return reason
