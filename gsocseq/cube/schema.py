"""The harmonised input cube's schema: variable names, dimensions, units and dtypes.

The cube is a zarr v3 group on any fsspec store covering a whole number of tiles of the global grid
(:mod:`gsocseq.cube.grid`); chunks = tiles, all months of a tile in one chunk, time last in memory.

===============  =====================================  ==========  =========================================
variable         dims                                   units       meaning
===============  =====================================  ==========  =========================================
soc              (latitude, longitude)                  t C/ha      SOC stock 0-30 cm (spin-up target)
clay             (latitude, longitude)                  %           clay content 0-30 cm
land_use         (latitude, longitude)                  1 (class)   FAO land-use class (reference §3.5), uint8
tmp              (latitude, longitude, time)            degC        monthly mean air temperature
prec             (latitude, longitude, time)            mm/month    monthly precipitation
pet              (latitude, longitude, time)            mm/month    monthly potential evapotranspiration
cover            (latitude, longitude, month)           1           monthly vegetated share 0-1 (climatology)
reason           (latitude, longitude)                  1 (code)    :class:`gsocseq.vocabulary.Reason`, uint8
soc_uncertainty  (latitude, longitude)                  %           optional: half-width of SOC's 95 % range
===============  =====================================  ==========  =========================================

``soc_uncertainty`` (optional, :data:`OPTIONAL_VARS`) exists only in a cube built from sources that
declare ``[sources.soc_uncertainty]``: the SOC map's own uncertainty as the half-width of its 95 %
range in percent of the pixel's SOC value (a 20 % value means the Monte Carlo draws SOC within
±20 %, :func:`gsocseq.model.montecarlo.draw_factors`). A cube without it draws ±20 % everywhere.

``tmp``/``prec``/``pet`` are not stored at 30″: the region's climate store beside the cube
(``….climate.zarr``, :mod:`gsocseq.cube.climate`) keeps the source's variables at its own
resolution (TerraClimate 1/24°: 25× fewer cells) as published (packed integers), each tile's
window (the tile + the regridding margin, all 480 months) one chunk, and reading a tile regrids them
(bilinear) and completes ``reason`` with them; the stored ``reason`` covers the static inputs.

``time`` is monthly, January 1981 … December 2020 (480 months) by default; ``month`` is 1…12.
Coordinates are cell centres (latitude descending). Global attributes record the grid (``tile_size``,
``origin_row``, ``origin_col``), the region, the sources and their versions.
"""

from __future__ import annotations

from gsocseq.vocabulary import PERIODS

STATIC_VARS: dict[str, str] = {"soc": "t C/ha", "clay": "%", "land_use": "1", "reason": "1"}
MONTHLY_VARS: dict[str, str] = {"tmp": "degC", "prec": "mm/month", "pet": "mm/month"}
CLIMATOLOGY_VARS: dict[str, str] = {"cover": "1"}
#: Variables present only when their source is declared (name → units), all (latitude, longitude).
OPTIONAL_VARS: dict[str, str] = {"soc_uncertainty": "%"}
FIRST_YEAR: int = PERIODS["spinup"].first
LAST_YEAR: int = PERIODS["warmup"].last
SPINUP_YEARS: tuple[int, int] = (PERIODS["spinup"].first, PERIODS["spinup"].last)
WARMUP_YEARS: tuple[int, int] = (PERIODS["warmup"].first, PERIODS["warmup"].last)
FORWARD_YEARS: tuple[int, int] = (PERIODS["forward"].first, PERIODS["forward"].last)
