"""The project's shared words: layers, scenarios, brackets, reason codes, periods, input ranges, the 30″ grid.

Ground floor: pure constants and tiny pure functions, importing nothing of the project. Every other
module (model, cube, pipeline, products, flows) takes these names from here.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

import numpy as np

# ---------------------------------------------------------------------------------------------
# reason codes


class Reason(IntEnum):
    """Why a pixel has no modelled value (``uint8`` in the cube / product cube; 0 = modelled)."""

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

# ---------------------------------------------------------------------------------------------
# scenarios and brackets


class Scenario(NamedTuple):
    """One forward scenario: its key and the labels other vocabularies give it."""

    key: str
    """The one name used in code, configuration and CLI (``bau``, ``ssm_low``, ...)."""
    product: str
    """Label in FAO product layer names (``BAU``, ``SSM1``, ...)."""
    fao_column: str
    """Column of FAO's forward table (script ``13_ROTH_C_FORWARD.R``)."""
    title: str
    """Human-readable name."""


SCENARIO_TABLE: dict[str, Scenario] = {
    s.key: s
    for s in (
        Scenario("bau", "BAU", "SOC_BAU_20", "business as usual"),
        Scenario("ssm_low", "SSM1", "Low_Scenario", "sustainable soil management, low"),
        Scenario("ssm_med", "SSM2", "Med_Scenario", "sustainable soil management, medium"),
        Scenario("ssm_high", "SSM3", "High_Scenario", "sustainable soil management, high"),
    )
}
SCENARIOS: tuple[str, ...] = tuple(SCENARIO_TABLE)
"""Forward scenario keys: business as usual and sustainable soil management low / medium / high."""
SSM_SCENARIOS: tuple[str, ...] = SCENARIOS[1:]
SSM_LABELS: tuple[str, ...] = tuple(SCENARIO_TABLE[k].product for k in SSM_SCENARIOS)
"""Product labels of the SSM scenarios (``SSM1``, ``SSM2``, ``SSM3``)."""

BRACKETS: dict[str, str] = {
    "min": "FAO's min bracket run (T x1.02, P x0.95, clay x0.9, SOC x0.8)",
    "max": "FAO's max bracket run (T x0.98, P x1.05, clay x1.1, SOC x1.2)",
}
"""Uncertainty bracket runs beside the central one (reference §4.2)."""

#: SSM land-use groups of FAO's forward script (``*_Crops``, ``*_Grass``, ``*_PaddyFields``).
LAND_USE_GROUPS: tuple[str, ...] = ("crops", "grass", "paddy")
#: Default SSM input increases over BAU per land-use group: fractions [low, medium, high].
DEFAULT_SSM_INCREASE: dict[str, tuple[float, float, float]] = dict.fromkeys(
    LAND_USE_GROUPS, (0.05, 0.10, 0.20))

# ---------------------------------------------------------------------------------------------
# modelling periods


class Period(NamedTuple):
    """A modelling period: first and last calendar year (inclusive)."""

    first: int
    last: int

    @property
    def years(self) -> int:
        """Number of years."""
        return self.last - self.first + 1


PERIODS: dict[str, Period] = {
    "spinup": Period(1981, 2000),
    "warmup": Period(2001, 2020),
    "forward": Period(2021, 2040),
}
"""Spin-up climatology, warm-up year by year (ends at T0 = 2020), forward scenarios."""

# ---------------------------------------------------------------------------------------------
# land use

#: FAO land-use classes that are modelled.
MODELLED_LAND_USE: dict[int, str] = {
    2: "cropland",
    3: "grassland",
    5: "shrubland",
    12: "tree crops",
    13: "paddy fields",
}

# ---------------------------------------------------------------------------------------------
# plausible input ranges

#: Plausible values of the per-pixel inputs (inclusive, in cube/model units). The cube mask and the
#: model use this one table: outside → ``Reason.INPUT_OUT_OF_RANGE``; the RothC kernels reject
#: such values when validating. Bounds are physical limits with margin, not climatology:
#:
#: * ``soc`` t C/ha 0–30 cm: organic soils stay well below 1000;
#: * ``clay`` %: a share;
#: * ``tmp`` °C monthly mean air temperature: the coldest monthly means on Earth are about −70 °C
#:   (Vostok), the hottest about +40 °C (Death Valley); −90…60 also rejects Kelvin;
#: * ``prec`` mm/month: the record monthly rainfall is about 9300 mm (Cherrapunji, July 1861);
#: * ``pet`` mm/month: potential or open-pan evaporation; the hottest deserts reach ~400, and a
#:   month of net condensation (dew) can be slightly negative (−0.5 mm in Rothamsted's example);
#: * ``cover`` vegetated share 0–1.
PLAUSIBLE_RANGES: dict[str, tuple[float, float]] = {
    "soc": (0.0, 1000.0),
    "clay": (0.0, 100.0),
    "tmp": (-90.0, 60.0),
    "prec": (0.0, 10000.0),
    "pet": (-50.0, 1000.0),
    "cover": (0.0, 1.0),
}
#: Units of the inputs of :data:`PLAUSIBLE_RANGES`.
INPUT_UNITS: dict[str, str] = {
    "soc": "t C/ha", "clay": "%", "tmp": "°C, not K", "prec": "mm/month", "pet": "mm/month",
    "cover": "vegetated share",
}

