"""Leases and exclusive creation (:mod:`gsocseq.lease`) on ``file://``, ``memory://`` and real S3.

S3 is the session's moto server process (conditional ``PutObject`` with ``If-None-Match: *``).
Holders are threads of this process (each :class:`Lease` has its own id) and, for the killed-holder
cases, real child processes killed with SIGKILL. A holder "on another host" is a lease document
written with another host name: no second machine here, so that is the one thing simulated.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
import zarr

from gsocseq.cube.product_cube import create_product_cube, open_product_cube
from gsocseq.errors import LeaseError
from gsocseq.lease import Holder, Lease, commit_store, create_exclusive, held, read_or_none
from gsocseq.vocabulary import LAYER_NAMES, QUALITY_LAYERS


@pytest.fixture(params=["file", "memory", "s3"])
def base(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """A fresh prefix on each kind of store, with its storage options."""
    if request.param == "file":
        yield f"file://{tmp_path}", {}
    elif request.param == "memory":
        yield f"memory://lease-{uuid.uuid4().hex}", {}
    else:
        s3 = request.getfixturevalue("s3_server")
        bucket = request.getfixturevalue("s3_bucket")
        yield bucket, dict(s3.storage_options)


def _race(n: int, fn: Any) -> list[Any]:
    """Run ``fn(i)`` in ``n`` threads released together; return their results in order."""
    barrier = threading.Barrier(n)
    out: list[Any] = [None] * n

    def go(i: int) -> None:
        barrier.wait()
        out[i] = fn(i)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return out


def test_create_exclusive_has_one_winner_and_keeps_its_bytes(base: tuple[str, dict[str, Any]]
                                                             ) -> None:
    url, so = base
    key = f"{url}/x/key.bin"
    won = _race(8, lambda i: create_exclusive(key, f"writer {i}".encode(), so))
    assert sum(won) == 1
    assert read_or_none(key, so) == f"writer {won.index(True)}".encode()
    assert create_exclusive(key, b"late", so) is False
    assert read_or_none(key, so) == f"writer {won.index(True)}".encode()


def _product_cube(url: str, so: dict[str, Any]) -> bool:
    return create_product_cube(url, origin_row=0, origin_col=0, n_rows=8, n_cols=12, tile_size=4,
                               attrs={"region": "t"}, storage_options=so)


def test_concurrent_store_creation_ends_in_one_store_never_seen_half_created(
    base: tuple[str, dict[str, Any]]
) -> None:
    """Four creators race; a reader polling all along sees no store or the whole store."""
    url, so = base
    cube = f"{url}/product.zarr"
    stop = threading.Event()
    seen: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            if read_or_none(f"{cube}/zarr.json", so) is None:
                time.sleep(0.005)
                continue
            ds = open_product_cube(cube, so)  # raises if any array were missing
            seen.append(f"{len(ds.data_vars)} vars")

    watcher = threading.Thread(target=reader)
    watcher.start()
    try:
        created = _race(4, lambda i: _product_cube(cube, so))
    finally:
        time.sleep(0.2)
        stop.set()
        watcher.join(timeout=60)
    assert sum(created) == 1
    assert seen and set(seen) == {f"{len(LAYER_NAMES) + len(QUALITY_LAYERS) + 1} vars"}
    group = zarr.open_group(cube.removeprefix("file://") if cube.startswith("file://") else
                            zarr.storage.FsspecStore.from_url(cube, storage_options=so,
                                                              read_only=True),
                            mode="r", zarr_format=3)
    assert group["latitude"].shape == (8,) and group["reason"].shape == (8, 12)


def test_commit_store_keeps_what_a_killed_creator_wrote_and_never_overwrites(
    base: tuple[str, dict[str, Any]]
) -> None:
    url, so = base
    items: dict[str, Any] = {}
    xr.Dataset({"a": (("x",), np.arange(3.0))}).to_zarr(
        zarr.storage.MemoryStore(items), mode="w", zarr_format=3, consolidated=False)
    data = {k: v.to_bytes() for k, v in items.items()}
    store = f"{url}/s.zarr"
    create_exclusive(f"{store}/a/zarr.json", data["a/zarr.json"], so)  # a creator died here
    assert commit_store(data, store, so) is True
    assert commit_store({**data, "zarr.json": b"{}"}, store, so) is False
    assert read_or_none(f"{store}/zarr.json", so) == data["zarr.json"]
    got = xr.open_zarr(store.removeprefix("file://") if store.startswith("file://") else store,
                       storage_options=None if store.startswith("file://") else so,
                       zarr_format=3, consolidated=False)
    assert got["a"].values.tolist() == [0.0, 1.0, 2.0]


def test_lease_is_mutually_exclusive_and_loses_no_update(base: tuple[str, dict[str, Any]]) -> None:
    """Three holders increment a shared counter non-atomically under the lease: nothing is lost."""
    url, so = base
    lease_url = f"{url}/leases/region"
    state = {"count": 0, "inside": 0, "max_inside": 0}

    def work(i: int) -> int:
        for _ in range(3):
            with held(Lease(lease_url, so, purpose=f"worker {i}", poll_s=0.1)):
                state["inside"] += 1
                state["max_inside"] = max(state["max_inside"], state["inside"])
                count = state["count"]
                time.sleep(0.01)
                state["count"] = count + 1
                state["inside"] -= 1
        return i

    _race(3, work)
    assert state == {"count": 9, "inside": 0, "max_inside": 1}
    lease = Lease(lease_url, so)
    current = lease.current()
    assert current is not None and current.released and current.generation == 9
    assert lease.generations() == [9]  # older documents are removed by each new holder


def test_live_holder_is_waited_for_and_named_then_released(base: tuple[str, dict[str, Any]]
                                                            ) -> None:
    url, so = base
    lease_url = f"{url}/leases/region"
    first = Lease(lease_url, so, purpose="gsocseq run DEM (config abc)", ttl_s=1.0).acquire()
    try:
        time.sleep(1.5)  # longer than the ttl: only the heartbeat keeps the lease alive
        with pytest.raises(LeaseError, match=r"held by gsocseq run DEM \(config abc\) \(pid "
                                             rf"{os.getpid()} on .*since .*gave up after"):
            Lease(lease_url, so, ttl_s=1.0, poll_s=0.1).acquire(timeout_s=2.5)
        with pytest.raises(LeaseError, match="held by gsocseq run DEM"):
            Lease(lease_url, so).acquire(wait=False)
        seen: list[Holder] = []
        second = Lease(lease_url, so, poll_s=0.1, on_wait=seen.append)
        threading.Timer(1.0, first.release).start()
        t0 = time.monotonic()
        second.acquire()
        assert 0.8 < time.monotonic() - t0 < 5.0
        assert [h.purpose for h in seen] == ["gsocseq run DEM (config abc)"]
        assert second.waited_for is not None and second.taken_over is None
        assert second.doc is not None and second.doc.generation == 2
        assert first.doc is None
        second.release()
    finally:
        first.release()


def _hold_in_child(lease_url: str, so: dict[str, Any], ready: Path) -> subprocess.Popen[bytes]:
    code = ("import json, sys, time, pathlib; from gsocseq.lease import Lease; "
            f"Lease({lease_url!r}, json.loads(sys.argv[1]), purpose='child run').acquire(); "
            f"pathlib.Path({str(ready)!r}).touch(); time.sleep(600)")
    return subprocess.Popen([sys.executable, "-c", code, json.dumps(so)], start_new_session=True)


@pytest.mark.parametrize("base", ["file", "s3"], indirect=True)  # memory:// is per process
def test_killed_holder_on_this_host_is_taken_over_at_once(base: tuple[str, dict[str, Any]],
                                                          tmp_path: Path) -> None:
    url, so = base
    lease_url = f"{url}/leases/region"
    ready = tmp_path / "ready"
    child = _hold_in_child(lease_url, so, ready)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        with pytest.raises(LeaseError, match=f"child run \\(pid {child.pid} "):
            Lease(lease_url, so).acquire(wait=False)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    t0 = time.monotonic()
    lease = Lease(lease_url, so).acquire()  # ttl 60 s: not waited for, the pid is gone
    try:
        assert time.monotonic() - t0 < 5.0
        assert lease.taken_over is not None and lease.taken_over.pid == child.pid
        assert lease.waited_for is None
    finally:
        lease.release()


def _foreign(lease_url: str, so: dict[str, Any], *, expires_in: float) -> None:
    now = time.time()
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
    doc = Holder(holder="x", purpose="run on another host", host="elsewhere.invalid", pid=1,
                 pid_started=0.0, pid_namespace="", acquired_at=iso(now - 30),
                 renewed_at=iso(now - 1), expires_at=iso(now + expires_in), ttl_s=2.0,
                 generation=7)
    assert create_exclusive(f"{lease_url}/{7:012d}.lease", doc.to_bytes(), so)


def test_holder_on_another_host_that_stopped_renewing_is_taken_over(
    base: tuple[str, dict[str, Any]]
) -> None:
    """Expired by the clock, or (clocks not trusted) seen unchanged for its whole ttl."""
    url, so = base
    _foreign(f"{url}/expired", so, expires_in=-5)
    lease = Lease(f"{url}/expired", so).acquire(wait=False)
    assert lease.taken_over is not None and lease.taken_over.host == "elsewhere.invalid"
    assert lease.doc is not None and lease.doc.generation == 8
    lease.release()

    _foreign(f"{url}/silent", so, expires_in=3600)  # a clock far ahead; the ttl is 2 s
    t0 = time.monotonic()
    lease = Lease(f"{url}/silent", so, poll_s=0.1).acquire(timeout_s=30)
    assert 1.8 < time.monotonic() - t0 < 10
    assert lease.taken_over is not None and lease.generations() == [8]
    lease.release()


def test_a_stalled_holder_learns_it_lost_the_lease(base: tuple[str, dict[str, Any]]) -> None:
    url, so = base
    lease_url = f"{url}/leases/region"
    stalled = Lease(lease_url, so, purpose="stalled", ttl_s=1.0).acquire()
    stalled._stop.set()  # the heartbeat stops, as in a process paused for longer than the ttl
    newer = Lease(lease_url, so, purpose="newer", poll_s=0.1).acquire(timeout_s=30)
    try:
        assert newer.taken_over is not None and newer.taken_over.purpose == "stalled"
        with pytest.raises(LeaseError, match="taken over by newer"):
            stalled.check()
        stalled.release()  # does not mark the newer holder's lease released
        assert not Lease(lease_url, so).current().released  # type: ignore[union-attr]
    finally:
        newer.release()


def test_concurrent_catalog_updates_lose_no_region(base: tuple[str, dict[str, Any]]) -> None:
    """Four regions publish into one new catalog at once: one catalog, one collection, 4 items."""
    from gsocseq.cube.grid import RES_DEG
    from gsocseq.products.cog import CogAsset
    from gsocseq.products.stac import Provenance, build_item, read_catalog, write_catalog

    url, so = base
    prefix = f"{url}/stac"
    prov = Provenance(code_version="0.1.0", scheme="exact", config_hash="3f2a9c",
                      inputs={"soc": "s3://inputs/gsocmap"})
    regions = ["AAA", "BBB", "CCC", "DDD"]

    def item(i: int) -> Any:
        west = -60.0 + i
        asset = CogAsset(layer="T0", href=f"{url}/products/{regions[i]}/T0.tif", size=1000,
                         checksum="1220" + "ab" * 32, shape=(120, 120),
                         transform=(RES_DEG, 0.0, west, 0.0, -RES_DEG, -30.0), nodata=float("nan"),
                         units="t C/ha", description="SOC stock at T0")
        return build_item(regions[i], [asset], bbox=asset.bbox, provenance=prov)

    items = [item(i) for i in range(4)]
    _race(4, lambda i: write_catalog([items[i]], prefix, so, provenance=prov))
    catalog = read_catalog(f"{prefix}/catalog.json", so)
    (collection,) = list(catalog.get_children())
    assert sorted(it.id for it in collection.get_items()) == regions
    assert collection.summaries.get_list("gsocseq:region") == regions
    assert collection.extent.spatial.bboxes[0][0] == -60.0
