"""Input datasets: declared as data (:mod:`.spec`, ``sources.toml``), read by one adapter per kind.

Adapters open any fsspec URL (``file://``, ``memory://``, ``s3://``, ``https://``) and normalise
names, units, CRS, nodata and attributes; regridding and masking belong to :mod:`gsocseq.cube`.
"""

from gsocseq.sources.adapters import ADAPTERS, SourceAdapter, read_source
from gsocseq.sources.boundaries import country_codes, read_country
from gsocseq.sources.landcover import FAO_FROM_ESA, esa_to_fao
from gsocseq.sources.spec import (
    DATASETS,
    OPTIONAL_DATASETS,
    SourcesConfig,
    SourceSpec,
    load_sources,
    parse_sources,
)

__all__ = [
    "ADAPTERS",
    "DATASETS",
    "FAO_FROM_ESA",
    "OPTIONAL_DATASETS",
    "SourceAdapter",
    "SourceSpec",
    "SourcesConfig",
    "country_codes",
    "esa_to_fao",
    "load_sources",
    "parse_sources",
    "read_country",
    "read_source",
]
