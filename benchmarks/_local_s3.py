"""Helpers shared by the benchmarks that start their own local S3 server (``moto_server``)."""

from __future__ import annotations

import socket
import time
import urllib.request


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, tries: int = 300) -> None:
    """Poll ``url`` every 0.1 s until it answers (at most ``tries`` times)."""
    for _ in range(tries):
        try:
            urllib.request.urlopen(url + "/", timeout=1)
            return
        except OSError:
            time.sleep(0.1)
