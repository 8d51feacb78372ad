"""The modelled-pixel mask: one :class:`~gsocseq.vocabulary.Reason` code per cell (pure numpy).

Precedence (first that applies): outside the region → land use not modelled → missing input
(NaN in SOC, clay, any month of climate or cover, or FAO class 0) → input outside its plausible
range (:data:`gsocseq.vocabulary.PLAUSIBLE_RANGES`, the table the model uses too; the optional
``soc_uncertainty`` uses :data:`gsocseq.cube.uncertainty.SOC_UNCERTAINTY_RANGE`).
"""

from __future__ import annotations

import numpy as np

from gsocseq.cube.uncertainty import SOC_UNCERTAINTY_RANGE
from gsocseq.vocabulary import MODELLED_LAND_USE, PLAUSIBLE_RANGES, Reason

#: Plausible range per cube variable the mask checks (the model's table plus optional variables).
RANGES: dict[str, tuple[float, float]] = {**PLAUSIBLE_RANGES,
                                          "soc_uncertainty": SOC_UNCERTAINTY_RANGE}


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
        lo, hi = RANGES[name]
        with np.errstate(invalid="ignore"):
            out_of_range |= ((v < lo) | (v > hi)).any(axis=-1)
    modelled_lu = np.isin(land_use, np.fromiter(MODELLED_LAND_USE, dtype=np.int64))
    reason = np.full(inside.shape, Reason.OK, dtype=np.uint8)
    reason[out_of_range] = Reason.INPUT_OUT_OF_RANGE
    reason[missing] = Reason.MISSING_INPUT
    reason[~modelled_lu & (land_use != 0)] = Reason.NOT_AGRICULTURAL
    reason[~inside] = Reason.OUTSIDE_REGION
    return reason
