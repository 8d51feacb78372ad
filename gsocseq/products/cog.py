"""Write product layers as Cloud-Optimised GeoTIFFs on any fsspec store.

One file per layer and region, named as FAO names them (``{ISO3}_GSOCseq_{Product}_Map030.tif``):
float32, nodata NaN, EPSG:4326, 30″ pixels on the global grid, encoded by a named profile
(:mod:`gsocseq.products.profiles`; default: 512-pixel tiles, DEFLATE + floating-point predictor,
internal overviews averaged).

How a file is written, so that no reader ever sees half of one:

1. the layer is streamed, a strip of rows at a time (dask arrays are computed strip by strip), into
   a tiled GeoTIFF in a local temporary directory, then translated by GDAL's ``COG`` driver;
2. the local COG is checked (:func:`check_cog`: ``rio_cogeo`` ``cog_validate(strict=True)`` plus
   the grid, dtype, nodata and CRS) and hashed (sha256 multihash for the STAC file extension);
3. it is uploaded to ``<key>.tmp-<random>`` on the target store and moved onto ``<key>``
   (a rename on local disks, a server-side copy on S3): the final key appears whole or not at all.

A file that fails validation is never uploaded; :class:`~gsocseq.errors.ProductValidationError`
lists every problem found.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
import xarray as xr
from affine import Affine
from rasterio.session import DummySession
from rio_cogeo.cogeo import cog_validate

from gsocseq.cube.grid import CRS, N_COLS, N_ROWS, RES_DEG
from gsocseq.errors import GridMismatchError, InputValidationError, ProductValidationError
from gsocseq.products.profiles import CogProfile, get_profile
from gsocseq.storage import filesystem, put_file
from gsocseq.vocabulary import (
    LAYER_NAMES,
    LAYERS,
    MONTECARLO_LAYERS,
    PUBLISHED_LAYERS,
    QUALITY_LAYERS,
    QUALITY_NODATA,
    fao_file_name,
    layer_nodata,
)

__all__ = [
    "CogAsset",
    "check_cog",
    "cog_url",
    "file_digest",
    "grid_transform",
    "layer_description",
    "multihash_sha256",
    "read_levels",
    "write_cog",
    "write_region_cogs",
    "write_strips",
]

log = logging.getLogger(__name__)

NODATA: float = math.nan
"""Nodata value of every product layer."""
STRIP_ROWS: int = 2048
"""Rows computed and written at a time while streaming a layer (bounds memory per file)."""
GLOBAL_REGION: str = "world"
"""Region name of the global layers: FAO file names without a country prefix (``GSOCseq_T0_Map030.tif``)."""
_ALIGN_TOL_CELLS = 1e-6
_REGION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


@dataclass(frozen=True)
class CogAsset:
    """One written COG: what the STAC item needs to describe it."""

    layer: str
    """Product layer name (a key of :data:`gsocseq.vocabulary.LAYERS`)."""
    href: str
    """URL of the file as written (``s3://…``, ``file://…``, ``memory://…`` or a path)."""
    size: int
    """File size, bytes."""
    checksum: str
    """sha256 multihash, hex (``"1220"`` + sha256), as the STAC file extension expects."""
    shape: tuple[int, int]
    """(rows, columns), pixels."""
    transform: tuple[float, float, float, float, float, float]
    """Affine coefficients (a, b, c, d, e, f): pixel → EPSG:4326 degrees."""
    nodata: float
    """Nodata value (NaN)."""
    units: str
    """Units of the values (t C/ha, t C/ha/yr or %)."""
    description: str
    """One-line description of the layer."""
    written: bool = field(default=True, compare=False)
    """Whether the object was (re)written by this call (``False``: kept, same bytes or resumed)."""

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) of the raster, degrees."""
        a, _, c, _, e, f = self.transform
        rows, cols = self.shape
        return (c, f + e * rows, c + a * cols, f)


def layer_description(layer: str) -> str:
    """Return a one-line description of a product layer (FAO reference §4.1)."""
    if layer in QUALITY_LAYERS:
        return QUALITY_LAYERS[layer].description
    if layer in MONTECARLO_LAYERS:
        spec = MONTECARLO_LAYERS[layer]
        return f"{spec.description[0].upper()}{spec.description[1:]} ({spec.units})"
    if layer not in LAYERS:
        raise InputValidationError(
            f"unknown product layer {layer!r}; expected one of {LAYER_NAMES}"
        )
    parts = layer.split("_")
    kind, scen = parts[0], parts[1] if len(parts) > 1 else ""
    if layer.endswith("_Uncertainty"):
        base = layer.removesuffix("_Uncertainty")
        return f"Uncertainty of {base} (%, FAO bracket runs, reference eq. 12.2/12.7)"
    return {
        "T0": "SOC stock 0-30 cm at the end of the warm-up, 2020 (t C/ha)",
        "finalSOC": f"SOC stock 0-30 cm in 2040 under {scen} (t C/ha)",
        "AbsDiff": f"Absolute difference: SOC 2040 under {scen} minus T0 (t C/ha)",
        "ASR": f"Absolute sequestration rate under {scen}: AbsDiff / 20 (t C/ha/yr)",
        "RelDiff": f"Relative difference: SOC 2040 under {scen} minus BAU (t C/ha)",
        "RSR": f"Relative sequestration rate under {scen}: RelDiff / 20 (t C/ha/yr)",
    }[kind]


def cog_url(out_prefix: str, region: str, layer: str) -> str:
    """Return the URL of a layer's COG: ``{out_prefix}/{region}/{FAO file name}``.

    The global layers (region :data:`GLOBAL_REGION`) carry FAO's names without the country prefix.
    """
    if not _REGION_RE.fullmatch(region):
        raise InputValidationError(
            f"region={region!r} must be an ISO3 code or a name of letters, digits, '_' and '-'"
        )
    name = fao_file_name(region, layer)
    if region == GLOBAL_REGION:
        name = name.removeprefix(f"{region}_")
    return f"{out_prefix.rstrip('/')}/{region}/{name}"


def multihash_sha256(digest: bytes) -> str:
    """Return the hex multihash of a sha256 digest (code 0x12, length 0x20)."""
    return "1220" + digest.hex()


def grid_transform(data: xr.DataArray) -> Affine:
    """Return the affine transform of ``data`` on the global 30″ grid.

    ``data`` has 1-D ``latitude`` (descending) and ``longitude`` (ascending) cell-centre
    coordinates, degrees, spaced by 1/120°. The transform is rebuilt from integer global cell
    offsets, so it is exactly aligned whatever rounding the coordinates carry.

    Raises
    ------
    GridMismatchError
        Coordinates missing, not evenly spaced at 30″, or not centred on global grid cells.
    """
    for dim in ("latitude", "longitude"):
        if dim not in data.dims or dim not in data.coords:
            raise GridMismatchError(
                f"layer {data.name!r}: needs a {dim!r} dimension with coordinates; dims={data.dims}"
            )
    lat = np.asarray(data["latitude"].values, dtype=np.float64)
    lon = np.asarray(data["longitude"].values, dtype=np.float64)
    row0 = _global_offset((90.0 - lat[0]) / RES_DEG - 0.5, "latitude", data.name)
    col0 = _global_offset((lon[0] + 180.0) / RES_DEG - 0.5, "longitude", data.name)
    for name, values, sign in (("latitude", lat, -1.0), ("longitude", lon, 1.0)):
        steps = np.diff(values) * sign / RES_DEG
        if values.size > 1 and not np.allclose(steps, 1.0, rtol=0.0, atol=_ALIGN_TOL_CELLS):
            raise GridMismatchError(
                f"layer {data.name!r}: {name} must step by {sign * RES_DEG!r}° (30″); "
                f"found steps from {np.min(steps) * RES_DEG!r} to {np.max(steps) * RES_DEG!r}"
            )
    if row0 < 0 or col0 < 0 or row0 + lat.size > N_ROWS or col0 + lon.size > N_COLS:
        raise GridMismatchError(f"layer {data.name!r} extends beyond the global grid")
    return Affine(RES_DEG, 0.0, -180.0 + col0 * RES_DEG, 0.0, -RES_DEG, 90.0 - row0 * RES_DEG)


def _global_offset(offset: float, dim: str, name: Any) -> int:
    """Round a fractional global cell offset, raising if it is not (almost) an integer."""
    k = round(offset)
    if abs(offset - k) > _ALIGN_TOL_CELLS:
        raise GridMismatchError(
            f"layer {name!r}: first {dim} is not a cell centre of the global 30″ grid "
            f"(offset {offset:.6f} cells); regrid onto gsocseq.cube.grid first"
        )
    return int(k)


def check_cog(
    path: str | Path,
    *,
    profile: CogProfile | None = None,
    expected_shape: tuple[int, int] | None = None,
    dtype: str = "float32",
) -> list[str]:
    """Return every problem of a local COG file (empty list: valid).

    Checks ``rio_cogeo`` ``cog_validate(strict=True)`` (warnings count as problems, so a large file
    without overviews fails), one ``dtype`` band (float32 with nodata NaN; a uint8 quality layer
    with nodata ``QUALITY_NODATA``), CRS EPSG:4326, 30″ pixels aligned to the
    global grid, no rotation, and — when given — the profile's block size and compression and the
    expected (rows, columns).
    """
    problems: list[str] = []
    try:
        _, errors, warnings = cog_validate(
            str(path), strict=True, quiet=True, config={"session": DummySession()}
        )
    except Exception as exc:  # noqa: BLE001 - a file GDAL cannot read is a problem to report
        return [f"cannot be read as a GeoTIFF: {exc}"]
    problems += [f"COG: {msg}" for msg in (*errors, *warnings)]
    with _local_env(), rasterio.open(path) as src:
        if src.count != 1:
            problems.append(f"band count is {src.count}, expected 1")
        if src.dtypes[0] != dtype:
            problems.append(f"data type is {src.dtypes[0]}, expected {dtype}")
        if dtype == "float32" and (src.nodata is None or not math.isnan(src.nodata)):
            problems.append(f"nodata is {src.nodata}, expected NaN")
        if dtype != "float32" and src.nodata != QUALITY_NODATA:
            problems.append(f"nodata is {src.nodata}, expected {QUALITY_NODATA}")
        if src.crs is None or src.crs.to_epsg() != 4326:
            problems.append(f"CRS is {src.crs}, expected {CRS}")
        problems += _transform_problems(src.transform)
        if expected_shape is not None and src.shape != tuple(expected_shape):
            problems.append(f"shape is {src.shape}, expected {tuple(expected_shape)}")
        if profile is not None:
            block = src.block_shapes[0]
            if src.width > profile.blocksize and block != (profile.blocksize, profile.blocksize):
                problems.append(f"block shape is {block}, expected {profile.blocksize}²")
            compress = (src.compression.name if src.compression else "NONE").upper()
            if compress != profile.compress.upper():
                problems.append(f"compression is {compress}, expected {profile.compress.upper()}")
    return problems


def read_levels(path: str | Path) -> list[np.ndarray]:
    """Return every level of a local (Cloud-Optimised) GeoTIFF: full resolution, then overviews."""
    with _local_env(), rasterio.open(path) as src:
        levels, n = [src.read(1)], len(src.overviews(1))
    for k in range(n):
        with _local_env(), rasterio.open(path, overview_level=k) as src:
            levels.append(src.read(1))
    return levels


def _transform_problems(t: Affine) -> list[str]:
    """Return the ways an affine transform departs from the global 30″ grid."""
    problems = []
    if t.b != 0.0 or t.d != 0.0:
        problems.append(f"transform is rotated: {tuple(t)[:6]}")
    if not (math.isclose(t.a, RES_DEG, rel_tol=1e-9) and math.isclose(t.e, -RES_DEG, rel_tol=1e-9)):
        problems.append(f"pixel size is ({t.a!r}, {t.e!r}), expected ({RES_DEG!r}, {-RES_DEG!r})")
    for name, off in (("west", (t.c + 180.0) / RES_DEG), ("north", (90.0 - t.f) / RES_DEG)):
        if abs(off - round(off)) > _ALIGN_TOL_CELLS:
            problems.append(f"{name} edge is not on the global 30″ grid ({off:.6f} cells)")
    return problems


def write_cog(
    data: xr.DataArray,
    url: str,
    storage_options: dict[str, Any] | None = None,
    *,
    profile: str = "gsocseq",
    tags: Mapping[str, str] | None = None,
    strip_rows: int = STRIP_ROWS,
    only_if_changed: bool = False,
) -> CogAsset:
    """Write one layer as a validated COG at ``url``, atomically, and describe it.

    Parameters
    ----------
    data
        Layer on the global grid: dims (``latitude``, ``longitude``) with cell-centre coordinates,
        float values in the layer's units (``data.name`` a product layer; units from
        ``attrs["units"]`` or :data:`~gsocseq.vocabulary.LAYERS`). NaN marks nodata. Dask-backed
        arrays are computed a strip of rows at a time.
    url
        Destination on any fsspec store (``s3://``, ``file://``, ``memory://`` or a local path).
    storage_options
        fsspec options of the store (e.g. ``{"client_kwargs": {"endpoint_url": ...}}``).
    profile
        Name of a registered COG profile (:mod:`gsocseq.products.profiles`).
    tags
        Extra GDAL metadata items stored in the file.
    strip_rows
        Rows computed and held at a time (memory ≈ ``strip_rows`` × columns × 4 bytes); the file's
        bytes do not depend on it.
    only_if_changed
        Leave the object at ``url`` untouched (``written=False``, its modification time kept) when
        it already holds exactly these bytes (same size, same sha256): a republication rewrites
        only the files whose content changed.

    Returns
    -------
    CogAsset
        href, size (bytes), sha256 multihash, shape, transform, nodata, units, description and
        whether the object was written.
    """
    prof = get_profile(profile)
    layer, units, description, dtype = layer_metadata(data)
    data = normalised(data)
    transform = grid_transform(data)
    all_tags = {"GSOCSEQ_LAYER": layer, **(dict(tags) if tags else {})}
    with tempfile.TemporaryDirectory(prefix="gsocseq-cog-") as tmp:
        src_path, cog_path = Path(tmp) / "src.tif", Path(tmp) / "cog.tif"
        write_strips(data, src_path, transform, units, description, all_tags, dtype, strip_rows)
        with _local_env(), rasterio.open(src_path) as src:
            rasterio.shutil.copy(src, cog_path, driver="COG", **cog_options(prof, dtype))
        return store_cog(cog_path, url, storage_options, profile=prof, layer=layer,
                         shape=(int(data.shape[0]), int(data.shape[1])), transform=transform,
                         units=units, description=description, only_if_changed=only_if_changed)


def layer_metadata(data: xr.DataArray) -> tuple[str, str, str, str]:
    """Return (layer name, units, description, GDAL dtype) of a product layer ``data``."""
    layer = _layer_name(data)
    units = str(data.attrs.get("units", PUBLISHED_LAYERS[layer].units))
    description = str(data.attrs.get("description") or layer_description(layer))
    return layer, units, description, PUBLISHED_LAYERS[layer].dtype


def cog_options(prof: CogProfile, dtype: str) -> dict[str, Any]:
    """Return the GDAL ``COG`` creation options of ``prof`` for a ``dtype`` band."""
    options: dict[str, Any] = dict(prof.creation_options())
    if dtype != "float32" and options.get("predictor") == 3:  # float predictor only
        options["predictor"] = 2
    return options


def store_cog(
    cog_path: Path, url: str, storage_options: dict[str, Any] | None, *, profile: CogProfile,
    layer: str, shape: tuple[int, int], transform: Affine, units: str, description: str,
    only_if_changed: bool = False,
) -> CogAsset:
    """Check the local COG ``cog_path`` (:func:`check_cog`), upload it to ``url`` and describe it.

    Nothing is uploaded when a check fails (:class:`ProductValidationError` lists every problem)
    or, with ``only_if_changed``, when the object at ``url`` already holds the same bytes.
    """
    dtype = PUBLISHED_LAYERS[layer].dtype
    problems = check_cog(cog_path, profile=profile, expected_shape=shape, dtype=dtype)
    if problems:
        raise ProductValidationError(
            f"COG for layer {layer!r} ({url}) failed validation, nothing written:\n- "
            + "\n- ".join(problems)
        )
    size, checksum = file_digest(cog_path)
    written = not (only_if_changed and _same_object(url, storage_options, size, checksum))
    if written:
        put_file(cog_path, url, storage_options)
    log.info("%s %s (%d bytes)", "wrote" if written else "unchanged, kept", url, size)
    return CogAsset(
        layer=layer,
        href=url,
        size=size,
        checksum=checksum,
        shape=shape,
        transform=tuple(transform)[:6],  # type: ignore[arg-type]
        nodata=layer_nodata(layer),
        units=units,
        description=description,
        written=written,
    )


def _same_object(
    url: str, storage_options: dict[str, Any] | None, size: int, checksum: str
) -> bool:
    """Return whether the object at ``url`` has ``size`` bytes and sha256 multihash ``checksum``.

    Only an object of the same size is read (and hashed); a missing object is not the same.
    """
    fs, path = filesystem(url, storage_options)
    fs.invalidate_cache(path)
    try:
        if int(fs.size(path)) != size:
            return False
    except FileNotFoundError:
        return False
    h = hashlib.sha256()
    with fs.open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return multihash_sha256(h.digest()) == checksum


def write_region_cogs(
    layers: xr.Dataset,
    region: str,
    out_prefix: str,
    storage_options: dict[str, Any] | None = None,
    *,
    skip_existing: bool = True,
    profile: str = "gsocseq",
    strip_rows: int = STRIP_ROWS,
    only_if_changed: bool = False,
) -> list[CogAsset]:
    """Write every product layer of ``layers`` as ``{out_prefix}/{region}/{FAO file name}``.

    Variables that are product layers (:data:`~gsocseq.vocabulary.LAYERS`) are written in FAO
    order; other variables (e.g. reason codes) are skipped and logged. With ``skip_existing``, a
    final file that already exists, passes :func:`check_cog` and has the layer's grid is described
    from the store and not rewritten (a rerun rewrites nothing). Its values are not compared:
    output prefixes carry the run's config hash, so an existing valid file holds the same layer.
    With ``only_if_changed``, a file is computed but not uploaded when the object already holds
    the same bytes (:func:`write_cog`). ``layers`` should be backed by stored (zarr) or in-memory
    arrays: each layer is computed on its own, a strip of rows at a time.

    Returns
    -------
    list[CogAsset]
        One per written or kept layer, in FAO order.
    """
    ignored = [str(v) for v in layers.data_vars if v not in PUBLISHED_LAYERS]
    if ignored:
        log.info("%s: not product layers, no COG written: %s", region, ignored)
    assets = []
    for layer in PUBLISHED_LAYERS:
        if layer not in layers.data_vars:
            continue
        url = cog_url(out_prefix, region, layer)
        data = layers[layer].rename(layer)
        if skip_existing:
            kept = _existing_asset(url, storage_options, data, get_profile(profile))
            if kept is not None:
                log.info("%s: kept existing valid COG %s", region, url)
                assets.append(replace(kept, written=False))
                continue
        assets.append(
            write_cog(data, url, storage_options, profile=profile, tags={"GSOCSEQ_REGION": region},
                      strip_rows=strip_rows, only_if_changed=only_if_changed)
        )
    return assets


def _local_env() -> rasterio.Env:
    """Return a GDAL environment for local files only.

    Without it rasterio builds a boto3 session for every open when AWS credentials are in the
    environment (≈ 40 ms each); every file this module opens with rasterio is local.
    """
    return rasterio.Env(session=DummySession())


def _layer_name(data: xr.DataArray) -> str:
    """Return ``data.name`` as a product layer name, raising if it is not one."""
    if data.name is None or str(data.name) not in PUBLISHED_LAYERS:
        raise InputValidationError(
            f"data.name={data.name!r} must be a product layer name, one of "
            f"{tuple(PUBLISHED_LAYERS)}"
        )
    return str(data.name)


def normalised(data: xr.DataArray) -> xr.DataArray:
    """Return ``data`` as its layer's dtype (latitude, longitude), latitude descending.

    Product layers are float32 (NaN = nodata); quality layers uint8 (``QUALITY_NODATA``).
    """
    if data.ndim != 2 or set(data.dims) != {"latitude", "longitude"}:
        raise InputValidationError(
            f"layer {data.name!r}: dims must be ('latitude', 'longitude'), got {data.dims}"
        )
    spec = PUBLISHED_LAYERS.get(str(data.name))
    if spec is not None and spec.dtype != "float32":
        if data.dtype != np.dtype(spec.dtype):
            raise InputValidationError(
                f"layer {data.name!r}: dtype {data.dtype} must be {spec.dtype}")
        data = data.transpose("latitude", "longitude")
        if data.sizes["latitude"] > 1 and data["latitude"][0] < data["latitude"][-1]:
            data = data.isel(latitude=slice(None, None, -1))
        return data
    if not np.issubdtype(data.dtype, np.floating):
        raise InputValidationError(
            f"layer {data.name!r}: dtype {data.dtype} must be floating point (NaN = nodata)"
        )
    data = data.transpose("latitude", "longitude")
    if data.sizes["latitude"] > 1 and data["latitude"][0] < data["latitude"][-1]:
        data = data.isel(latitude=slice(None, None, -1))
    return data.astype(np.float32)


def write_strips(
    data: xr.DataArray,
    path: Path,
    transform: Affine,
    units: str,
    description: str,
    tags: Mapping[str, str],
    dtype: str = "float32",
    strip_rows: int = STRIP_ROWS,
) -> None:
    """Stream ``data`` into a tiled, uncompressed local GeoTIFF, ``strip_rows`` rows at a time."""
    rows, cols = data.shape
    profile = {
        "driver": "GTiff",
        "height": rows,
        "width": cols,
        "count": 1,
        "dtype": dtype,
        "crs": CRS,
        "transform": transform,
        "nodata": NODATA if dtype == "float32" else QUALITY_NODATA,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "BIGTIFF": "IF_SAFER",
    }
    with _local_env(), rasterio.open(path, "w", **profile) as dst:
        for r0 in range(0, rows, max(1, strip_rows)):
            r1 = min(rows, r0 + max(1, strip_rows))
            block = np.asarray(data.isel(latitude=slice(r0, r1)).values, dtype=dtype)
            dst.write(block, 1, window=((r0, r1), (0, cols)))
        dst.set_band_description(1, description)
        dst.units = (units,)
        dst.update_tags(**tags)


def file_digest(path: Path) -> tuple[int, str]:
    """Return (size in bytes, sha256 multihash hex) of a local file."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return size, multihash_sha256(h.digest())


def _existing_asset(
    url: str, storage_options: dict[str, Any] | None, data: xr.DataArray, prof: CogProfile
) -> CogAsset | None:
    """Describe the COG already at ``url`` if it is valid and on ``data``'s grid, else ``None``."""
    fs, path = filesystem(url, storage_options)
    fs.invalidate_cache(path)  # the key may have been removed since this process listed it
    if not fs.exists(path):
        return None
    data = normalised(data)
    transform = grid_transform(data)
    dtype = PUBLISHED_LAYERS[str(data.name)].dtype
    with tempfile.TemporaryDirectory(prefix="gsocseq-cog-") as tmp:
        local = Path(tmp) / "existing.tif"
        fs.get_file(path, str(local))
        problems = check_cog(local, profile=prof, expected_shape=data.shape, dtype=dtype)
        if problems:
            log.warning("existing %s is not valid, rewriting it: %s", url, problems)
            return None
        with _local_env(), rasterio.open(local) as src:
            if not src.transform.almost_equals(transform, precision=1e-9):
                log.warning("existing %s lies on another window, rewriting it", url)
                return None
            units = (src.units[0] or "") if src.units else ""
            description = src.descriptions[0] or ""
        size, checksum = file_digest(local)
    return CogAsset(
        layer=str(data.name),
        href=url,
        size=size,
        checksum=checksum,
        shape=(int(data.shape[0]), int(data.shape[1])),
        transform=tuple(transform)[:6],  # type: ignore[arg-type]
        nodata=layer_nodata(str(data.name)),
        units=units,
        description=description,
    )
