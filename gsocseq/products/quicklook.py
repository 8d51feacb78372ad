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
from functools import lru_cache
from typing import Any

import numpy as np
from matplotlib import rc_context, rcParams
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Colormap, Normalize, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.image import imsave
from matplotlib.patheffects import withStroke
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import offset_copy
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
_DPI: int = 100
PNG_COMPRESSION: int = 3
"""zlib level of the PNGs (1 fast … 9 small; PIL's default 6 costs twice the time)."""


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
    on light and dark pages alike (STAC Browser, the Prefect UI's dark theme). The picture is
    :func:`render_figure`'s, composed cheaply: the map cells are coloured with numpy, the axes
    frame is drawn once per process and layout, and only the title and colour bar per picture.
    """
    data, style, norm, layout, title = _prepare(values, **kwargs)
    frame, (r0, r1, c0, c1) = _frame(layout)
    rgba = _layer_rgba(style, norm, title, layout)
    cells = _colormap(style.cmap)(norm(data), bytes=True)  # NaN (bad) fully transparent
    rows = (np.arange(r1 - r0) + 0.5) * data.shape[0] // (r1 - r0)
    cols = (np.arange(c1 - c0) + 0.5) * data.shape[1] // (c1 - c0)
    picture = frame.copy()  # the frame's lines over the cells, inside the map only
    picture[r0:r1, c0:c1] = _over(frame[r0:r1, c0:c1],
                                  cells[rows.astype(int)[:, None], cols.astype(int)[None, :]])
    picture = _over(rgba, picture)
    buf = io.BytesIO()
    imsave(buf, picture, format="png", metadata={"Software": None},
           pil_kwargs={"compress_level": PNG_COMPRESSION})
    return buf.getvalue()


@dataclass(frozen=True)
class _Layout:
    """Where a picture's parts lie (inches; boxes as figure fractions left, bottom, width, height)."""

    size: tuple[float, float]
    map_box: tuple[float, float, float, float]
    bar_box: tuple[float, float, float, float]
    extent: tuple[float, float, float, float]
    axes: bool
    small: bool


def _layout(shape: tuple[int, int], bbox: Sequence[float] | None, max_pixels: int) -> _Layout:
    """Return the layout of a picture of a ``shape`` raster (fixed margins, longest edge fits)."""
    rows, cols = shape
    aspect = 1.0
    extent = (-0.5, cols - 0.5, rows - 0.5, -0.5)  # imshow's default: cell centres at integers
    if bbox is not None:
        w, s, e, n = (float(v) for v in bbox)
        extent = (w, e, s, n)
        aspect = 1.0 / max(math.cos(math.radians((s + n) / 2.0)), 0.1)
    small = max_pixels <= THUMBNAIL_PIXELS
    axes = bbox is not None and not small
    # fixed margins (inches): title above; axis labels, colour bar and its label below
    left, right, top = (0.75, 0.25, 0.4) if axes else (0.1, 0.1, 0.3)
    bottom = 1.3 if axes else 0.75
    size_in = max_pixels / _DPI
    map_w = size_in - left - right
    map_h = map_w * rows * aspect / cols
    if map_h + top + bottom > size_in:  # tall regions: fit the longest edge
        map_h = size_in - top - bottom
        map_w = map_h * cols / (rows * aspect)
    width_in, height_in = max(map_w + left + right, 2.0), map_h + top + bottom
    bar_w = min(width_in - 0.4, 5.0)
    return _Layout(
        (width_in, height_in),
        (left / width_in, bottom / height_in, map_w / width_in, map_h / height_in),
        ((width_in - bar_w) / 2 / width_in, (0.45 if small else 0.5) / height_in,
         bar_w / width_in, 0.12 / height_in),
        extent, axes, small,
    )


def _prepare(
    values: np.ndarray, *, layer: str, bbox: Sequence[float] | None = None,
    units: str | None = None, title: str | None = None, max_pixels: int = OVERVIEW_PIXELS,
    limits: tuple[float, float] | None = None,
) -> tuple[np.ndarray, LayerStyle, Normalize, _Layout, str]:
    """Check the values; return them (float64), the style, the norm, the layout and the title."""
    data = np.asarray(values, dtype=np.float64)
    if data.ndim != 2 or 0 in data.shape:
        raise InputValidationError(f"quick look of {layer!r}: need a non-empty 2-D array, got "
                                   f"shape {data.shape}")
    style = layer_style(layer, units)
    vmin, vmax = limits if limits is not None else colour_limits(data, style)
    norm: Normalize = (TwoSlopeNorm(0.0, vmin, vmax) if style.diverging and vmin < 0 < vmax
                       else Normalize(vmin, vmax))
    bb = None if bbox is None else tuple(float(v) for v in bbox)
    return data, style, norm, _layout(data.shape, bb, max_pixels), title or layer


def _figure(layout: _Layout) -> tuple[Figure, Any]:
    """Return a transparent figure of the layout and its (transparent) map axes."""
    fig = Figure(figsize=layout.size, dpi=_DPI)
    fig.patch.set_alpha(0.0)
    ax = fig.add_axes(layout.map_box)
    ax.patch.set_alpha(0.0)
    return fig, ax


def _decorate_map(ax: Any, layout: _Layout) -> None:
    """Give the map axes their extent and, with ``layout.axes``, degree labels (else no axes)."""
    w, e, s, n = layout.extent
    ax.set_xlim(w, e)
    ax.set_ylim(s, n)
    if layout.axes:
        ax.set_xlabel("longitude (°)", fontsize=9)
        ax.set_ylabel("latitude (°)", fontsize=9)
        ax.tick_params(labelsize=8)
    else:
        ax.set_axis_off()


def _draw(fig: Figure) -> np.ndarray:
    """Return the figure drawn with the white halo: RGBA uint8, rows top → bottom."""
    canvas = FigureCanvasAgg(fig)
    with rc_context({"path.effects": [withStroke(linewidth=2.5, foreground="white")]}):
        canvas.draw()
    return np.array(canvas.buffer_rgba(), dtype=np.uint8)


@lru_cache(maxsize=16)
def _frame(layout: _Layout) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Return the map axes drawn without cells (RGBA) and their pixel rows/cols (r0, r1, c0, c1)."""
    fig, ax = _figure(layout)
    _decorate_map(ax, layout)
    rgba = _draw(fig)
    rgba.flags.writeable = False
    height = rgba.shape[0]
    x0, y0, x1, y1 = ax.get_window_extent().extents
    box = (height - round(y1), height - round(y0), round(x0), round(x1))
    return rgba, box


def _layer_rgba(style: LayerStyle, norm: Normalize, title: str, layout: _Layout) -> np.ndarray:
    """Return a picture's title and colour bar alone, drawn on a transparent figure (RGBA)."""
    fig = Figure(figsize=layout.size, dpi=_DPI)
    fig.patch.set_alpha(0.0)
    left, bottom, width, height = layout.map_box  # where the map axes' title would sit
    fig.text(left + width / 2, bottom + height, title, fontsize=(7 if layout.small else 10) + 1,
             ha="center", va="baseline",
             transform=offset_copy(fig.transFigure, fig=fig, y=rcParams["axes.titlepad"],
                                   units="points"))
    _colour_bar(fig, fig.add_axes(layout.bar_box),
                ScalarMappable(norm=norm, cmap=_colormap(style.cmap)), style, layout.small)
    return _draw(fig)


def _colour_bar(fig: Figure, cax: Any, mappable: Any, style: LayerStyle, small: bool) -> None:
    """Draw the horizontal colour bar of ``mappable`` in ``cax``, labelled with the units."""
    fontsize = 7 if small else 10
    bar = fig.colorbar(mappable, cax=cax, orientation="horizontal", extend="both")
    bar.ax.xaxis.set_major_locator(MaxNLocator(nbins=3 if small else 7))
    bar.set_label(style.units, fontsize=fontsize)
    bar.ax.tick_params(labelsize=fontsize - 1)


def _over(top: np.ndarray, below: np.ndarray) -> np.ndarray:
    """Return ``top`` composed over ``below`` (straight-alpha RGBA uint8 arrays, same shape).

    Only ``top``'s visible pixels are computed (text, lines: a small part of the picture).
    """
    out = below.copy()
    alpha = top[..., 3]
    out[alpha == 255] = top[alpha == 255]
    part = (alpha > 0) & (alpha < 255)
    t, d = top[part].astype(np.float64), below[part].astype(np.float64)
    a, b = t[:, 3:] / 255.0, d[:, 3:] / 255.0 * (1.0 - t[:, 3:] / 255.0)
    total = a + b
    colour = (t[:, :3] * a + d[:, :3] * b) / total  # total ≥ a > 0
    out[part] = np.concatenate([colour, total * 255.0], axis=1).round().astype(np.uint8)
    return out


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
    data, style, norm, layout, title = _prepare(values, layer=layer, bbox=bbox, units=units,
                                                title=title, max_pixels=max_pixels, limits=limits)
    fig, ax = _figure(layout)
    img = ax.imshow(data, cmap=_colormap(style.cmap), norm=norm,
                    extent=layout.extent if bbox is not None else None,
                    interpolation="nearest", aspect="auto")
    _decorate_map(ax, layout)
    ax.set_title(title, fontsize=(7 if layout.small else 10) + 1)
    _colour_bar(fig, fig.add_axes(layout.bar_box), img, style, layout.small)
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
