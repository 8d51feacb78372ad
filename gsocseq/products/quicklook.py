"""Quick-look PNGs of product layers, drawn with matplotlib: for STAC, the run report and Prefect.

Owns the picture conventions: a sequential colour map for stocks (t C/ha), a diverging one centred
on 0 for changes and rates (negative = loss), a sequential one for uncertainties (%); NaN pixels
fully transparent; a colour bar labelled with the layer's units. Nothing here changes a value.
"""

from __future__ import annotations

import base64
import io
import logging
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib import rc_context
from matplotlib.colors import Colormap, Normalize, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.patheffects import withStroke
from matplotlib.ticker import MaxNLocator
from rasterio.enums import Resampling

from gsocseq.errors import InputValidationError
from gsocseq.gdal_paths import raster
from gsocseq.storage import exists, put_bytes
from gsocseq.vocabulary import LAYERS, MONTECARLO_LAYERS, QUALITY_LAYERS

__all__ = [
    "OVERVIEW_PIXELS",
    "THUMBNAIL_PIXELS",
    "LayerStyle",
    "QuickLook",
    "colour_limits",
    "data_uri",
    "layer_style",
    "quicklook_url",
    "read_preview",
    "render_figure",
    "render_png",
    "thumbnail_url",
    "write_quicklooks",
]

log = logging.getLogger(__name__)

OVERVIEW_PIXELS: int = 800
"""Longest edge of an overview picture (the map and its legend), pixels."""
THUMBNAIL_PIXELS: int = 256
"""Longest edge of a thumbnail picture, pixels."""
PREVIEW_CELLS: int = 1024
"""Longest edge of the raster read for a picture, cells (COG overviews serve it)."""
PNG_MEDIA_TYPE: str = "image/png"


@dataclass(frozen=True)
class LayerStyle:
    """How a layer is coloured."""

    cmap: str
    """matplotlib colour map name."""
    diverging: bool
    """Centred on 0 with symmetric limits (changes and rates)."""
    units: str
    """Units shown on the colour bar."""


def layer_style(layer: str, units: str | None = None) -> LayerStyle:
    """Return the colour style of a product layer (or of ``<layer>_difference`` maps).

    Stocks (``T0``, ``finalSOC_*``): sequential ``YlGnBu``; changes and rates (``AbsDiff``,
    ``ASR``, ``RelDiff``, ``RSR`` and scheme differences): diverging ``BrBG`` around 0 (brown =
    loss, green = gain); uncertainties (%) and Monte Carlo standard deviations: sequential
    ``magma_r``; other Monte Carlo statistics as their layer; quality layers (e.g. the fao
    scheme's ``EulerUnstableMonths``): sequential ``OrRd``.
    """
    base = layer.removesuffix("_difference")
    if base in QUALITY_LAYERS and base == layer:  # quality layers (counts): sequential
        return LayerStyle("OrRd", False, QUALITY_LAYERS[base].units if units is None else units)
    if base in MONTECARLO_LAYERS and base == layer:  # Monte Carlo: sd sequential, else as base
        mc = MONTECARLO_LAYERS[base]
        if base.endswith("_MCsd"):
            return LayerStyle("magma_r", False, mc.units if units is None else units)
        base = layer = base.rsplit("_", 1)[0]
    if base not in LAYERS:
        raise InputValidationError(f"quick look: unknown product layer {layer!r}")
    units = LAYERS[base] if units is None else units
    if layer.endswith("_difference") or base.split("_")[0] in ("AbsDiff", "ASR", "RelDiff", "RSR"):
        if base.endswith("_Uncertainty"):
            return LayerStyle("PuOr_r", True, units)
        return LayerStyle("BrBG", True, units)
    if base.endswith("_Uncertainty"):
        return LayerStyle("magma_r", False, units)
    return LayerStyle("YlGnBu", False, units)


