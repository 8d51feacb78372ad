"""A tiny fault-injecting HTTP proxy in front of the local S3 server (a real network fault, no mock).

:class:`FaultProxy` listens on 127.0.0.1 and forwards every request to the upstream endpoint
(``moto_server``), except that it

* answers ``error_status`` (default ``500 InternalError``; ``503 SlowDown`` is a throttling answer
  that also slows the client's adaptive rate limiter down) to a share ``error_rate`` of requests
  (decided before forwarding, from a seeded generator, so the request never reaches storage);
* closes the client connection without any answer for a share ``drop_rate`` of requests;
* answers ``500 InternalError`` to *every* request whose path contains one of ``fail_paths``
  (a persistent fault on chosen keys);
* can go away (:meth:`stop`: the listening socket and open connections are closed, the port refuses
  connections) and come back on the same port (:meth:`start`), like a restarted endpoint whose
  data survived (moto keeps its state in memory, so the upstream itself is never restarted).

``counts`` records how many requests were forwarded, failed and dropped, and ``bytes_out`` the
response bytes forwarded; ``requests`` every request received, ``(operation, key)`` with the S3
operation named as botocore does (``get_object``, ``put_object``, ``list_objects_v2`` …), whatever
client sent it.
"""

from __future__ import annotations

import http.client
import random
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote

_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade"}


def _error_body(code: str, message: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error>").encode()


def s3_operation(method: str, target: str) -> tuple[str, str]:
    """Return ``(operation, key)`` of a path-style S3 request (``/bucket/key?query``)."""
    path, _, query = target.partition("?")
    bucket, _, key = unquote(path).lstrip("/").partition("/")
    params = parse_qs(query, keep_blank_values=True)
    if method == "GET" and not key:
        return "list_objects_v2" if "list-type" in params else "list_objects", params.get(
            "prefix", [""])[0]
    if "uploads" in params or "uploadId" in params:
        return "multipart_upload", key
    if method == "PUT" and not key:
        return "create_bucket", bucket
    ops = {"GET": "get_object", "PUT": "put_object", "HEAD": "head_object",
           "DELETE": "delete_object", "POST": "post"}
    return ops.get(method, method.lower()), key


class FaultProxy:
    """Forward HTTP to ``upstream`` (``http://host:port``) with injected faults (module docstring)."""

    def __init__(self, upstream: str, *, error_rate: float = 0.0, drop_rate: float = 0.0,
                 fail_paths: tuple[str, ...] = (), seed: int = 0,
                 error_status: tuple[int, str] = (500, "InternalError")) -> None:
        self.upstream = upstream.split("://", 1)[1].rstrip("/")
        self.error_rate = error_rate
        self.drop_rate = drop_rate
        self.fail_paths = fail_paths
        self.error_status = error_status
        self.counts: Counter[str] = Counter()
        self.requests: list[tuple[str, str]] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self.port = 0

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT`` of the proxy."""
        return f"http://127.0.0.1:{self.port}"

    def storage_options(self, so: dict[str, Any], **extra: Any) -> dict[str, Any]:
        """fsspec options ``so`` (of the upstream S3 server) that reach it through this proxy.

        ``extra`` top-level options are added (e.g. ``config_kwargs`` with retries).
        """
        return {**so, "client_kwargs": {"endpoint_url": self.endpoint_url}, **extra}

    def _decide(self, path: str) -> str:
        """Return ``forward``, ``error``, ``drop`` or ``fail`` for a request path."""
        if any(p in path for p in self.fail_paths):
            return "fail"
        with self._lock:
            draw = self._rng.random()
        if draw < self.error_rate:
            return "error"
        if draw < self.error_rate + self.drop_rate:
            return "drop"
        return "forward"

    def start(self) -> FaultProxy:
        """Listen (again, on the same port after :meth:`stop`) and serve in a daemon thread."""
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body are separate writes: with Nagle's algorithm on, each answer waits
            # for the client's delayed ACK (≈ 40 ms a request instead of ≈ 2 ms)
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
                return

            def setup(self) -> None:
                super().setup()
                with proxy._lock:
                    proxy._conns.add(self.connection)

            def finish(self) -> None:
                with proxy._lock:
                    proxy._conns.discard(self.connection)
                super().finish()

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = bytearray()
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return bytes(out)
                        out += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _reply(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
                self.send_response(status)
                head = self.command == "HEAD"  # keeps the object's Content-Length, no body
                for k, v in headers:
                    if k.lower() not in _HOP and (head or k.lower() != "content-length"):
                        self.send_header(k, v)
                if not head:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _handle(self) -> None:
                body = self._body()
                action = proxy._decide(self.path)
                with proxy._lock:
                    proxy.counts[action] += 1
                    proxy.requests.append(s3_operation(self.command, self.path))
                if action == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if action in ("error", "fail"):
                    status, code = (proxy.error_status if action == "error"
                                    else (500, "InternalError"))
                    err = _error_body(code, "injected fault")
                    self._reply(status, err, [("Content-Type", "application/xml"),
                                              ("Content-Length", str(len(err)))])
                    return
                conn = http.client.HTTPConnection(proxy.upstream, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                    headers["Content-Length"] = str(len(body))
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    with proxy._lock:
                        proxy.counts["bytes_out"] += len(data)
                    self._reply(resp.status, data, resp.getheaders())
                finally:
                    conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle  # noqa: N815

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", self.port), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection (the endpoint goes away)."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server = None
