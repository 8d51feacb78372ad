"""gsocseq: FAO's Global Soil Organic Carbon Sequestration Potential map (GSOCseq v1.1).

RothC-26.3 numba kernels (``gsocseq.model``), the harmonised input cube (``gsocseq.cube``), the
distributed tile run (``gsocseq.pipeline``) and the COG/STAC products (``gsocseq.products``).
"""

from gsocseq.errors import (
    GridMismatchError,
    GsocseqError,
    GsocseqWarning,
    InputValidationError,
    ProductValidationError,
    SourceError,
)

__version__ = "0.1.0"

__all__ = [
    "GridMismatchError",
    "GsocseqError",
    "GsocseqWarning",
    "InputValidationError",
    "ProductValidationError",
    "SourceError",
    "__version__",
]
