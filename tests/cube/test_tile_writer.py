"""The cleanup of chunk writes a killed process cut: zarr LocalStore's temporary files, nothing else.

A real zarr v3 ``LocalStore`` array; the temporary files are named as zarr's own atomic write
names them (``<key>.<32 hex>.partial``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import zarr

from gsocseq.cube.tile_writer import remove_partial_writes


def test_remove_partial_writes_deletes_only_a_killed_writes_temporary_files(tmp_path: Any) -> None:
    root = tmp_path / "cube.zarr"
    array = zarr.create_array(zarr.storage.LocalStore(root), name="T0", shape=(4, 4),
                              chunks=(2, 2), dtype="f4")
    array[...] = np.arange(16, dtype="f4").reshape(4, 4)
    chunk_dir = root / "T0" / "c" / "0"
    left = [chunk_dir / f"1.{'ab' * 16}.partial", root / f"zarr.{'0f' * 16}.partial"]
    for path in left:  # what zarr's LocalStore leaves when a write is cut before its rename
        path.write_bytes(b"half a chunk")
    kept = chunk_dir / "notes.partial"  # not zarr's temporary-file name
    kept.write_bytes(b"x")
    removed = remove_partial_writes(f"file://{root}")
    assert sorted(removed) == sorted(str(p) for p in left)
    assert not any(p.exists() for p in left) and kept.exists()
    np.testing.assert_array_equal(zarr.open_array(zarr.storage.LocalStore(root / "T0"))[...],
                                  np.arange(16, dtype="f4").reshape(4, 4))
    assert remove_partial_writes("s3://bucket/cube.zarr") == []  # object stores: atomic PUTs
