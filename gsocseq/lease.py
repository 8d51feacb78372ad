"""Leases and exclusive creation on any fsspec store (``file://``, ``s3://``, ``memory://``).

One atomic primitive, :func:`create_exclusive` (a hard link on a local file system, ``PUT`` with
``If-None-Match: *`` on S3), gives store creation that ends in one store (:func:`commit_store`) and
leases (:class:`Lease`): a claim on a name held by one process at a time, renewed by a heartbeat and
taken over when its holder stops renewing it, so a killed holder never blocks for ever.

Self-contained (stdlib, fsspec, psutil): every room that touches storage may import it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import posixpath
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

import psutil
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from gsocseq.errors import LeaseError

log = logging.getLogger(__name__)

LEASE_TTL_S: float = 60.0
"""A lease not renewed for this long is stale and may be taken over, s."""
POLL_S: float = 2.0
"""How often a waiting process looks at the lease again, s."""
SETTLE_S: float = 0.25
"""Pause before an acquirer reads its new lease back, s (see :meth:`Lease.acquire`)."""
WAIT_LOG_S: float = 60.0
"""A waiting process reports the holder again after this long, s."""
_memory_lock = threading.Lock()  # memory:// lives in this process: a lock makes create atomic
_SUFFIX = ".lease"


# ------------------------------------------------------------------------ exclusive creation


def create_exclusive(url: str, data: bytes, storage_options: Mapping[str, Any] | None = None
                     ) -> bool:
    """Write ``data`` at ``url`` only if nothing is there; return whether this call created it.

    Atomic on a local (or NFS) file system (written to a temporary file, then hard-linked to the
    final name, which fails if it exists), on S3 (``PutObject`` with ``If-None-Match: *``; a
    412 answer means it exists) and on ``memory://``. A reader never sees a partial object.
    Other stores get a check then a put: two creators within one request's latency may both
    succeed (a lease catches that by reading its document back, :meth:`Lease.acquire`).
    """
    fs, path = url_to_fs(url, **dict(storage_options or {}))
    if isinstance(fs, LocalFileSystem):
        return _create_local(path, data)
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    if protocols & {"s3", "s3a"}:
        try:
            fs.pipe_file(path, data, mode="create")
        except FileExistsError:
            return False
        return True
    with _memory_lock:  # memory:// (in this process): atomic; other stores: check, then put
        fs.invalidate_cache(path)
        if fs.exists(path):
            return False
        fs.pipe_file(path, data)
        return True


def _create_local(path: str, data: bytes) -> bool:
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex}")
    with open(tmp, "wb") as fh:
        fh.write(data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)
    return True


def put_atomic(url: str, data: bytes, storage_options: Mapping[str, Any] | None = None) -> None:
    """Write (or overwrite) ``data`` at ``url`` so a reader sees the old or the new bytes only."""
    fs, path = url_to_fs(url, **dict(storage_options or {}))
    if isinstance(fs, LocalFileSystem):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex}")
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
        return
    fs.pipe_file(path, data)  # one PUT: atomic on object stores


def read_or_none(url: str, storage_options: Mapping[str, Any] | None = None) -> bytes | None:
    """Return the bytes at ``url`` (not a cached listing), or ``None`` if there is no object."""
    fs, path = url_to_fs(url, **dict(storage_options or {}))
    fs.invalidate_cache(path)
    try:
        return bytes(fs.cat_file(path))
    except FileNotFoundError:
        return None


def commit_store(
    items: Mapping[str, bytes],
    url: str,
    storage_options: Mapping[str, Any] | None = None,
    *,
    root_key: str = "zarr.json",
) -> bool:
    """Create a small store (metadata, coordinates) at ``url`` from ``items``; True if this call did.

    Every key but ``root_key`` is written create-if-absent, then ``root_key`` last with
    :func:`create_exclusive`: a reader that finds the root finds every other key, and of several
    concurrent creators exactly one creates the root while the others write nothing over what
    exists (their keys are the same bytes: a store's URL fixes its content). Keys left by a
    killed creator are complete objects and are kept. Data chunks are written later, by tiles.
    """
    base = url.rstrip("/")
    if read_or_none(f"{base}/{root_key}", storage_options) is not None:
        return False
    for key in sorted(items):
        if key != root_key:
            create_exclusive(f"{base}/{key}", items[key], storage_options)
    return create_exclusive(f"{base}/{root_key}", items[root_key], storage_options)


# -------------------------------------------------------------------------------------- leases


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) a lease: one JSON document per lease generation."""

    holder: str
    """Random id of the holding :class:`Lease` object."""
    purpose: str
    """What the holder does, for people (``gsocseq run demo (config 1a3b0d651096)``)."""
    host: str
    """Host name of the holding process."""
    pid: int
    """Process id of the holding process on ``host``."""
    pid_started: float
    """Start time of that process (s since the epoch; tells a reused pid apart)."""
    pid_namespace: str
    """The process's pid namespace (``pid:[…]`` on Linux, else ""): containers sharing a host name
    do not share pids."""
    acquired_at: str
    """When the lease was taken (UTC, ISO 8601)."""
    renewed_at: str
    """Last heartbeat (UTC, ISO 8601)."""
    expires_at: str
    """``renewed_at`` + ``ttl_s``: after this the lease is stale (UTC, ISO 8601)."""
    ttl_s: float
    """Lease time to live without a heartbeat, s."""
    generation: int
    """Number of the lease document (one per acquisition, increasing)."""
    renewals: int = 0
    """Heartbeats so far."""
    released: bool = False
    """Set when the holder let go (the next acquirer need not wait)."""

    def describe(self) -> str:
        """Return 'purpose, pid P on HOST, since T (renewed N s ago)' for messages."""
        age = time.time() - _epoch(self.renewed_at)
        return (f"{self.purpose or 'a process'} (pid {self.pid} on {self.host}, since "
                f"{self.acquired_at}, renewed {max(age, 0.0):.0f} s ago)")

    def to_bytes(self) -> bytes:
        """Return the JSON document of this holder."""
        return (json.dumps(asdict(self), sort_keys=True, indent=2) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Holder | None:
        """Parse a lease document; ``None`` if it is not one (a foreign or damaged object)."""
        try:
            doc = json.loads(data)
            return cls(**{k: doc[k] for k in cls.__dataclass_fields__ if k in doc})
        except (ValueError, TypeError):
            return None


def _now_iso(t: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if t is None else t, UTC).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


def _epoch(iso: str) -> float:
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _process_started(pid: int) -> float | None:
    """Return the start time of process ``pid`` on this host, ``None`` if there is none."""
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _stale_reason(doc: Holder, unchanged_s: float) -> str | None:
    """Return why the lease ``doc`` is free to take, or ``None`` while its holder is alive.

    Free when released; when its holder's process is gone (same host and pid namespace: no process
    with that pid and start time); when it was not renewed before ``expires_at`` on this host's
    clock; or when this process saw it unchanged for a whole ``ttl_s`` (no clock comparison).
    """
    if doc.released:
        return "released"
    if doc.host == socket.gethostname() and doc.pid_namespace == _pid_namespace():
        started = _process_started(doc.pid)
        if started is None or abs(started - doc.pid_started) > 1.0:
            return f"its process (pid {doc.pid} on this host) is gone"
    if time.time() > _epoch(doc.expires_at):
        return f"not renewed since {doc.renewed_at} (expired {doc.expires_at})"
    if unchanged_s >= doc.ttl_s:
        return f"unchanged for {unchanged_s:.0f} s (ttl {doc.ttl_s:.0f} s)"
    return None


class Lease:
    """A lease on ``url`` (a folder of lease documents ``NNNNNNNNNNNN.lease``), as a context manager.

    Acquiring creates the next generation's document with :func:`create_exclusive`, so of several
    acquirers one wins; the winner reads it back after :data:`SETTLE_S` (a store whose conditional
    write is not atomic, as the moto emulator's under a race, is caught there), deletes older
    generations and starts a heartbeat thread that rewrites its document every ``ttl_s / 4``.
    A process that finds a live holder waits (``wait=True``), calling ``on_wait(holder)`` when it
    starts waiting and every :data:`WAIT_LOG_S`; it takes over a stale lease (see
    :func:`_stale_reason`). Releasing marks the document released. A holder that finds a newer
    generation has lost the lease (it was stalled for longer than the ttl): :meth:`check` raises.
    """

    def __init__(
        self,
        url: str,
        storage_options: Mapping[str, Any] | None = None,
        *,
        purpose: str = "",
        ttl_s: float = LEASE_TTL_S,
        poll_s: float = POLL_S,
        on_wait: Callable[[Holder], None] | None = None,
        on_takeover: Callable[[Holder, str], None] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.storage_options = dict(storage_options or {})
        self.purpose = purpose
        self.ttl_s = float(ttl_s)
        self.poll_s = float(poll_s)
        self.on_wait = on_wait
        self.on_takeover = on_takeover
        self.id = uuid.uuid4().hex
        self.doc: Holder | None = None
        self.waited_s = 0.0
        """Seconds :meth:`acquire` took before its winning attempt (waiting for other holders)."""
        self.waited_for: Holder | None = None
        """The live holder :meth:`acquire` first had to wait for, if any."""
        self.taken_over: Holder | None = None
        """The stale holder this lease was taken from, if any."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lost: str | None = None

    # -- storage
    def _key(self, generation: int) -> str:
        return f"{self.url}/{generation:012d}{_SUFFIX}"

    def generations(self) -> list[int]:
        """Return the lease document generations present, ascending."""
        fs, path = url_to_fs(self.url, **self.storage_options)
        fs.invalidate_cache(path)
        try:
            names = [posixpath.basename(n.rstrip("/")) for n in fs.ls(path, detail=False)]
        except FileNotFoundError:
            return []
        stems = [n.removesuffix(_SUFFIX) for n in names if n.endswith(_SUFFIX)]
        return sorted(int(s) for s in stems if s.isdigit())

    def current(self) -> Holder | None:
        """Return the newest lease document (the holder, or the last one), ``None`` if none."""
        for gen in reversed(self.generations()):
            data = read_or_none(self._key(gen), self.storage_options)
            if data is not None:
                return Holder.from_bytes(data)
        return None

    def _new_doc(self, generation: int) -> Holder:
        now = time.time()
        return Holder(
            holder=self.id, purpose=self.purpose, host=socket.gethostname(), pid=os.getpid(),
            pid_started=_process_started(os.getpid()) or 0.0, pid_namespace=_pid_namespace(),
            acquired_at=_now_iso(now),
            renewed_at=_now_iso(now), expires_at=_now_iso(now + self.ttl_s), ttl_s=self.ttl_s,
            generation=generation,
        )

    # -- acquire / release
    def acquire(self, *, wait: bool = True, timeout_s: float | None = None) -> Lease:
        """Take the lease, waiting for a live holder (``wait``) up to ``timeout_s`` (None: no limit).

        Raises :class:`LeaseError` naming the holder and since when if it is held and ``wait`` is
        false or ``timeout_s`` passed.
        """
        t0 = time.monotonic()
        seen: dict[tuple[int, int], float] = {}  # (generation, renewals) → first seen (monotonic)
        last_report = -WAIT_LOG_S
        while True:
            gens = self.generations()
            top = gens[-1] if gens else 0
            doc: Holder | None = None
            if top:
                data = read_or_none(self._key(top), self.storage_options)
                if data is None:  # removed since the listing by a new holder's clean-up
                    time.sleep(SETTLE_S)
                    continue
                doc = Holder.from_bytes(data) or _unreadable(top, self.ttl_s)
            reason = None
            if doc is not None:
                state = (doc.generation, doc.renewals)
                first = seen.setdefault(state, time.monotonic())
                reason = _stale_reason(doc, time.monotonic() - first)
            if doc is None or reason is not None:
                t_try = time.monotonic()
                if self._try_create(top + 1):
                    if doc is not None and reason != "released":
                        self.taken_over = doc
                        log.warning("lease %s: taking over from %s: %s", self.url,
                                    doc.describe(), reason)
                        if self.on_takeover is not None:
                            self.on_takeover(doc, reason or "")
                    self.waited_s = t_try - t0
                    return self
                continue
            waited = time.monotonic() - t0
            if self.waited_for is None:
                self.waited_for = doc
            if not wait or (timeout_s is not None and waited >= timeout_s):
                raise LeaseError(f"{self.url} is held by {doc.describe()}"
                                 + (f"; gave up after {waited:.0f} s" if wait else ""))
            if time.monotonic() - last_report >= WAIT_LOG_S:
                last_report = time.monotonic()
                log.info("lease %s: waiting for %s", self.url, doc.describe())
                if self.on_wait is not None:
                    self.on_wait(doc)
            time.sleep(self.poll_s)

    def _try_create(self, generation: int) -> bool:
        doc = self._new_doc(generation)
        if not create_exclusive(self._key(generation), doc.to_bytes(), self.storage_options):
            return False
        time.sleep(SETTLE_S)
        back = read_or_none(self._key(generation), self.storage_options)
        if back is None or (Holder.from_bytes(back) or doc).holder != self.id:
            return False  # another writer's document landed on the same key: it holds the lease
        self.doc = doc
        for old in self.generations():
            if old < generation:
                fs, path = url_to_fs(self._key(old), **self.storage_options)
                with contextlib.suppress(FileNotFoundError):
                    fs.rm_file(path)
        self._stop.clear()
        self._thread = threading.Thread(target=self._heartbeat, name=f"lease-{self.id[:8]}",
                                        daemon=True)
        self._thread.start()
        return True

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl_s / 4):
            try:
                self.renew()
            except LeaseError as exc:
                log.error("%s", exc)
                return
            except Exception as exc:  # a transient store error: try again at the next beat
                log.warning("lease %s: heartbeat failed (%s: %s); retrying", self.url,
                            type(exc).__name__, exc)

    def renew(self) -> None:
        """Rewrite this holder's document with a new expiry; raise :class:`LeaseError` if lost."""
        if self.doc is None:
            raise LeaseError(f"lease {self.url}: not held")
        self.check()
        now = time.time()
        self.doc = replace(self.doc, renewed_at=_now_iso(now), expires_at=_now_iso(now + self.ttl_s),
                           renewals=self.doc.renewals + 1)
        put_atomic(self._key(self.doc.generation), self.doc.to_bytes(), self.storage_options)

    def check(self) -> None:
        """Raise :class:`LeaseError` if another process took this lease over (it is lost)."""
        if self.doc is None:
            raise LeaseError(f"lease {self.url}: not held")
        if self._lost is None:
            newer = [g for g in self.generations() if g > self.doc.generation]
            if newer:
                other = read_or_none(self._key(newer[-1]), self.storage_options)
                who = (Holder.from_bytes(other) if other else None)
                self._lost = (f"lease {self.url} was taken over by "
                              f"{who.describe() if who else 'another process'} (this process did "
                              f"not renew it for {self.ttl_s:.0f} s)")
        if self._lost is not None:
            raise LeaseError(self._lost)

    def release(self) -> None:
        """Stop the heartbeat and mark the document released (unless the lease was lost)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if self.doc is None:
            return
        try:
            self.check()
            self.doc = replace(self.doc, released=True, renewed_at=_now_iso())
            put_atomic(self._key(self.doc.generation), self.doc.to_bytes(), self.storage_options)
        except LeaseError as exc:
            log.warning("%s", exc)
        finally:
            self.doc = None

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _unreadable(generation: int, ttl_s: float) -> Holder:
    """Return a stand-in for a lease document that does not parse (stale once unchanged for ttl)."""
    far = _now_iso(time.time() + 10 * ttl_s)
    return Holder(holder="?", purpose="an unreadable lease document", host="?", pid=0,
                  pid_started=0.0, pid_namespace="", acquired_at="?", renewed_at=_now_iso(), expires_at=far,
                  ttl_s=ttl_s, generation=generation)


@contextlib.contextmanager
def held(lease: Lease, *, wait: bool = True, timeout_s: float | None = None) -> Iterator[Lease]:
    """Hold ``lease`` for the ``with`` block (acquire with ``wait``/``timeout_s``, then release)."""
    lease.acquire(wait=wait, timeout_s=timeout_s)
    try:
        yield lease
    finally:
        lease.release()
