"""Tile writes into a zarr v3 cube whose chunks are tiles: the group opened once per process.

Owns :func:`write_tile_chunks`, used by the input cube's build and the product cube (and the
cleanup of a killed write's temporary files, :func:`remove_partial_writes`): the group's
attributes and every array's metadata are read once per process and URL, reopened when the root
``zarr.json`` changes (:class:`gsocseq.cube.root_cache.RootCache`), and one
tile's chunks of all the given arrays are encoded and stored in one pass (at most zarr's
``async.concurrency`` in flight).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.core.sync import sync

from gsocseq.cube.grid import TileKey
from gsocseq.cube.root_cache import RootCache
from gsocseq.errors import StorageError
from gsocseq.storage import error_text, s3_client, small_object_options


def zarr_store(url: str, storage_options: Mapping[str, Any] | None = None, *,
               read_only: bool = False) -> zarr.abc.store.Store:
    """Return a zarr store for a URL: ``LocalStore`` (``file://``), ``ObjectStore`` or ``FsspecStore``.

    ``s3://`` through obstore where the options carry over (:func:`gsocseq.storage.s3_client`:
    a third to a half of s3fs's CPU per chunk), else fsspec with
    :func:`~gsocseq.storage.small_object_options` (on S3 one GET per object, no HEAD).
    """
    if url.startswith("file://"):
        return zarr.storage.LocalStore(url.removeprefix("file://"), read_only=read_only)
    if url.startswith(("s3://", "s3a://")):
        client = s3_client(url, storage_options)
        if client is not None:
            return zarr.storage.ObjectStore(client, read_only=read_only)
    return zarr.storage.FsspecStore.from_url(
        url, storage_options=small_object_options(url, storage_options), read_only=read_only
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
                f"{error_text(exc)}"
            ) from exc

    async def put_all() -> None:
        await asyncio.gather(*(put(name) for name in data))

    sync(put_all())
    return writer


#: The temporary file of a chunk write in zarr's ``LocalStore``: ``<key>.<32 hex>.partial``.
_PARTIAL = re.compile(r"\.[0-9a-f]{32}\.partial$")


def remove_partial_writes(url: str) -> list[str]:
    """Delete the temporary files of chunk writes that a killed process left in a local store.

    zarr's ``LocalStore`` writes each chunk to ``<key>.<32 hex>.partial`` and renames it into place
    when complete, so a SIGKILL between the two leaves the temporary file behind (never read: the
    chunk keeps its previous bytes or stays missing). Only ``file://`` stores have them (an object
    store's PUT is atomic). Call it only where no other process writes the store (the product
    cube at publication, under the run's lease). Returns the removed paths.
    """
    if not url.startswith("file://"):
        return []
    removed = []
    for folder, _, names in os.walk(url.removeprefix("file://")):
        for name in names:
            if _PARTIAL.search(name):
                path = Path(folder) / name
                path.unlink(missing_ok=True)
                removed.append(str(path))
    return removed
