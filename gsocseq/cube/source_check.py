"""``gsocseq sources check``: what each source really is, against what the sources file says.

For every source: reachable (one HEAD/info per file), format, CRS, resolution, bands or variables,
units, nodata, the period covered against the period a run needs, and the bytes a run of the
region would read (file size × the share of the file the region covers). Any difference is a
:class:`Problem` naming the source, the URL, what was expected and what was found.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio

from gsocseq.gdal_paths import raster
from gsocseq.sources.readers import Bounds, netcdf_grid, open_netcdf, same_crs
from gsocseq.sources.spec import SourcesConfig, SourceSpec, options_for
from gsocseq.storage import filesystem

#: Years of monthly climate a run needs (the cube period).
NEEDED_YEARS: tuple[int, int] = (1981, 2020)


@dataclass(frozen=True)
class Problem:
    """One way a source differs from its declaration (or cannot be reached)."""

    source: str
    url: str
    message: str

    def __str__(self) -> str:
        return f"source {self.source!r} at {self.url}: {self.message}"


def _urls(spec: SourceSpec) -> list[str]:
    """Every file a run reads for ``spec`` (templates filled)."""
    if spec.kind in ("terraclimate", "cru_ts"):
        from gsocseq.cube.climate import climate_files

        return sorted({f.url for f in climate_files(spec)})
    if spec.kind == "soilgrids":
        return [spec.format_url(depth=d) for d in (spec.layers or ("0-5cm", "5-15cm", "15-30cm"))]
    if spec.kind == "cover_monthly":
        return [spec.format_url(month=m) for m in range(1, 13)]
    if spec.kind == "esa_cci":
        return [spec.format_url(year=spec.period[0] if spec.period else 2015)]
    return [spec.url]


def _share(extent: Bounds, region: Bounds | None) -> float:
    if region is None:
        return 1.0
    w, s, e, n = extent
    rw, rs, re_, rn = region
    dx = max(0.0, min(e, re_) - max(w, rw))
    dy = max(0.0, min(n, rn) - max(s, rs))
    area = (e - w) * (n - s)
    return float(dx * dy / area) if area > 0 else 1.0


def check_source(
    spec: SourceSpec, region: Bounds | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> tuple[list[str], list[Problem]]:
    """Return report lines and problems for one source (see the module docstring)."""
    lines: list[str] = []
    problems: list[Problem] = []
    so = options_for(spec, storage_options)
    try:
        urls = _urls(spec)
    except Exception as exc:  # a bad template or period is itself the finding
        return lines, [Problem(spec.name, spec.url, str(exc))]
    sizes: dict[str, int] = {}
    for url in urls:
        try:
            fs, path = filesystem(url, so)
            sizes[url] = int(fs.info(path).get("size") or 0)
        except Exception as exc:
            problems.append(Problem(spec.name, url, f"not reachable: {type(exc).__name__}: {exc}"))
    lines.append(f"{spec.name}: {spec.kind} {spec.version} — {len(sizes)}/{len(urls)} file(s) "
                 f"reachable, {sum(sizes.values()) / 1e6:.1f} MB")
    if not sizes or spec.kind == "natural_earth":
        return lines, problems
    first = next(iter(sizes))
    try:
        if spec.kind in ("terraclimate", "cru_ts"):
            share = _check_netcdf(spec, first, so, region, lines, problems)
        else:
            share = _check_raster(spec, first, so, region, lines, problems)
    except Exception as exc:
        problems.append(Problem(spec.name, first, f"cannot read: {type(exc).__name__}: {exc}"))
        return lines, problems
    lines.append(f"  a run of the region reads ≈ {share * sum(sizes.values()) / 1e6:.1f} MB")
    return lines, problems


def _check_raster(
    spec: SourceSpec, url: str, so: Mapping[str, Any], region: Bounds | None,
    lines: list[str], problems: list[Problem],
) -> float:
    with raster(url, so) as src:
        declared = rasterio.crs.CRS.from_user_input(spec.crs)
        crs = src.crs.to_string() if src.crs else "none"
        lines.append(f"  {src.driver} {src.width}×{src.height}, {src.count} band(s) "
                     f"{src.dtypes[0]}, CRS {crs}, resolution {src.res[0]:.6g}, nodata {src.nodata}"
                     f", units {src.units[0] or spec.units or '?'}")
        if src.crs is None or not same_crs(src.crs, declared):
            problems.append(Problem(spec.name, url, f"CRS is {crs}, the source declares {spec.crs}"))
        want = spec.bands if spec.bands is not None else 1
        if src.count != want:
            problems.append(Problem(spec.name, url, f"{src.count} band(s), expected {want}"))
        if spec.nodata is not None and src.nodata is not None and src.nodata != spec.nodata:
            problems.append(Problem(spec.name, url,
                                    f"nodata is {src.nodata}, the source declares {spec.nodata}"))
        if declared.to_epsg() == 4326:
            b = src.bounds
            return _share((b.left, b.bottom, b.right, b.top), region)
        return 1.0 if region is None else min(1.0, _share((-180, -90, 180, 90), region) * 2)


def _check_netcdf(
    spec: SourceSpec, url: str, so: Mapping[str, Any], region: Bounds | None,
    lines: list[str], problems: list[Problem],
) -> float:
    from gsocseq.cube.climate import climate_files

    first = climate_files(spec)[0]
    url, var = first.url, first.variable
    with open_netcdf(url, so, source=spec.name) as ds:
        grid = netcdf_grid(ds, var, f"source {spec.name!r} at {url}")
        present = sorted(str(v) for v in ds.data_vars)
    p = grid.packing
    lines.append(f"  netCDF {var!r} dims {grid.dims}, {grid.latitude.size}×{grid.longitude.size} "
                 f"at {grid.dlat:.6g}°, {p.dtype} × {p.scale} + {p.offset}, fill {p.fills}, "
                 f"units {p.units!r}, variables {present}")
    if spec.period is None or spec.period[0] > NEEDED_YEARS[0] or spec.period[1] < NEEDED_YEARS[1]:
        problems.append(Problem(spec.name, spec.url, f"period {spec.period} does not cover "
                                f"{NEEDED_YEARS[0]}-{NEEDED_YEARS[1]}"))
    if grid.time is not None:
        years = np.unique(grid.time.astype("datetime64[Y]").astype(int) + 1970)
        lines.append(f"  first file covers {years.min()}–{years.max()}, run needs "
                     f"{NEEDED_YEARS[0]}–{NEEDED_YEARS[1]}")
    lat, lon = grid.latitude, grid.longitude
    extent = (float(lon.min()) - grid.dlon / 2, float(lat.min()) - grid.dlat / 2,
              float(lon.max()) + grid.dlon / 2, float(lat.max()) + grid.dlat / 2)
    return _share(extent, region)


def check_sources(
    config: SourcesConfig, region: Bounds | None = None
) -> tuple[list[str], list[Problem]]:
    """Check every source of ``config``; return all report lines and all problems."""
    lines: list[str] = []
    problems: list[Problem] = []
    for spec in config.specs:
        got_lines, got_problems = check_source(spec, region, config.storage_options)
        lines += got_lines
        problems += got_problems
    return lines, problems
