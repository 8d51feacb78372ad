"""One adapter per dataset kind: read a window of a source and normalise it — nothing else.

Each adapter reads only the window a tile needs (plus a margin) through fsspec and returns an
:class:`xarray.Dataset` on the source's own grid, with the cube's variable names and units
(:mod:`gsocseq.cube.schema`), NaN for nodata and provenance in ``attrs``. Regridding onto the 30″
grid is the cube's job (:mod:`gsocseq.cube.regrid`).

========================  ==============================================  ========================
kind                      native                                          returns
========================  ==============================================  ========================
``gsocmap``               SOC 0-30 cm GeoTIFF, t C/ha (or kg/m2 ×10)      ``soc`` t C/ha
``gsocmap_uncertainty``   SOC map's uncertainty GeoTIFF, % or t C/ha      ``soc_uncertainty``
``soilgrids``             clay per depth, g/kg (or %), depth-weighted     ``clay`` %
``esa_cci``               ESA CCI LCCS codes GeoTIFF                      ``land_use`` FAO class
``terraclimate``          ``TerraClimate_{var}_{year}.nc`` tmax/tmin/...  ``tmp`` ``prec`` ``pet``
``cru_ts``                CRU TS decade files tmp/pre/pet (pet mm/day)    ``tmp`` ``prec`` ``pet``
``cover_monthly``         12 GeoTIFFs, vegetated share 0-1 (or %)         ``cover`` (month)
``stac``                  STAC items (:mod:`gsocseq.sources.stac`)        ``land_use`` / ``cover``
========================  ==============================================  ========================
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
import xarray as xr

from gsocseq.errors import GridMismatchError, InputValidationError, SourceError
from gsocseq.sources.landcover import esa_to_fao
from gsocseq.sources.readers import (
    Bounds,
    NcWindow,
    prefetch_small,
    read_netcdf_raw,
    read_raster_window,
)
from gsocseq.sources.spec import SourceSpec, options_for
from gsocseq.sources.stac import StacAdapter
from gsocseq.sources.units import convert, native_units
from gsocseq.storage import call_with_retries

#: Attempts per source read when it fails with a transient error (a dropped connection, a
#: timeout; :func:`gsocseq.storage.is_transient`), with the storage module's backoff.
SOURCE_ATTEMPTS: int = 3


class SourceAdapter(Protocol):
    """Reads a window of one dataset kind and normalises it to cube names and units."""

    def read(
        self, spec: SourceSpec, bounds: Bounds, storage_options: Mapping[str, Any] | None = None
    ) -> xr.Dataset:
        """Return the normalised window covering ``bounds`` (degrees, west/south/east/north)."""
        ...


def _where(spec: SourceSpec, url: str) -> str:
    return f"source {spec.name!r} ({spec.kind}) at {url}"


def _ds(name: str, da: xr.DataArray, spec: SourceSpec, units: str, **attrs: Any) -> xr.Dataset:
    out = da.copy()
    out.attrs = {"units": units, "source": spec.name, "source_version": spec.version, **attrs}
    return xr.Dataset({name: out})


def _read_converted(
    spec: SourceSpec,
    url: str,
    bounds: Bounds,
    storage_options: Mapping[str, Any] | None,
    default_units: str,
    to_units: str,
) -> tuple[xr.DataArray, str, np.ndarray, str]:
    """Read the raster window at ``url``; return it, its native units, values in ``to_units``, where."""
    where = _where(spec, url)
    da = read_raster_window(
        url, bounds, storage_options, source=spec.name, crs=spec.crs, nodata=spec.nodata
    )
    units = native_units(spec.units, da.attrs.get("units"), where) or default_units
    return da, units, convert(da.values, units, to_units, where), where


class GsocmapAdapter:
    """SOC stock 0-30 cm (GSOCmap or a national map) → ``soc`` in t C/ha."""

    def read(
        self, spec: SourceSpec, bounds: Bounds, storage_options: Mapping[str, Any] | None = None
    ) -> xr.Dataset:
        """Read SOC; kg/m2 (declared or tagged in the file) is converted ×10 to t C/ha."""
        da, units, values, _ = _read_converted(
            spec, spec.url, bounds, storage_options, "t C/ha", "t C/ha"
        )
        return _ds("soc", da.copy(data=values), spec, "t C/ha", native_units=units)


#: Units a ``gsocmap_uncertainty`` source may declare: relative (``%`` of the pixel's SOC) or
#: absolute SOC stock (converted to t C/ha; the cube divides by SOC).
UNCERTAINTY_UNITS: tuple[str, ...] = ("%", "t C/ha", "kg/m2")


class SocUncertaintyAdapter:
    """The SOC map's own uncertainty layer → ``soc_uncertainty`` (``%`` or ``t C/ha``).

    Convention: each value is the **half-width of the 95 % range** of the pixel's SOC stock
    0-30 cm (a map giving a standard deviation must be multiplied by 1.96 first, e.g. with a
    ``scale_factor`` tag in the file). Declared ``units`` (or the file's tag) say which:

    * ``%`` — relative, percent of the pixel's SOC value (20 = ±20 %): returned as is;
    * ``t C/ha`` or ``kg/m2`` — absolute stock: returned in t C/ha (kg/m2 ×10) with
      ``attrs["units"] = "t C/ha"``; the cube converts it to percent of the SOC at the same 30″
      cell (:func:`gsocseq.cube.uncertainty.to_percent`).

    Read like ``soc`` (same raster reader: declared CRS, nodata → NaN, scale/offset tags).
    """

    def read(
        self, spec: SourceSpec, bounds: Bounds, storage_options: Mapping[str, Any] | None = None
    ) -> xr.Dataset:
        """Read the uncertainty window; units ``%`` are kept, absolute ones become t C/ha."""
        where = _where(spec, spec.url)
        da = read_raster_window(
            spec.url, bounds, storage_options, source=spec.name, crs=spec.crs, nodata=spec.nodata
        )
        units = native_units(spec.units, da.attrs.get("units"), where)
        if units not in UNCERTAINTY_UNITS:
            raise InputValidationError(
                f"{where}: uncertainty units {units or '(none)'!r}; declare units = '%' (half-"
                "width of the 95 % range in percent of SOC) or 't C/ha' / 'kg/m2' (absolute)"
            )
        to = "%" if units == "%" else "t C/ha"
        values = convert(da.values, units, to, where)
        return _ds("soc_uncertainty", da.copy(data=values), spec, to, native_units=units)


_DEPTH = re.compile(r"(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)")


def depth_weights(layers: tuple[str, ...], where: str = "") -> np.ndarray:
    """Thickness weights of depth intervals like ``"0-5cm", "5-15cm", "15-30cm"`` (sum 1).

    For SoilGrids 2.0 this is the 0–30 cm mean ``(5·c0_5 + 10·c5_15 + 15·c15_30) / 30``.
    """
    tops, bottoms = [], []
    for layer in layers:
        m = _DEPTH.search(layer)
        if not m:
            raise InputValidationError(f"{where}: depth layer {layer!r} is not like '0-5cm'")
        tops.append(float(m.group(1)))
        bottoms.append(float(m.group(2)))
    thick = np.array(bottoms) - np.array(tops)
    if not layers or np.any(thick <= 0):
        raise InputValidationError(f"{where}: invalid depth layers {layers}")
    if any(b != t for b, t in zip(bottoms[:-1], tops[1:], strict=True)):
        raise InputValidationError(f"{where}: depth layers {layers} are not contiguous")
    return thick / thick.sum()


class SoilGridsAdapter:
    """Clay per depth layer (SoilGrids 2.0: g/kg) → depth-weighted ``clay`` 0-30 cm in %."""

    def read(
        self, spec: SourceSpec, bounds: Bounds, storage_options: Mapping[str, Any] | None = None
    ) -> xr.Dataset:
        """Read every depth layer, convert to %, average with thickness weights."""
        layers = spec.layers or ("0-5cm", "5-15cm", "15-30cm")
        weights = depth_weights(layers, _where(spec, spec.url))
        total: np.ndarray | None = None
        first: xr.DataArray | None = None
        units = ""
        for layer, w in zip(layers, weights, strict=True):
            da, units, pct, where = _read_converted(
                spec, spec.format_url(depth=layer), bounds, storage_options, "%", "%"
            )
            _check_clay(pct, units, where)
            if first is None:
                first, total = da, w * pct
            else:
                if da.shape != first.shape or not (
                    np.allclose(da.latitude, first.latitude)
                    and np.allclose(da.longitude, first.longitude)
                ):
                    raise GridMismatchError(f"{where}: depth layer {layer!r} is on another grid")
                total = total + w * pct
        assert first is not None and total is not None
        return _ds("clay", first.copy(data=total), spec, "%", native_units=units)


def _check_clay(pct: np.ndarray, units: str, where: str) -> None:
    finite = pct[np.isfinite(pct)]
    if finite.size and (finite.max() > 100.0 or finite.min() < 0.0):
        hint = (
            " — the file looks like g/kg (SoilGrids 2.0): declare units = 'g/kg'"
            if (finite.max() > 100.0 and units == "%")
            else ""
        )
        raise InputValidationError(
            f"{where}: clay {finite.min():.4g}…{finite.max():.4g} % is outside 0-100 %{hint}"
        )


class EsaCciAdapter:
    """ESA CCI Land Cover LCCS codes → FAO land-use class ``land_use`` (uint8, 0 = no data)."""

    def read(
        self, spec: SourceSpec, bounds: Bounds, storage_options: Mapping[str, Any] | None = None
    ) -> xr.Dataset:
        """Read the map of year ``period[0]`` and reclassify with reference §3.5.

        One file per year (``{year}`` in the URL, one band), or one file with a band per year
        (``first_band_year``: band = year − first_band_year + 1; v2.0.7's 1992–2015 file has 24).
        """
        year = spec.period[0] if spec.period else 2015
        url = spec.format_url(year=year)
        band, bands = 1, spec.bands if spec.bands is not None else 1
        if spec.first_band_year is not None:
            band = year - spec.first_band_year + 1
            if band < 1 or (spec.bands is not None and band > spec.bands):
                raise InputValidationError(
                    f"{_where(spec, url)}: year {year} is not in the file's bands "
                    f"{spec.first_band_year}…{spec.first_band_year + (spec.bands or 1) - 1}"
                )
            bands = spec.bands  # type: ignore[assignment]
        da = read_raster_window(
            url,
            bounds,
            storage_options,
            source=spec.name,
            crs=spec.crs,
            nodata=spec.nodata,
            band=band,
            warp_resampling="nearest",
            as_float=False,
            bands=bands,
        )
        if da.size and not np.issubdtype(da.dtype, np.integer):
            raise InputValidationError(
                f"{_where(spec, url)}: land cover has dtype {da.dtype}; expected integer ESA codes"
            )
        return _ds("land_use", da.copy(data=esa_to_fao(da.values)), spec, "1", year=year)


def _month_lengths(years: range) -> np.ndarray:
    return np.array([calendar.monthrange(y, m)[1] for y in years for m in range(1, 13)], float)


def _stack_years(
    spec: SourceSpec,
    bounds: Bounds,
    so: Mapping[str, Any] | None,
    var: str,
    years: range,
    url_for: Any,
    prefetched: Mapping[str, bytes],
) -> tuple[np.ndarray, NcWindow]:
    """Read ``var`` for ``years`` as (months, lat, lon) in native units; returns (values, first)."""
    parts: list[np.ndarray] = []
    template: NcWindow | None = None
    cache: dict[str, NcWindow] = {}
    for year in years:
        url, sel = url_for(var, year)
        if url not in cache:
            cache.clear()
            cache[url] = read_netcdf_raw(
                url, var, bounds, so, source=spec.name, data=prefetched.get(url)
            )
        win = cache[url]
        values = win.values
        if win.time is not None:
            years_in = win.time.astype("datetime64[Y]").astype(int) + 1970
            if sel is not None:
                values = values[years_in == year]
            elif not (years_in == year).all():
                raise SourceError(
                    f"{_where(spec, url)}: file for {year} holds dates of "
                    f"{sorted(set(years_in.tolist()))}"
                )
        n_time = values.shape[0]
        if n_time != 12:
            raise SourceError(
                f"{_where(spec, url)}: variable {var!r} has {n_time} months for {year}, expected 12"
            )
        if template is None:
            template = win
        elif values.shape[1:] != template.values.shape[1:]:
            raise GridMismatchError(f"{_where(spec, url)}: {var!r} {year} is on another grid")
        parts.append(values)
    assert template is not None
    return np.concatenate(parts, axis=0), template


class _ClimateAdapter:
    """Shared code of the monthly climate adapters."""

    #: cube variable → (file variable, default native units)
    variables: dict[str, tuple[str, str]] = {}

    def _url_for(self, spec: SourceSpec) -> Any:
        raise NotImplementedError

    def _combine(
        self, raw: dict[str, np.ndarray], units: dict[str, str], where: str, years: range
    ) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def combine(
        self, raw: dict[str, np.ndarray], units: dict[str, str], where: str, years: range
    ) -> dict[str, np.ndarray]:
        """Convert native monthly fields to ``tmp`` degC, ``prec``/``pet`` mm/month (float64).

        ``raw`` by key of :attr:`variables`; ``units`` the files' ``units`` attributes ("" if absent).
        """
        resolved = {
            k: native_units("", units.get(k), where) or self.variables[k][1] for k in raw
        }
        return self._combine(raw, resolved, where, years)

    def read(
        self, spec: SourceSpec, bounds: Bounds, storage_options: Mapping[str, Any] | None = None
    ) -> xr.Dataset:
        """Read monthly fields for the spec's period → ``tmp`` degC, ``prec``/``pet`` mm/month."""
        if spec.period is None:
            raise InputValidationError(f"{_where(spec, spec.url)}: climate source needs a period")
        years = range(spec.period[0], spec.period[1] + 1)
        names = climate_variables(spec)
        raw: dict[str, np.ndarray] = {}
        units: dict[str, str] = {}
        template: NcWindow | None = None
        url_for = self._url_for(spec)
        file_vars = list(names.values())
        prefetched = prefetch_small(
            sorted({url_for(v, y)[0] for v in file_vars for y in years}), storage_options
        )
        for key, (_, default_units) in self.variables.items():
            var = names[key]
            values, tpl = _stack_years(
                spec, bounds, storage_options, var, years, url_for, prefetched
            )
            if template is not None and tpl.values.shape[1:] != template.values.shape[1:]:
                raise GridMismatchError(f"{_where(spec, spec.url)}: {var!r} is on another grid")
            template = tpl
            where = _where(spec, url_for(var, years[0])[0])
            units[key] = native_units("", tpl.attrs.get("units"), where) or default_units
            raw[key] = values
        assert template is not None
        out = self._combine(raw, units, _where(spec, spec.url), years)
        time = np.array(
            [np.datetime64(f"{y}-{m:02d}-01") for y in years for m in range(1, 13)],
            dtype="datetime64[ns]",
        )
        coords = {"time": time, "latitude": template.latitude, "longitude": template.longitude}
        cube_units = {"tmp": "degC", "prec": "mm/month", "pet": "mm/month"}
        return xr.Dataset(
            {
                k: xr.DataArray(
                    v,
                    dims=("time", "latitude", "longitude"),
                    coords=coords,
                    attrs={
                        "units": cube_units[k],
                        "source": spec.name,
                        "source_version": spec.version,
                    },
                )
                for k, v in out.items()
            }
        )


class TerraClimateAdapter(_ClimateAdapter):
    """TerraClimate ``TerraClimate_{var}_{year}.nc``: T = (tmax + tmin)/2, ppt, pet (mm/month)."""

    variables = {
        "tmax": ("tmax", "degC"),
        "tmin": ("tmin", "degC"),
        "prec": ("ppt", "mm/month"),
        "pet": ("pet", "mm/month"),
    }

    def _url_for(self, spec: SourceSpec) -> Any:
        return lambda var, year: (spec.format_url(var=var, year=year), None)

    def _combine(
        self, raw: dict[str, np.ndarray], units: dict[str, str], where: str, years: range
    ) -> dict[str, np.ndarray]:
        tmax = convert(raw["tmax"], units["tmax"], "degC", where)
        tmin = convert(raw["tmin"], units["tmin"], "degC", where)
        return {
            "tmp": 0.5 * (tmax + tmin),
            "prec": convert(raw["prec"], units["prec"], "mm/month", where),
            "pet": convert(raw["pet"], units["pet"], "mm/month", where),
        }


class CruTsAdapter(_ClimateAdapter):
    """CRU TS decade files ``cru_ts4.xx.{first}.{last}.{var}.dat.nc``: tmp, pre, pet (mm/day).

    PET in mm/day is multiplied by the calendar length of each month (the FAO scripts use a fixed
    30 days; the difference is at most 3 %).
    """

    variables = {"tmp": ("tmp", "degC"), "prec": ("pre", "mm/month"), "pet": ("pet", "mm/day")}

    def _url_for(self, spec: SourceSpec) -> Any:
        def url_for(var: str, year: int) -> tuple[str, int]:
            first = (year - 1) // 10 * 10 + 1
            return spec.format_url(var=var, first=first, last=first + 9), year

        return url_for

    def _combine(
        self, raw: dict[str, np.ndarray], units: dict[str, str], where: str, years: range
    ) -> dict[str, np.ndarray]:
        days = _month_lengths(years)[:, None, None]
        return {
            "tmp": convert(raw["tmp"], units["tmp"], "degC", where),
            "prec": convert(raw["prec"], units["prec"], "mm/month", where),
            "pet": convert(raw["pet"], units["pet"], "mm/month", where, days_in_month=days),
        }


class CoverMonthlyAdapter:
    """Twelve monthly GeoTIFFs of the vegetated share → ``cover`` (month, lat, lon), 0-1."""

    def read(
        self, spec: SourceSpec, bounds: Bounds, storage_options: Mapping[str, Any] | None = None
    ) -> xr.Dataset:
        """Read months 1…12 (``{month}`` in the URL template); % is converted to a share."""
        parts: list[np.ndarray] = []
        first: xr.DataArray | None = None
        units = ""
        for month in range(1, 13):
            da, units, share, where = _read_converted(
                spec, spec.format_url(month=month), bounds, storage_options, "1", "1"
            )
            finite = share[np.isfinite(share)]
            if finite.size and (finite.min() < 0.0 or finite.max() > 1.0):
                raise InputValidationError(
                    f"{where}: vegetation cover {finite.min():.4g}…{finite.max():.4g} outside 0-1 "
                    "(declare units = '%' for percentages)"
                )
            if first is None:
                first = da
            elif da.shape != first.shape:
                raise GridMismatchError(f"{where}: month {month} is on another grid")
            parts.append(share)
        assert first is not None
        da = xr.DataArray(
            np.stack(parts),
            dims=("month", "latitude", "longitude"),
            coords={
                "month": np.arange(1, 13),
                "latitude": first.latitude,
                "longitude": first.longitude,
            },
        )
        return _ds("cover", da, spec, "1", native_units=units)


#: Adapter per :attr:`SourceSpec.kind` (boundaries are vector: :mod:`gsocseq.sources.boundaries`).
ADAPTERS: dict[str, SourceAdapter] = {
    "gsocmap": GsocmapAdapter(),
    "gsocmap_uncertainty": SocUncertaintyAdapter(),
    "soilgrids": SoilGridsAdapter(),
    "esa_cci": EsaCciAdapter(),
    "terraclimate": TerraClimateAdapter(),
    "cru_ts": CruTsAdapter(),
    "cover_monthly": CoverMonthlyAdapter(),
    "stac": StacAdapter(),
}


def climate_variables(spec: SourceSpec) -> dict[str, str]:
    """Return ``{key: variable in the file}`` of a climate source (``layers`` rename them in order)."""
    adapter = ADAPTERS[spec.kind]
    variables: dict[str, tuple[str, str]] = getattr(adapter, "variables", {})
    if not variables:
        raise InputValidationError(f"source {spec.name!r}: kind {spec.kind!r} is not climate")
    names = dict(zip(variables, spec.layers, strict=False)) if spec.layers else {}
    return {k: names.get(k, v[0]) for k, v in variables.items()}


def read_source(
    spec: SourceSpec, bounds: Bounds, storage_options: Mapping[str, Any] | None = None
) -> xr.Dataset:
    """Read and normalise the window of ``spec`` covering ``bounds`` with its kind's adapter."""
    try:
        adapter = ADAPTERS[spec.kind]
    except KeyError:
        raise InputValidationError(
            f"source {spec.name!r}: kind {spec.kind!r} has no raster adapter"
        ) from None
    so = options_for(spec, storage_options)
    return call_with_retries(lambda: adapter.read(spec, bounds, so),
                             what=f"source {spec.name!r} at {spec.url}", attempts=SOURCE_ATTEMPTS)
