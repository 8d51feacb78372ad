"""ESA CCI Land Cover (LCCS) codes → FAO land-use classes of GSOCseq (reference §3.5).

The table is the FAO scripts' ``9_Land_Use_ESA_to_FAO_classes_LUsim.R`` (the *scripts* are what
countries ran, so ESA 110 → tree covered and ESA 130 → grassland, modelled).
"""

from __future__ import annotations

import numpy as np

#: FAO class → ESA CCI LCCS codes.
FAO_FROM_ESA: dict[int, tuple[int, ...]] = {
    0: (0,),
    1: (190,),
    2: (10, 11, 30, 40),
    3: (130,),
    4: (50, 60, 61, 62, 70, 71, 72, 80, 81, 82, 90, 100, 110),
    5: (120, 121, 122),
    6: (160, 180),
    7: (170,),
    8: (150, 151, 152, 153),
    9: (200, 201, 202),
    10: (220,),
    11: (210,),
    12: (12,),
    13: (20,),
}

FAO_NAMES: dict[int, str] = {
    0: "no data",
    1: "artificial",
    2: "croplands",
    3: "grassland",
    4: "tree covered",
    5: "shrubs covered",
    6: "herbaceous vegetation flooded",
    7: "mangroves",
    8: "sparse vegetation",
    9: "bare soil",
    10: "snow and glaciers",
    11: "water bodies",
    12: "tree crops",
    13: "paddy fields",
}

_LUT = np.zeros(256, dtype=np.uint8)
for _fao, _codes in FAO_FROM_ESA.items():
    _LUT[list(_codes)] = _fao

#: All ESA codes of the table (any other code maps to FAO 0, no data).
ESA_CODES: frozenset[int] = frozenset(c for codes in FAO_FROM_ESA.values() for c in codes)


def esa_to_fao(esa: np.ndarray) -> np.ndarray:
    """Map ESA CCI LCCS codes (any integer array, 0…255) to FAO classes (uint8, 0 = no data)."""
    codes = np.asarray(esa)
    valid = (codes >= 0) & (codes <= 255)
    out = np.zeros(codes.shape, dtype=np.uint8)
    out[valid] = _LUT[codes[valid].astype(np.intp)]
    return out
