"""Tile writes into a zarr v3 cube whose chunks are tiles: the group opened once per process.

Owns :func:`write_tile_chunks`, used by the input cube's build and the product cube: the group's
attributes and every array's metadata are read once per process and URL, reopened when the root
``zarr.json`` changes (:class:`RootCache`, also the product cube's cache for reading), and one
tile's chunks of all the given arrays are encoded and stored in one pass (at most zarr's
``async.concurrency`` in flight).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import numpy as np
import zarr
from zarr.core.sync import sync

from gsocseq.cube.grid import TileKey
from gsocseq.errors import StorageError
from gsocseq.storage import filesystem

T = TypeVar("T")


def zarr_store(url: str, storage_options: Mapping[str, Any] | None = None, *,
               read_only: bool = False) -> zarr.abc.store.Store:
    """Return a zarr store for a URL: a ``LocalStore`` for ``file://``, else an ``FsspecStore``."""
    if url.startswith("file://"):
        return zarr.storage.LocalStore(url.removeprefix("file://"), read_only=read_only)
    return zarr.storage.FsspecStore.from_url(
        url, storage_options=dict(storage_options or {}), read_only=read_only
    )


class TileWriter:
    """A cube opened for writing: its tile origin and array metadata, read once."""

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None, token: bytes) -> None:
        self.url = url
        self.token = token
        """The root ``zarr.json`` bytes it was opened with (a recreated cube is reopened)."""
        group = zarr.open_group(zarr_store(url, storage_options), mode="r+", zarr_format=3)
        self.origin = int(group.attrs["origin_row"]), int(group.attrs["origin_col"])
        """Global (row, col) of the cube's cell [0, 0]."""
        self.arrays = dict(group.arrays())  # all array metadata fetched concurrently


class RootCache(Generic[T]):
    """Objects opened from zarr groups, kept per process, URL and storage options.

    Each :meth:`get` reads the group's root ``zarr.json`` (one small read) and reopens when its
    bytes changed: the root's attributes (region, grid, configuration) determine every array's
    metadata, so a recreated group is never served from a stale open. At most ``size`` objects
    are kept, the oldest dropped first (0: opened on every call).
    """

    def __init__(self, opener: Callable[[str, Mapping[str, Any] | None, bytes], T], size: int,
                 what: str) -> None:
        self.opener = opener
        """``opener(url, storage_options, root_bytes)`` opens one group."""
        self.size = size
        """Objects kept (0: none)."""
        self.what = what
        """What is opened, for error messages (e.g. ``"cube for writing"``)."""
        self._items: dict[tuple[str, str], tuple[bytes, T]] = {}
        self._lock = threading.Lock()

    def get(self, url: str, storage_options: Mapping[str, Any] | None = None) -> T:
        """Return the object opened from the group at ``url``, reused while its root is unchanged."""
        fs, path = filesystem(url, storage_options)
        try:
            token = bytes(fs.cat_file(path.rstrip("/") + "/zarr.json"))
        except (FileNotFoundError, OSError) as exc:
            raise StorageError(f"{self.what} {url}: cannot open: no zarr.json ({exc})") from exc
        key = (url, json.dumps(dict(storage_options or {}), sort_keys=True, default=str))
        hit = self._items.get(key)
        if hit is not None and hit[0] == token:
            return hit[1]
        opened = self.opener(url, storage_options, token)
        if self.size > 0:
            with self._lock:
                self._items.pop(key, None)
                self._items[key] = (token, opened)
                while len(self._items) > self.size:  # oldest first
                    del self._items[next(iter(self._items))]
        return opened

    def clear(self) -> None:
        """Forget every object opened in this process."""
        with self._lock:
            self._items.clear()


CACHE_SIZE: int = 8
"""Cubes kept open for writing per process (0: opened for every tile)."""
_WRITERS: RootCache[TileWriter] = RootCache(TileWriter, CACHE_SIZE, "cube for writing")


def tile_writer(url: str, storage_options: Mapping[str, Any] | None = None) -> TileWriter:
    """Return the cube at ``url`` opened for writing, once per process while its root is unchanged.

    Each call reads the root ``zarr.json`` (one small read): a recreated cube is reopened
    (:class:`RootCache`).
    """
    return _WRITERS.get(url, storage_options)


def write_tile_chunks(
    url: str, tile: TileKey, data: Mapping[str, np.ndarray],
    storage_options: Mapping[str, Any] | None = None, *, what: str = "cube",
) -> TileWriter:
    """Store ``data[name]`` as the tile's region of each array ``name`` in one pass; return the writer.

    Values are written as given (dtype of the array; leading dims ``(size, size)``). A failed
    write raises :class:`StorageError` naming ``what``, the URL, the chunk key and the tile.
    """
    writer = tile_writer(url, storage_options)
    rows, cols = tile.to_slices(*writer.origin)
    i, j = tile.chunk_index(*writer.origin)

    async def put(name: str) -> None:
        try:
            await writer.arrays[name].async_array.setitem((rows, cols), data[name])
        except Exception as exc:  # name the object that could not be written
            raise StorageError(
                f"{what} {url}: cannot write chunk {name}/c/{i}/{j} of tile {tile.id}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    async def put_all() -> None:
        await asyncio.gather(*(put(name) for name in data))

    sync(put_all())
    return writer
