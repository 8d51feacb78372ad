"""FAO land-use classes → RothC parameters of the GSOCseq procedure.

Reference §2.1 / §3.5 (the FAO scripts' tables): DPM/RPM ratio, the share of MIAMI NPP that becomes
soil C input, the SSM scenario group and the paddy rate factor. Classes 4 (tree cover), 6 and 8 carry
parameters in the FAO scripts but are not modelled (see ``vocabulary.MODELLED_LAND_USE``).
"""

from __future__ import annotations

import numpy as np

from gsocseq.vocabulary import MODELLED_LAND_USE

#: DPM/RPM ratio of the plant input by FAO class (dimensionless).
DPM_RPM: dict[int, float] = {2: 1.44, 12: 1.44, 13: 1.44, 3: 0.67, 5: 0.67, 6: 0.67, 8: 0.67, 4: 0.25}

#: Fraction of MIAMI NPP entering the soil by FAO class (crops 0.53, grass/shrub 0.72, trees 0.88).
NPP_COEFFICIENT: dict[int, float] = {
    2: 0.53, 12: 0.53, 13: 0.53, 3: 0.72, 5: 0.72, 6: 0.72, 8: 0.72, 4: 0.88,
}

#: SSM scenario group by FAO class (the FAO scripts' ``*_Crops``, ``*_Grass``, ``*_PaddyFields``).
SCENARIO_GROUP: dict[int, str] = {
    2: "crops", 12: "crops", 13: "paddy", 3: "grass", 5: "grass", 6: "grass", 8: "grass",
}

PADDY_CLASS: int = 13
PADDY_RATE_FACTOR: float = 0.4
"""Extra decomposition rate factor of paddy fields (Shirato and Yokozawa 2004), dimensionless."""


def _lookup(land_use: np.ndarray, table: dict[int, float]) -> np.ndarray:
    lu = np.asarray(land_use)
    out = np.full(lu.shape, np.nan)
    for cls, value in table.items():
        out[lu == cls] = value
    return out


def is_modelled(land_use: np.ndarray) -> np.ndarray:
    """Return a boolean mask of pixels whose FAO class is modelled (2, 3, 5, 12, 13)."""
    return np.isin(np.asarray(land_use), np.fromiter(MODELLED_LAND_USE, dtype=np.int64))


def dpm_rpm_ratio(land_use: np.ndarray) -> np.ndarray:
    """Return the DPM/RPM ratio per pixel (float64, NaN for classes without one)."""
    return _lookup(land_use, DPM_RPM)


def npp_coefficient(land_use: np.ndarray) -> np.ndarray:
    """Return the NPP → soil C input coefficient per pixel (float64, NaN where undefined)."""
    return _lookup(land_use, NPP_COEFFICIENT)


def rate_factor(land_use: np.ndarray) -> np.ndarray:
    """Return the extra decomposition rate factor per pixel: 0.4 for paddy (13), else 1.0."""
    return np.where(np.asarray(land_use) == PADDY_CLASS, PADDY_RATE_FACTOR, 1.0)


def scenario_group(land_use: np.ndarray) -> np.ndarray:
    """Return the SSM scenario group name per pixel (``crops``/``grass``/``paddy``, ``""`` if none)."""
    lu = np.asarray(land_use)
    out = np.full(lu.shape, "", dtype="<U5")
    for cls, group in SCENARIO_GROUP.items():
        out[lu == cls] = group
    return out
