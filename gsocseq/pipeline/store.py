"""Small fsspec helpers for the run's JSON documents (markers, manifests): atomic write, read, list.

A JSON document is written to a temporary key and then moved, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from fsspec.core import url_to_fs


def filesystem(url: str, storage_options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """Return ``(fs, path)`` for a URL and fsspec storage options."""
    return url_to_fs(url, **(storage_options or {}))


def dumps(doc: dict[str, Any]) -> bytes:
    """Serialise a JSON document deterministically (sorted keys, two-space indent, UTF-8)."""
    return (json.dumps(doc, sort_keys=True, indent=2) + "\n").encode()


def write_json(url: str, doc: dict[str, Any], storage_options: dict[str, Any] | None = None) -> None:
    """Write ``doc`` to ``url`` through a temporary key, then move it into place."""
    fs, path = filesystem(url, storage_options)
    parent = path.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    tmp = f"{parent}/.tmp-{uuid.uuid4().hex}"
    with fs.open(tmp, "wb") as fh:
        fh.write(dumps(doc))
    fs.mv(tmp, path)


def write_json_if_changed(
    url: str, doc: dict[str, Any], storage_options: dict[str, Any] | None = None
) -> bool:
    """Write ``doc`` unless ``url`` already holds the same bytes; return whether it wrote."""
    if read_bytes(url, storage_options) == dumps(doc):
        return False
    write_json(url, doc, storage_options)
    return True


def read_bytes(url: str, storage_options: dict[str, Any] | None = None) -> bytes | None:
    """Return the bytes at ``url``, or ``None`` if there is no such object."""
    fs, path = filesystem(url, storage_options)
    fs.invalidate_cache(path)  # other processes write markers: never trust a cached listing
    try:
        return bytes(fs.cat_file(path))
    except FileNotFoundError:
        return None


def read_json(url: str, storage_options: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Return the JSON document at ``url``, or ``None`` if it does not exist."""
    data = read_bytes(url, storage_options)
    return None if data is None else json.loads(data)


def exists(url: str, storage_options: dict[str, Any] | None = None) -> bool:
    """Return whether an object or directory exists at ``url``."""
    fs, path = filesystem(url, storage_options)
    fs.invalidate_cache(path)
    return bool(fs.exists(path))


def list_names(url: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """Return the sorted base names of the objects directly under ``url`` (empty if none)."""
    fs, path = filesystem(url, storage_options)
    try:
        entries = fs.ls(path, detail=False, refresh=True)
    except FileNotFoundError:
        return []
    return sorted(e.rstrip("/").rsplit("/", 1)[-1] for e in entries)


def remove_temporaries(url: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """Delete the temporary objects (``*.tmp-*``) directly under ``url``; return their names.

    A writer killed between its upload and its move leaves one behind. Call this only where no
    other writer is active (e.g. at publication, when every tile is finished).
    """
    fs, path = filesystem(url, storage_options)
    names = [n for n in list_names(url, storage_options) if ".tmp-" in n]
    for name in names:
        fs.rm_file(f"{path}/{name}")
    return names
