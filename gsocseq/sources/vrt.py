"""GDAL VRT mosaics (SoilGrids: one VRT over thousands of GeoTIFF sub-tiles): their member files.

Owns :func:`parse_vrt` (every member's URL and placement; the cube's source fingerprints key them)
and :func:`failing_members` (which members under a window cannot be read, so that a failed read
names the sub-tile, not only the VRT: GDAL's own error names the VRT).
"""

from __future__ import annotations

import posixpath
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gsocseq.storage import error_text, filesystem

__all__ = ["Member", "failing_members", "parse_vrt"]


@dataclass(frozen=True)
class Member:
    """One source of a VRT band: its URL (``None``: a GDAL path no store can read) and placement."""

    name: str
    """``SourceFilename`` as written in the VRT."""
    url: str | None
    """The member's URL (relative names resolved against the VRT)."""
    dst: tuple[float, float, float, float] | None
    """``DstRect`` (x offset, y offset, width, height) in the VRT's pixels, if given."""


def parse_vrt(text: str | bytes, url: str) -> list[Member]:
    """Return the members of the VRT document ``text`` found at ``url`` (each file once per rect).

    Members relative to the VRT are resolved against it, absolute URLs (and ``/vsicurl/`` ones)
    kept; other GDAL ``/vsi…`` paths and local paths get ``url=None``.
    """
    base = url.rsplit("/", 1)[0]
    out: list[Member] = []
    for source in ET.fromstring(text).iter():
        node = source.find("SourceFilename")
        if node is None or not (node.text or "").strip():
            continue
        name = (node.text or "").strip()
        if node.get("relativeToVRT") == "1":
            member: str | None = f"{base}/{posixpath.normpath(name)}"
        elif name.startswith("/vsicurl/") and "://" in name:
            member = name.removeprefix("/vsicurl/")
        elif "://" in name and not name.startswith("/vsi"):
            member = name
        else:
            member = None
        rect = source.find("DstRect")
        dst = None if rect is None else tuple(
            float(rect.get(k, "0")) for k in ("xOff", "yOff", "xSize", "ySize"))
        out.append(Member(name, member, dst))  # type: ignore[arg-type]
    return out


def failing_members(
    url: str, window: tuple[float, float, float, float] | None,
    storage_options: Mapping[str, Any] | None = None, *, limit: int = 8,
) -> list[str]:
    """Return ``"<member URL>: <error>"`` for members of the VRT at ``url`` that cannot be read.

    Only members whose ``DstRect`` meets ``window`` (column offset, row offset, width, height in
    the VRT's pixels; ``None``: every member) are tried, at most ``limit`` of them: the first
    byte read through fsspec (GDAL may answer a member it read before from its cache, even after
    :func:`~gsocseq.gdal_paths.clear_http_cache`), then opened and one pixel read through GDAL.
    Called after a VRT read failed, to name the sub-tile; an unreadable VRT document gives none.
    """
    from rasterio.windows import Window

    from gsocseq.gdal_paths import clear_http_cache, gdal_env, gdal_source, open_raster

    fs, path = filesystem(url, storage_options)
    try:
        members = parse_vrt(fs.cat_file(path), url)
    except Exception:  # noqa: BLE001 — the VRT itself failed: the caller's message says so
        return []
    hits = [m for m in members if m.url is not None and (
        window is None or m.dst is None or _meets(m.dst, window))]
    clear_http_cache()
    bad = []
    for member in hits[:limit]:
        source = gdal_source(str(member.url), storage_options)
        try:  # its first byte through fsspec (no GDAL cache in between), then GDAL's open
            member_fs, member_path = filesystem(str(member.url), storage_options)
            member_fs.cat_file(member_path, start=0, end=1)
            with gdal_env(source), open_raster(source) as src:
                src.read(1, window=Window(0, 0, 1, 1))
        except Exception as exc:  # noqa: BLE001 — each failure is reported, none raised
            bad.append(f"{member.url}: {error_text(exc)}")
    return bad


def _meets(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    """Whether two (x, y, width, height) rectangles overlap."""
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]
