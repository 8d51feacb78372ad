"""One COG from parts encoded apart: strips of rows encoded by separate tasks, assembled by copying.

Owns how a tall layer is split so that the parts' encoded tiles *are* the whole COG's tiles, and
the assembly. With 512-pixel blocks and GDAL's averaged overviews (each level computed from the
previous one), a strip of ``512 · 2^L`` rows starting at a multiple of that height has, at every
level ``k ≤ L``, whole block rows, and the same pixels as the whole layer's level ``k`` when the
layer's height is a multiple of ``2^L`` (every averaging window then lies inside one strip):

1. :func:`encode_part` writes rows ``[i·H, (i+1)·H)`` as a COG with ``L`` overviews (GDAL: the
   same encoding as :func:`~gsocseq.products.cog.write_cog`), bounded memory;
2. :func:`assemble_parts` copies the parts' encoded tiles of levels ``0…L`` (no decoding), builds
   the coarser levels with GDAL from the parts' level ``L`` (``1/4^L`` of the pixels) and writes
   the directories and tiles in COG order (:mod:`gsocseq.products.tiff_layout`).

The result has the pixels of every level of the one-piece writer; an unchanged part is reused
as it is (a republication re-encodes only the strips that changed).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rasterio
import rasterio.shutil
import xarray as xr
from affine import Affine
from rasterio.session import DummySession
from rasterio.windows import Window

from gsocseq.cube.grid import CRS, RES_DEG
from gsocseq.errors import InputValidationError, ProductValidationError
from gsocseq.products.cog import (
    NODATA,
    CogAsset,
    cog_options,
    cog_url,
    file_digest,
    grid_transform,
    layer_metadata,
    normalised,
    store_cog,
    write_strips,
)
from gsocseq.products.profiles import CogProfile, get_profile
from gsocseq.products.tiff_layout import TileRun, read_ifds, write_tiled_tiff
from gsocseq.storage import filesystem, put_file
from gsocseq.vocabulary import QUALITY_NODATA

PART_ROWS: int = 2048
"""Target rows of one part (a world layer: 2 048 × 43 200 float32 = 338 MiB encoded apart)."""


@dataclass(frozen=True)
class PartLayout:
    """How a ``rows × cols`` layer is cut into parts of ``part_rows`` rows."""

    rows: int
    """Rows of the whole layer (pixels)."""
    cols: int
    """Columns of the whole layer (pixels)."""
    levels: int
    """Overview levels every part encodes itself (``L``); coarser ones are built at assembly."""
    part_rows: int
    """Rows of every part but the last (``blocksize · 2^L · m``)."""

    @property
    def n_parts(self) -> int:
        """Number of parts (tasks encoding the layer)."""
        return -(-self.rows // self.part_rows)

    def rows_of(self, index: int) -> tuple[int, int]:
        """Return the [first, last) rows of part ``index``."""
        if not 0 <= index < self.n_parts:
            raise InputValidationError(f"part index {index} outside 0…{self.n_parts - 1}")
        return index * self.part_rows, min(self.rows, (index + 1) * self.part_rows)


def overview_count(rows: int, cols: int, blocksize: int) -> int:
    """Return how many overview levels GDAL's ``COG`` driver (``OVERVIEWS=AUTO``) writes."""
    n = 0
    while rows > blocksize or cols > blocksize:
        rows, cols, n = rows // 2, cols // 2, n + 1
    return n


