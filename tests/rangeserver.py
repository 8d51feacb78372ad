"""A real static HTTP server on 127.0.0.1 that honours Range requests and counts what it serves.

:class:`RangeServer` serves a folder like a public data host (``files.isric.org``,
``climate.northwestknowledge.net``): ``GET`` with or without ``Range: bytes=a-b`` (206 Partial
Content), ``HEAD`` with ``Content-Length`` and ``Accept-Ranges: bytes``, 404 for missing files.
``bytes_sent``/``requests`` count body bytes and requests per path; paths containing one of
``down`` answer 503 (a source that stays down). Used by the tests and by
``benchmarks/bench_sources.py``.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class RangeServer:
    """Serve ``root`` over HTTP on 127.0.0.1 (see the module docstring); a context manager."""

    def __init__(self, root: Path, *, down: tuple[str, ...] = ()) -> None:
        self.root = Path(root).resolve()
        self.down = down
        self.bytes_sent: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body are separate writes: with Nagle's algorithm on, a kept-alive
            # client waits for its own delayed ACK (≈ 40 ms) before each body
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def _file(self) -> Path | None:
                rel = self.path.split("?", 1)[0].lstrip("/")
                path = (server.root / rel).resolve()
                if server.root not in path.parents or not path.is_file():
                    return None
                return path

            def _answer(self, head: bool) -> None:
                rel = self.path.split("?", 1)[0]
                with server._lock:
                    server.requests[rel] += 1
                if any(d in rel for d in server.down):
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                path = self._file()
                if path is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                size = path.stat().st_size
                start, stop, status = 0, size, 200
                m = _RANGE.match(self.headers.get("Range", "").strip())
                if m and size:
                    a, b = m.group(1), m.group(2)
                    if a:
                        start, stop = int(a), min(size, int(b) + 1 if b else size)
                    else:
                        start, stop = max(0, size - int(b)), size
                    if start >= size:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                self.send_response(status)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(stop - start))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{size}")
                self.end_headers()
                if head:
                    return
                with path.open("rb") as f:
                    f.seek(start)
                    body = f.read(stop - start)
                self.wfile.write(body)
                with server._lock:
                    server.bytes_sent[rel] += len(body)

            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                self._answer(head=False)

            def do_HEAD(self) -> None:  # noqa: N802
                self._answer(head=True)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> RangeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def reset(self) -> None:
        """Zero the counters."""
        with self._lock:
            self.bytes_sent.clear()
            self.requests.clear()
