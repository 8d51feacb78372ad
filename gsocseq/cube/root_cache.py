"""Objects opened from zarr groups, kept per process and reopened when the group's root changes.

Owns :class:`RootCache`: the input cube for reading (:func:`gsocseq.cube.store.cached_cube`), cubes
for writing tiles (:mod:`gsocseq.cube.tile_writer`) and the product cube for publishing
(:mod:`gsocseq.cube.product_cube`) are each opened once per process and URL.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from gsocseq.errors import StorageError
from gsocseq.storage import error_text, read_bytes

T = TypeVar("T")


class RootCache(Generic[T]):
    """Objects opened from zarr groups, kept per process, URL and storage options.

    Each :meth:`get` reads the group's root ``zarr.json`` (one small read) and reopens when its
    bytes changed: the root's attributes (region, grid, configuration) determine every array's
    metadata, so a recreated group is never served from a stale open. At most ``size`` objects
    are kept, the oldest dropped first (0: opened on every call).
    """

    def __init__(self, opener: Callable[[str, Mapping[str, Any] | None, bytes], T], size: int,
                 what: str, error: type[Exception] = StorageError) -> None:
        self.opener = opener
        """``opener(url, storage_options, root_bytes)`` opens one group."""
        self.size = size
        """Objects kept (0: none)."""
        self.what = what
        """What is opened, for error messages (e.g. ``"cube for writing"``)."""
        self.error = error
        """The exception raised when the group has no root ``zarr.json``."""
        self._items: dict[tuple[str, str], tuple[bytes, T]] = {}
        self._lock = threading.Lock()

    def get(self, url: str, storage_options: Mapping[str, Any] | None = None) -> T:
        """Return the object opened from the group at ``url``, reused while its root is unchanged."""
        root = url.rstrip("/") + "/zarr.json"
        try:
            token = read_bytes(root, storage_options)  # one GET on S3
        except OSError as exc:
            raise self.error(f"{self.what} {url}: cannot open: {error_text(exc)}") from exc
        if token is None:
            raise self.error(f"{self.what} {url}: cannot open: no zarr.json at {root}")
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