def colour_limits(values: np.ndarray, style: LayerStyle) -> tuple[float, float]:
    """Return (vmin, vmax) of the colours: 2nd–98th percentiles (symmetric about 0 if diverging)."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return (-1.0, 1.0) if style.diverging else (0.0, 1.0)
    lo, hi = (float(v) for v in np.percentile(finite, [2.0, 98.0]))
    if style.diverging:
        m = max(abs(lo), abs(hi)) or max(float(np.max(np.abs(finite))), 1e-9)
        return -m, m
    if hi <= lo:
        pad = max(abs(lo) * 0.01, 1e-9)
        return lo - pad, hi + pad
    return lo, hi


def _colormap(name: str) -> Colormap:
    """Return colour map ``name`` with NaN (bad) fully transparent."""
    from matplotlib import colormaps

    return colormaps[name].with_extremes(bad=(0.0, 0.0, 0.0, 0.0))


def render_png(values: np.ndarray, **kwargs: Any) -> bytes:
    """Draw one layer as PNG bytes (:func:`render_figure` arguments); no time stamp is written.

    The background is transparent; text and lines carry a thin white halo, so the picture reads
    on light and dark pages alike (STAC Browser, the Prefect UI's dark theme).
    """
    buf = io.BytesIO()
    with rc_context({"path.effects": [withStroke(linewidth=2.5, foreground="white")]}):
        render_figure(values, **kwargs).savefig(buf, format="png", dpi=100, transparent=True,
                                               metadata={"Software": None})
    return buf.getvalue()


def render_figure(
    values: np.ndarray,
    *,
    layer: str,
    bbox: Sequence[float] | None = None,
    units: str | None = None,
    title: str | None = None,
    max_pixels: int = OVERVIEW_PIXELS,
    limits: tuple[float, float] | None = None,
) -> Figure:
    """Draw one layer: the map north-up, NaN transparent, a colour bar with units below.

    Parameters
    ----------
    values
        2-D array (rows north → south), the layer's units; NaN = no value.
    layer
        Product layer name (or ``<layer>_difference``); chooses the colours (:func:`layer_style`).
    bbox
        (west, south, east, north) degrees: axes in degrees with the aspect of the mid latitude.
        ``None``: no axes (cells square).
    units, title
        Colour-bar label (default: the layer's units) and title (default: the layer name).
    max_pixels
        Longest edge of the picture, pixels (:data:`OVERVIEW_PIXELS`, :data:`THUMBNAIL_PIXELS`).
    limits
        Colour limits; default :func:`colour_limits`.

    Returns
    -------
    Figure
        axes[0] the map, axes[1] the colour bar (its label: the units).
    """
    data = np.asarray(values, dtype=np.float64)
    if data.ndim != 2 or 0 in data.shape:
        raise InputValidationError(f"quick look of {layer!r}: need a non-empty 2-D array, got "
                                   f"shape {data.shape}")
    style = layer_style(layer, units)
    vmin, vmax = limits if limits is not None else colour_limits(data, style)
    norm: Normalize = (TwoSlopeNorm(0.0, vmin, vmax) if style.diverging and vmin < 0 < vmax
                       else Normalize(vmin, vmax))
    rows, cols = data.shape
    aspect = 1.0
    extent = None
    if bbox is not None:
        w, s, e, n = (float(v) for v in bbox)
        extent = (w, e, s, n)
        aspect = 1.0 / max(math.cos(math.radians((s + n) / 2.0)), 0.1)
    small = max_pixels <= THUMBNAIL_PIXELS
    axes = bbox is not None and not small
    dpi = 100
    # fixed margins (inches): title above; axis labels, colour bar and its label below
    left, right, top = (0.75, 0.25, 0.4) if axes else (0.1, 0.1, 0.3)
    bottom = 1.3 if axes else 0.75
    size_in = max_pixels / dpi
    map_w = size_in - left - right
    map_h = map_w * rows * aspect / cols
    if map_h + top + bottom > size_in:  # tall regions: fit the longest edge
        map_h = size_in - top - bottom
        map_w = map_h * cols / (rows * aspect)
    width_in, height_in = max(map_w + left + right, 2.0), map_h + top + bottom
    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    fig.patch.set_alpha(0.0)
    ax = fig.add_axes((left / width_in, bottom / height_in, map_w / width_in, map_h / height_in))
    ax.patch.set_alpha(0.0)
    img = ax.imshow(data, cmap=_colormap(style.cmap), norm=norm, extent=extent,
                    interpolation="nearest", aspect="auto")
    if axes:
        ax.set_xlabel("longitude (°)", fontsize=9)
        ax.set_ylabel("latitude (°)", fontsize=9)
        ax.tick_params(labelsize=8)
    else:
        ax.set_axis_off()
    fontsize = 7 if small else 10
    ax.set_title(title or layer, fontsize=fontsize + 1)
    bar_w = min(width_in - 0.4, 5.0)
    cax = fig.add_axes(((width_in - bar_w) / 2 / width_in, (0.45 if small else 0.5) / height_in,
                        bar_w / width_in, 0.12 / height_in))
    bar = fig.colorbar(img, cax=cax, orientation="horizontal", extend="both")
    bar.ax.xaxis.set_major_locator(MaxNLocator(nbins=3 if small else 7))
    bar.set_label(style.units, fontsize=fontsize)
    bar.ax.tick_params(labelsize=fontsize - 1)
    return fig


def read_preview(
    url: str, storage_options: Mapping[str, Any] | None = None, *, max_cells: int = PREVIEW_CELLS
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Read a COG decimated to at most ``max_cells`` on its longest edge; return (values, bbox).

    GDAL reads the internal overview that fits (averaged when the COG was written), so the bytes
    read do not grow with the region. Values float64 in the layer's units, NaN = nodata.
    """
    with raster(url, storage_options) as src:
        step = max(1, math.ceil(max(src.width, src.height) / max_cells))
        shape = (max(1, math.ceil(src.height / step)), max(1, math.ceil(src.width / step)))
        data = src.read(1, out_shape=shape, resampling=Resampling.average, masked=True)
        b = src.bounds
    values = np.ma.filled(data.astype(np.float64), np.nan)  # nodata (NaN, or 255 for uint8) → NaN
    return values, (b.left, b.bottom, b.right, b.top)


def quicklook_url(cog_href: str) -> str:
    """Return where a COG's quick look lives: beside it, ``.tif`` → ``.png``."""
    return (cog_href[:-4] if cog_href.endswith(".tif") else cog_href) + ".png"


def thumbnail_url(products_url: str, region: str) -> str:
    """Return the URL of a region's thumbnail: ``{products}/{region}/{region}_GSOCseq_thumbnail.png``."""
    return f"{products_url.rstrip('/')}/{region}/{region}_GSOCseq_thumbnail.png"


@dataclass(frozen=True)
class QuickLook:
    """Quick looks written for one region."""

    overviews: dict[str, str]
    """Layer → URL of its overview PNG (FAO order)."""
    thumbnail: str | None
    """URL of the region's thumbnail PNG (T0, or the first layer)."""


def write_quicklooks(
    cogs: Mapping[str, str],
    region: str,
    products_url: str,
    storage_options: Mapping[str, Any] | None = None,
    *,
    redraw: Collection[str] | None = None,
) -> QuickLook:
    """Draw every COG of a region (layer → URL) as an overview PNG beside it, plus a thumbnail.

    Each PNG is written to a temporary key and moved (no reader sees half a picture). Stocks of
    one region share colour limits (T0 and every finalSOC), so the pictures compare. With
    ``redraw`` only those layers' PNGs (and the thumbnail if its layer is one) are drawn again,
    plus any PNG that is missing; the others are kept as they are (an incremental republication).
    """
    so = dict(storage_options or {})
    thumb_layer = ("T0" if "T0" in cogs else next(iter(cogs))) if cogs else None
    if redraw is not None:
        redraw = {n for n in cogs if n in redraw or not exists(quicklook_url(cogs[n]), so)}
        if thumb_layer is not None and not exists(thumbnail_url(products_url, region), so):
            redraw.add(thumb_layer)
        if not redraw:
            return QuickLook({n: quicklook_url(u) for n, u in cogs.items()},
                             thumbnail_url(products_url, region) if cogs else None)
    previews = {layer: read_preview(url, so) for layer, url in cogs.items()}
    shared = _shared_limits(previews)
    overviews: dict[str, str] = {}
    for layer, url in cogs.items():
        if redraw is not None and layer not in redraw:
            overviews[layer] = quicklook_url(url)
            continue
        values, bbox = previews[layer]
        png = render_png(values, layer=layer, bbox=bbox, title=f"{region} {layer}",
                         limits=shared.get(layer))
        overviews[layer] = quicklook_url(url)
        put_bytes(overviews[layer], png, so)
    thumb = None
    if thumb_layer is not None:
        layer = thumb_layer
        values, bbox = previews[layer]
        thumb = thumbnail_url(products_url, region)
        if redraw is None or layer in redraw:
            put_bytes(thumb, render_png(values, layer=layer, bbox=bbox, title=f"{region} {layer}",
                                        max_pixels=THUMBNAIL_PIXELS,
                                        limits=shared.get(layer)), so)
    log.info("%s: %d quick look(s) written", region, len(overviews))
    return QuickLook(overviews, thumb)


def _shared_limits(
    previews: Mapping[str, tuple[np.ndarray, Any]],
) -> dict[str, tuple[float, float]]:
    """Return common colour limits for the stock layers (T0, finalSOC_*) of one region."""
    stocks = [k for k in previews if k == "T0" or k.startswith("finalSOC_")]
    if not stocks:
        return {}
    values = np.concatenate([previews[k][0].ravel() for k in stocks])
    limits = colour_limits(values, layer_style("T0"))
    return dict.fromkeys(stocks, limits)


def data_uri(png: bytes) -> str:
    """Return PNG bytes as a ``data:image/png;base64,…`` URI (self-contained pages, artifacts)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