# ---------------------------------------------------------------------------------------------
# product layers


class Layer(NamedTuple):
    """One product layer."""

    name: str
    """Product name as in FAO's file names (``T0``, ``ASR_SSM1``, ...)."""
    units: str
    description: str
    dtype: str = "float32"
    """Numpy dtype of the published raster."""


def _stock_layers() -> list[Layer]:
    out = [Layer("T0", "t C/ha", "SOC stock 0-30 cm at the end of the warm-up (2020)")]
    labels = [SCENARIO_TABLE[k].product for k in SCENARIOS]
    titles = {SCENARIO_TABLE[k].product: SCENARIO_TABLE[k].title for k in SCENARIOS}
    out += [Layer(f"finalSOC_{s}", "t C/ha", f"SOC stock in 2040, {titles[s]}") for s in labels]
    out += [Layer(f"AbsDiff_{s}", "t C/ha", f"SOC change 2020-2040, {titles[s]}") for s in labels]
    out += [Layer(f"ASR_{s}", "t C/ha/yr", f"absolute sequestration rate, {titles[s]}")
            for s in labels]
    out += [Layer(f"RelDiff_{s}", "t C/ha", f"2040 SOC stock of {titles[s]} minus BAU")
            for s in SSM_LABELS]
    out += [Layer(f"RSR_{s}", "t C/ha/yr", f"relative sequestration rate, {titles[s]} vs BAU")
            for s in SSM_LABELS]
    unc = [("T0", "T0"), ("BAU", "2040 BAU stock"), ("SSM", "2040 SSM medium stock"),
           ("ASR_BAU", "ASR BAU"), *((f"ASR_{s}", f"ASR {s}") for s in SSM_LABELS),
           *((f"RSR_{s}", f"RSR {s}") for s in SSM_LABELS)]
    out += [Layer(f"{n}_Uncertainty", "%", f"uncertainty of the {d} (FAO min/max brackets)")
            for n, d in unc]
    return out


#: The 29 product layers of the FAO specification, in FAO order.
LAYER_TABLE: dict[str, Layer] = {layer.name: layer for layer in _stock_layers()}
#: Layer name → units (the 29 FAO layers).
LAYERS: dict[str, str] = {name: layer.units for name, layer in LAYER_TABLE.items()}
LAYER_NAMES: tuple[str, ...] = tuple(LAYERS)
assert len(LAYER_NAMES) == 29


#: Quality layers beside the 29, by the scheme that publishes them (``uint8``, nodata
#: :data:`QUALITY_NODATA` where the scheme did not run the pixel).
QUALITY_LAYERS: dict[str, Layer] = {
    "EulerUnstableMonths": Layer(
        "EulerUnstableMonths", "months/yr",
        "fao scheme: most months in one year of its explicit Euler runs whose DPM step factor "
        "1 - 10*xi/12 leaves [-1, 1] (combined rate factor xi > 2.4); 0: FAO's numbers do not "
        "oscillate there",
        "uint8",
    ),
}
QUALITY_NODATA: int = 255
SCHEME_QUALITY_LAYERS: dict[str, tuple[str, ...]] = {"exact": (), "fao": ("EulerUnstableMonths",)}

#: Uncertainty methods of a run: FAO's min/max brackets, brackets plus seeded Monte Carlo, none.
UNCERTAINTY_METHODS: tuple[str, ...] = ("brackets", "montecarlo", "none")
#: Layers whose Monte Carlo distribution is published (stocks t C/ha, rates t C/ha/yr).
MONTECARLO_BASES: tuple[str, ...] = (
    "T0", *(f"finalSOC_{SCENARIO_TABLE[k].product}" for k in SCENARIOS),
    *(f"ASR_{SCENARIO_TABLE[k].product}" for k in SCENARIOS))
