"""TIFF structure without pixels: read a tiled TIFF's directories, write a COG from encoded tiles.

Owns the byte layout of a (Big)TIFF: :func:`read_ifds` parses the image file directories (tags,
tile offsets and byte counts) of a little-endian classic or BigTIFF file; :func:`write_tiled_tiff`
writes directories first (main image, then overviews by decreasing size), then the tiles'
already-encoded bytes — smallest overview first, the full resolution last, each level in row-major
block order: the layout of a Cloud-Optimised GeoTIFF. No tile is decoded or encoded here.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from gsocseq.errors import ProductValidationError

IMAGE_WIDTH: int = 256
IMAGE_LENGTH: int = 257
TILE_WIDTH: int = 322
TILE_LENGTH: int = 323
TILE_OFFSETS: int = 324
TILE_BYTE_COUNTS: int = 325
_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8,
              13: 4, 16: 8, 17: 8, 18: 8}
_INT_FORMAT = {3: "H", 4: "I", 16: "Q", 8: "h", 9: "i", 17: "q"}
_SHORT, _LONG, _LONG8 = 3, 4, 16
_CLASSIC_LIMIT = 2**32 - 2**20
"""Largest classic-TIFF file written (offsets are 32-bit); a larger one is a BigTIFF."""


@dataclass(frozen=True)
class Ifd:
    """One image file directory: tag → (TIFF type, count, raw little-endian value bytes)."""

    entries: dict[int, tuple[int, int, bytes]] = field(default_factory=dict)

    def ints(self, tag: int) -> tuple[int, ...]:
        """Return the integer values of ``tag`` (SHORT, LONG or LONG8)."""
        typ, count, raw = self.entries[tag]
        return struct.unpack(f"<{count}{_INT_FORMAT[typ]}", raw)

    def tiles(self) -> list[tuple[int, int]]:
        """Return (offset, byte count) of every tile, in the file's block order (bytes)."""
        return list(zip(self.ints(TILE_OFFSETS), self.ints(TILE_BYTE_COUNTS), strict=True))

    def n_tiles(self) -> int:
        """Return the number of tiles of the image the directory describes."""
        (cols,), (rows,) = self.ints(IMAGE_WIDTH), self.ints(IMAGE_LENGTH)
        (tw,), (th,) = self.ints(TILE_WIDTH), self.ints(TILE_LENGTH)
        return -(-rows // th) * -(-cols // tw)

    def with_length(self, rows: int) -> Ifd:
        """Return this directory describing an image of ``rows`` rows (ImageLength replaced)."""
        return Ifd({**self.entries, IMAGE_LENGTH: (_LONG, 1, struct.pack("<I", rows))})


def read_ifds(f: BinaryIO, where: str = "file") -> list[Ifd]:
    """Return every directory of the little-endian (Big)TIFF open in ``f``, in file order."""
    head = f.read(16)
    if head[:2] != b"II" or struct.unpack("<H", head[2:4])[0] not in (42, 43):
        raise ProductValidationError(f"{where}: not a little-endian TIFF (header {head[:4]!r})")
    big = struct.unpack("<H", head[2:4])[0] == 43
    offset = struct.unpack("<Q", head[8:16])[0] if big else struct.unpack("<I", head[4:8])[0]
    count_fmt, entry_fmt, next_fmt = ("<Q", "<HHQ8s", "<Q") if big else ("<H", "<HHI4s", "<I")
    inline = 8 if big else 4
    ifds = []
    while offset:
        f.seek(offset)
        n = struct.unpack(count_fmt, f.read(struct.calcsize(count_fmt)))[0]
        size = struct.calcsize(entry_fmt)
        raw_entries = [struct.unpack(entry_fmt, f.read(size)) for _ in range(n)]
        offset = struct.unpack(next_fmt, f.read(struct.calcsize(next_fmt)))[0]
        entries = {}
        for tag, typ, count, value in raw_entries:
            nbytes = _TYPE_SIZE[typ] * count
            if nbytes <= inline:
                data = value[:nbytes]
            else:
                here = f.tell()
                f.seek(struct.unpack("<Q" if big else "<I", value)[0])
                data = f.read(nbytes)
                f.seek(here)
            entries[tag] = (typ, count, data)
        ifds.append(Ifd(entries))
    return ifds


@dataclass(frozen=True)
class TileRun:
    """Encoded tiles of one level stored contiguously or not in a local file: where to copy from."""

    path: Path
    """Local file holding the tiles."""
    tiles: tuple[tuple[int, int], ...]
    """(offset, byte count) of each tile in that file, block order (byte count 0: sparse tile)."""


def write_tiled_tiff(path: Path, ifds: Sequence[Ifd], levels: Sequence[Sequence[TileRun]]) -> None:
    """Write a COG-layout TIFF at ``path``: ``ifds`` (main image first) with the tiles of ``levels``.

    ``levels[i]`` lists, in block order, the runs of encoded tiles of directory ``i``; the
    directories' own tile offsets and byte counts are replaced by where the tiles land. A file
    whose offsets need more than 32 bits is written as a BigTIFF.
    """
    counts = [[n for run in level for _, n in run.tiles] for level in levels]
    for i, (ifd, cs) in enumerate(zip(ifds, counts, strict=True)):
        if ifd.n_tiles() != len(cs):
            raise ProductValidationError(
                f"directory {i}: {len(cs)} tiles given, the image has {ifd.n_tiles()}")
    data_bytes = sum(sum(cs) for cs in counts)
    big = data_bytes + _header_size(ifds, counts, big=False) > _CLASSIC_LIMIT
    header = _header_size(ifds, counts, big)
    offsets: list[list[int]] = [[] for _ in ifds]
    pos = header
    for i in reversed(range(len(ifds))):  # smallest overview first, full resolution last
        for n in counts[i]:
            offsets[i].append(pos if n else 0)
            pos += n
    with open(path, "wb") as out:
        out.write(_header_bytes(ifds, counts, offsets, big))
        assert out.tell() == header
        for i in reversed(range(len(ifds))):
            _copy_runs(levels[i], out)


def _tile_entries(ifd: Ifd, counts: list[int], offsets: list[int], big: bool
                  ) -> dict[int, tuple[int, int, bytes]]:
    typ, fmt = (_LONG8, "Q") if big else (_LONG, "I")
    n = len(counts)
    return {**ifd.entries, TILE_OFFSETS: (typ, n, struct.pack(f"<{n}{fmt}", *offsets)),
            TILE_BYTE_COUNTS: (typ, n, struct.pack(f"<{n}{fmt}", *counts))}


def _header_size(ifds: Sequence[Ifd], counts: list[list[int]], big: bool) -> int:
    zeros = [[0] * len(cs) for cs in counts]
    return len(_header_bytes(ifds, counts, zeros, big))


def _header_bytes(ifds: Sequence[Ifd], counts: list[list[int]], offsets: list[list[int]],
                  big: bool) -> bytes:
    """Return the file header and every directory with its out-of-line values, IFD after IFD."""
    inline = 8 if big else 4
    buf = bytearray(b"II" + (struct.pack("<HHHQ", 43, 8, 0, 16) if big else struct.pack("<HI", 42, 8)))
    for i, ifd in enumerate(ifds):
        entries = sorted(_tile_entries(ifd, counts[i], offsets[i], big).items())
        start = len(buf)
        ifd_size = (8 + 20 * len(entries) + 8) if big else (2 + 12 * len(entries) + 4)
        extra = bytearray()
        body = bytearray(struct.pack("<Q" if big else "<H", len(entries)))
        for tag, (typ, count, raw) in entries:
            if len(raw) <= inline:
                value = raw.ljust(inline, b"\0")
            else:
                where = start + ifd_size + len(extra)
                value = struct.pack("<Q" if big else "<I", where)
                extra += raw + (b"\0" if len(raw) % 2 else b"")
            body += struct.pack("<HHQ" if big else "<HHI", tag, typ, count) + value
        last = i == len(ifds) - 1
        following = 0 if last else start + ifd_size + len(extra)
        body += struct.pack("<Q" if big else "<I", following)
        buf += body + extra
    return bytes(buf)


def _copy_runs(runs: Iterable[TileRun], out: BinaryIO) -> None:
    """Append the tiles of ``runs`` to ``out``, one tile in memory at a time."""
    for run in runs:
        with open(run.path, "rb") as src:
            for offset, n in run.tiles:
                if n:
                    src.seek(offset)
                    out.write(src.read(n))