def part_layout(rows: int, cols: int, profile: CogProfile, part_rows: int = PART_ROWS
                ) -> PartLayout:
    """Return the layout of a ``rows × cols`` layer in parts of about ``part_rows`` rows.

    ``L`` is the largest level with ``blocksize · 2^L ≤ part_rows``, ``2^L`` dividing ``rows``
    and ``L`` no more than the layer's overview levels; parts hold a whole number of
    ``blocksize · 2^L`` rows (at least one). A world layer (21 600 rows, 512-pixel blocks, 2 048
    rows) gets ``L = 2`` and 11 parts.
    """
    block = profile.blocksize
    top = overview_count(rows, cols, block)
    level = 0
    while (level < top and block * 2 ** (level + 1) <= part_rows
           and rows % 2 ** (level + 1) == 0):
        level += 1
    unit = block * 2**level
    return PartLayout(rows, cols, level, max(unit, (part_rows // unit) * unit))


def encode_part(data: xr.DataArray, layout: PartLayout, index: int, path: Path,
                profile: CogProfile, tags: dict[str, str], strip_rows: int) -> None:
    """Write part ``index`` of the layer ``data`` (normalised, whole layer) as a local COG ``path``.

    The part's rows are streamed ``strip_rows`` at a time into a tiled GeoTIFF, then encoded by
    GDAL with ``layout.levels`` overviews: memory bounded as :func:`~gsocseq.products.cog.write_cog`.
    """
    layer, units, description, dtype = layer_metadata(data)
    if data.shape != (layout.rows, layout.cols):
        raise InputValidationError(
            f"layer {layer!r}: shape {data.shape} is not the layout's {(layout.rows, layout.cols)}")
    r0, r1 = layout.rows_of(index)
    strip = data.isel(latitude=slice(r0, r1))
    transform = grid_transform(strip)
    options = cog_options(profile, dtype)
    if layout.levels:
        options["overview_count"] = layout.levels
    else:
        options["overviews"] = "NONE"
    with tempfile.TemporaryDirectory(prefix="gsocseq-part-") as tmp:
        src_path = Path(tmp) / "src.tif"
        write_strips(strip, src_path, transform, units, description,
                     {"GSOCSEQ_LAYER": layer, **tags}, dtype, strip_rows)
        with _local(), rasterio.open(src_path) as src:
            rasterio.shutil.copy(src, path, driver="COG", **options)


def assemble_parts(parts: list[Path], layout: PartLayout, path: Path, profile: CogProfile,
                   dtype: str) -> None:
    """Assemble the local part COGs (in order) into the layer's COG at ``path``.

    Levels ``0…L`` are the parts' encoded tiles, copied; coarser levels are encoded by GDAL from
    the parts' level ``L``, streamed part by part (``rows · cols / 4^L`` pixels in all).
    """
    if len(parts) != layout.n_parts:
        raise ProductValidationError(f"{len(parts)} parts given, the layout has {layout.n_parts}")
    heads = []
    for p in parts:
        with open(p, "rb") as f:
            heads.append(read_ifds(f, str(p)))
    for p, ifds in zip(parts, heads, strict=True):
        if len(ifds) != layout.levels + 1:
            raise ProductValidationError(
                f"part {p}: {len(ifds) - 1} overview levels, expected {layout.levels}")
    with tempfile.TemporaryDirectory(prefix="gsocseq-assemble-") as tmp:
        coarse = _coarse_levels(parts, layout, Path(tmp), profile, dtype)
        ifds = [heads[0][k].with_length(_level_rows(layout.rows, k))
                for k in range(layout.levels + 1)]
        levels = [[TileRun(p, tuple(h[k].tiles())) for p, h in zip(parts, heads, strict=True)]
                  for k in range(layout.levels + 1)]
        if coarse is not None:
            with open(coarse, "rb") as f:
                extra = read_ifds(f, "coarse levels")[1:]
            ifds += extra
            levels += [[TileRun(coarse, tuple(ifd.tiles()))] for ifd in extra]
        write_tiled_tiff(path, ifds, levels)


def _local() -> rasterio.Env:
    """GDAL environment for local files (no cloud session built per open)."""
    return rasterio.Env(session=DummySession())


def _level_rows(rows: int, level: int) -> int:
    return rows // 2**level


def _coarse_levels(parts: list[Path], layout: PartLayout, tmp: Path, profile: CogProfile,
                   dtype: str) -> Path | None:
    """Return a GDAL COG whose overviews are the layer's levels ``L+1…`` (``None``: there are none).

    Its main image is the layer's level ``L`` mosaicked from the parts (decoded by GDAL).
    """
    rows, cols = _level_rows(layout.rows, layout.levels), _level_rows(layout.cols, layout.levels)
    if overview_count(rows, cols, profile.blocksize) == 0:
        return None
    f = 2**layout.levels
    mosaic, out = tmp / "level.tif", tmp / "coarse.tif"
    nodata = NODATA if dtype == "float32" else QUALITY_NODATA
    meta = {"driver": "GTiff", "height": rows, "width": cols, "count": 1, "dtype": dtype,
            "crs": CRS, "transform": Affine(f * RES_DEG, 0, -180, 0, -f * RES_DEG, 90),
            "nodata": nodata, "tiled": True,
            "blockxsize": profile.blocksize, "blockysize": profile.blocksize,
            "BIGTIFF": "IF_SAFER"}
    with _local(), rasterio.open(mosaic, "w", **meta) as dst:
        for i, p in enumerate(parts):
            r0 = layout.rows_of(i)[0] // f
            level = {"overview_level": layout.levels - 1} if layout.levels else {}
            with _local(), rasterio.open(p, **level) as src:
                values = src.read(1)
            dst.write(values, 1, window=Window(0, r0, cols, values.shape[0]))
    with _local(), rasterio.open(mosaic) as src:
        rasterio.shutil.copy(src, out, driver="COG", **cog_options(profile, dtype))
    return out


def write_part(data: xr.DataArray, layout: PartLayout, index: int, url: str,
               storage_options: dict[str, Any] | None, *, region: str, profile: str = "gsocseq",
               strip_rows: int = 2048) -> str:
    """Encode part ``index`` of the layer ``data`` and upload it to ``url``; return its sha256.

    ``data`` is the whole layer (lazy: only the part's rows are computed, ``strip_rows`` at a
    time); ``region`` is recorded in the file's tags as :func:`~gsocseq.products.cog.write_cog`
    records it.
    """
    with tempfile.TemporaryDirectory(prefix="gsocseq-part-") as tmp:
        local = Path(tmp) / "part.tif"
        encode_part(normalised(data), layout, index, local, get_profile(profile),
                    {"GSOCSEQ_REGION": region}, strip_rows)
        put_file(local, url, storage_options)
        return file_digest(local)[1]


def write_cog_from_parts(
    data: xr.DataArray, layout: PartLayout, part_urls: list[str], out_prefix: str,
    storage_options: dict[str, Any] | None, *, region: str, profile: str = "gsocseq",
    only_if_changed: bool = False,
) -> CogAsset:
    """Assemble the uploaded parts of ``data``'s layer into its COG ``{out_prefix}/{region}/…``.

    ``data`` gives the layer's name, units, grid and shape (its values are not read). The COG is
    checked and uploaded as :func:`~gsocseq.products.cog.write_cog` does (``only_if_changed``:
    kept when the object holds the same bytes).
    """
    layer, units, description, dtype = layer_metadata(data)
    data = normalised(data)
    prof = get_profile(profile)
    with tempfile.TemporaryDirectory(prefix="gsocseq-assemble-") as tmp:
        local = []
        for i, url in enumerate(part_urls):
            fs, path = filesystem(url, storage_options)
            local.append(Path(tmp) / f"part-{i:04d}.tif")
            fs.get_file(path, str(local[-1]))
        out = Path(tmp) / "cog.tif"
        assemble_parts(local, layout, out, prof, dtype)
        return store_cog(out, cog_url(out_prefix, region, layer), storage_options, profile=prof,
                         layer=layer, shape=(layout.rows, layout.cols),
                         transform=grid_transform(data), units=units, description=description,
                         only_if_changed=only_if_changed)