#: Per-pixel statistics over the draws: mean, standard deviation, 5 % and 95 % percentiles.
MONTECARLO_STATISTICS: tuple[str, ...] = ("MCmean", "MCsd", "MCp05", "MCp95")
_MC_TITLES = {"MCmean": "Monte Carlo mean", "MCsd": "Monte Carlo standard deviation",
              "MCp05": "Monte Carlo 5 % percentile", "MCp95": "Monte Carlo 95 % percentile"}


def montecarlo_layer(base: str, statistic: str) -> str:
    """Name of a Monte Carlo layer: ``{base}_{statistic}``, e.g. ``ASR_SSM1_MCp95``."""
    return f"{base}_{statistic}"


#: Monte Carlo layers (float32, nodata NaN) of runs with ``uncertainty = "montecarlo"``.
MONTECARLO_LAYERS: dict[str, Layer] = {
    montecarlo_layer(b, s): Layer(montecarlo_layer(b, s), LAYER_TABLE[b].units,
                                  f"{_MC_TITLES[s]} of the {LAYER_TABLE[b].description} "
                                  "(seeded draws of SOC, clay, temperature, precipitation)")
    for b in MONTECARLO_BASES for s in MONTECARLO_STATISTICS
}
#: Every layer a product set can hold: the 29 (float32, nodata NaN), then the quality layers,
#: then the Monte Carlo layers.
PUBLISHED_LAYERS: dict[str, Layer] = {**LAYER_TABLE, **QUALITY_LAYERS, **MONTECARLO_LAYERS}


def layer_nodata(layer: str) -> float:
    """Return the nodata value of a published layer: NaN (float32) or :data:`QUALITY_NODATA`."""
    return float("nan") if PUBLISHED_LAYERS[layer].dtype == "float32" else float(QUALITY_NODATA)


def fao_file_name(region: str, layer: str) -> str:
    """FAO product file name: ``{ISO3}_GSOCseq_{Product}_Map030.tif``.

    Uncertainty layers are named ``..._{Product}_UncertaintyMap030.tif`` as in the FAO specification
    (reference §4.1), e.g. ``ARG_GSOCseq_T0_UncertaintyMap030.tif``; quality layers
    (:data:`QUALITY_LAYERS`) and Monte Carlo layers (:data:`MONTECARLO_LAYERS`) like the others,
    e.g. ``ARG_GSOCseq_EulerUnstableMonths_Map030.tif``, ``ARG_GSOCseq_T0_MCsd_Map030.tif``.
    """
    if layer not in PUBLISHED_LAYERS:
        raise KeyError(f"unknown product layer {layer!r}; expected one of "
                       f"{tuple(PUBLISHED_LAYERS)}")
    if layer.endswith("_Uncertainty"):
        return f"{region}_GSOCseq_{layer}Map030.tif"
    return f"{region}_GSOCseq_{layer}_Map030.tif"


# ---------------------------------------------------------------------------------------------
# the world of a global rebuild

WORLD_EXCLUDED: dict[str, str] = {
    "ATA": "Antarctica: GSOCseq is a country-driven mosaic of agricultural soils (national maps of "
           "land-use classes 2, 3, 5, 12, 13); Antarctica has no national submission and no land of "
           "those classes (permanent snow and ice, bare rock, sparse vegetation: ESA CCI 220, 200, "
           "150), so every one of its ≈ 1 700 tiles of 2° would be read to model nothing",
}
"""Country codes (ISO 3166-1 alpha-3, as in the boundaries source) left out of region ``world``,
with the reason. The one rule for ``gsocseq run/plan --region world``, ``bench_world`` and
``infra/sizing.py``; a run of the country itself (``--region ATA``) is still possible."""


# ---------------------------------------------------------------------------------------------
# the global 30-arc-second grid of every product ("Map030")

RES_DEG: float = 1.0 / 120.0
"""Cell size in degrees (30 arc-seconds)."""
N_COLS: int = 43200
"""Columns of the global grid; column 0 starts at the west edge (180°W)."""
N_ROWS: int = 21600
"""Rows of the global grid; row 0 starts at the north edge (90°N)."""
CRS: str = "EPSG:4326"


def cell_latitudes(row_start: int, row_stop: int) -> np.ndarray:
    """Cell-centre latitudes of global rows [row_start, row_stop), degrees north, descending."""
    return 90.0 - (np.arange(row_start, row_stop) + 0.5) * RES_DEG


def cell_longitudes(col_start: int, col_stop: int) -> np.ndarray:
    """Cell-centre longitudes of global columns [col_start, col_stop), degrees east, ascending."""
    return -180.0 + (np.arange(col_start, col_stop) + 0.5) * RES_DEG
