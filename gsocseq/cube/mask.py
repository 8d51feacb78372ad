"""The modelled-pixel mask: one :class:`~gsocseq.model.codes.Reason` code per cell (pure numpy).

Precedence (first that applies): outside the region → land use not modelled → missing input
(NaN in SOC, clay, any month of climate or cover, or FAO class 0) → input outside its valid range.
"""

from __future__ import annotations

import numpy as np

from gsocseq.model.codes import MODELLED_LAND_USE, Reason

#: Valid ranges in cube units (inclusive); values outside → ``Reason.INPUT_OUT_OF_RANGE``.
VALID_RANGE: dict[str, tuple[float, float]] = {
    "soc": (0.0, 1000.0),  # t C/ha, 0-30 cm
    "clay": (0.0, 100.0),  # %
    "tmp": (-60.0, 60.0),  # degC, monthly mean
    "prec": (0.0, 3000.0),  # mm/month
    "pet": (0.0, 1000.0),  # mm/month
    "cover": (0.0, 1.0),  # share
}


def reason_codes(
    inside: np.ndarray,
    land_use: np.ndarray,
    fields: dict[str, np.ndarray],
) -> np.ndarray:
    """Return the uint8 reason code per cell.

    ``inside`` (ny, nx) bool: cell in the region; ``land_use`` (ny, nx) FAO class (0 = no data);
    ``fields``: cube variables by name, (ny, nx) or (ny, nx, t), in cube units.
    """
    missing = land_use == 0
    out_of_range = np.zeros(inside.shape, dtype=bool)
    for name, values in fields.items():
        v = values if values.ndim == 3 else values[..., None]
        finite = np.isfinite(v)
        missing |= ~finite.all(axis=-1)
        lo, hi = VALID_RANGE[name]
        with np.errstate(invalid="ignore"):
            out_of_range |= ((v < lo) | (v > hi)).any(axis=-1)
    modelled_lu = np.isin(land_use, np.fromiter(MODELLED_LAND_USE, dtype=np.int64))
    reason = np.full(inside.shape, Reason.OK, dtype=np.uint8)
    reason[out_of_range] = Reason.INPUT_OUT_OF_RANGE
    reason[missing] = Reason.MISSING_INPUT
    reason[~modelled_lu & (land_use != 0)] = Reason.NOT_AGRICULTURAL
    reason[~inside] = Reason.OUTSIDE_REGION
    return reason
