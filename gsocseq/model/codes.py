"""Product layer names and per-pixel reason codes shared by the model, pipeline and products.

Pure constants: no I/O. Reason codes are ``uint8`` values stored in the cube and the product cube;
``0`` means the pixel was modelled.
"""

from __future__ import annotations

from enum import IntEnum


class Reason(IntEnum):
    """Why a pixel has no modelled value (``uint8`` in the cube / product cube)."""

    OK = 0
    OUTSIDE_REGION = 1
    NOT_AGRICULTURAL = 2
    MISSING_INPUT = 3
    INPUT_OUT_OF_RANGE = 4
    NON_FINITE_RESULT = 5
    FAO_TEMPERATURE_UNDEFINED = 6
    FAO_EULER_UNSTABLE = 7
    FAO_IN_MODEL_FILTER = 8
    SPINUP_FAILED = 9
    NO_VALID_NDVI = 10


REASON_DESCRIPTIONS: dict[int, str] = {
    Reason.OK: "modelled",
    Reason.OUTSIDE_REGION: "outside the region",
    Reason.NOT_AGRICULTURAL: "land use not modelled (not cropland, grassland, shrubland, tree crops, paddy)",
    Reason.MISSING_INPUT: "missing input (nodata in SOC, clay, climate or cover)",
    Reason.INPUT_OUT_OF_RANGE: "input outside its valid range",
    Reason.NON_FINITE_RESULT: "model result not finite",
    Reason.FAO_TEMPERATURE_UNDEFINED: "fao scheme: SoilR temperature function undefined (T < -18.3 C)",
    Reason.FAO_EULER_UNSTABLE: "fao scheme: explicit Euler unstable (combined rate factor > 2.4)",
    Reason.FAO_IN_MODEL_FILTER: "fao scheme: in-model filter (SOC < 0 or > 300 t C/ha)",
    Reason.SPINUP_FAILED: "spin-up has no positive equilibrium input",
    Reason.NO_VALID_NDVI: "vegetation cover undefined: no valid NDVI composite in a calendar month",
}

SCENARIOS: tuple[str, ...] = ("bau", "ssm_low", "ssm_med", "ssm_high")
"""Forward scenarios: business as usual and sustainable soil management low / medium / high."""

SSM_LABELS: tuple[str, ...] = ("SSM1", "SSM2", "SSM3")

#: The 29 product layers of the FAO specification, in FAO order, with units.
LAYERS: dict[str, str] = {
    "T0": "t C/ha",
    "finalSOC_BAU": "t C/ha",
    "finalSOC_SSM1": "t C/ha",
    "finalSOC_SSM2": "t C/ha",
    "finalSOC_SSM3": "t C/ha",
    "AbsDiff_BAU": "t C/ha",
    "AbsDiff_SSM1": "t C/ha",
    "AbsDiff_SSM2": "t C/ha",
    "AbsDiff_SSM3": "t C/ha",
    "ASR_BAU": "t C/ha/yr",
    "ASR_SSM1": "t C/ha/yr",
    "ASR_SSM2": "t C/ha/yr",
    "ASR_SSM3": "t C/ha/yr",
    "RelDiff_SSM1": "t C/ha",
    "RelDiff_SSM2": "t C/ha",
    "RelDiff_SSM3": "t C/ha",
    "RSR_SSM1": "t C/ha/yr",
    "RSR_SSM2": "t C/ha/yr",
    "RSR_SSM3": "t C/ha/yr",
    "T0_Uncertainty": "%",
    "BAU_Uncertainty": "%",
    "SSM_Uncertainty": "%",
    "ASR_BAU_Uncertainty": "%",
    "ASR_SSM1_Uncertainty": "%",
    "ASR_SSM2_Uncertainty": "%",
    "ASR_SSM3_Uncertainty": "%",
    "RSR_SSM1_Uncertainty": "%",
    "RSR_SSM2_Uncertainty": "%",
    "RSR_SSM3_Uncertainty": "%",
}
LAYER_NAMES: tuple[str, ...] = tuple(LAYERS)
assert len(LAYER_NAMES) == 29

#: FAO land-use classes that are modelled, with DPM/RPM ratio and NPP→C input coefficient.
MODELLED_LAND_USE: dict[int, str] = {
    2: "cropland",
    3: "grassland",
    5: "shrubland",
    12: "tree crops",
    13: "paddy fields",
}


def fao_file_name(region: str, layer: str) -> str:
    """FAO product file name: ``{ISO3}_GSOCseq_{Product}_Map030.tif``.

    Uncertainty layers are named ``..._{Product}_UncertaintyMap030.tif`` as in the FAO specification
    (reference §4.1), e.g. ``ARG_GSOCseq_T0_UncertaintyMap030.tif``.
    """
    if layer not in LAYERS:
        raise KeyError(f"unknown product layer {layer!r}; expected one of {LAYER_NAMES}")
    if layer.endswith("_Uncertainty"):
        return f"{region}_GSOCseq_{layer}Map030.tif"
    return f"{region}_GSOCseq_{layer}_Map030.tif"
