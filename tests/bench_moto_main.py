"""Same-run comparison of the tests' moto server (``tests/moto_main.py``) with the stock ``moto_server``.

Run from the repository root: ``nice -n 10 .venv/bin/python tests/bench_moto_main.py [N]``. Each server
is started in turn on a free port and serves the same N small PUTs and N GETs through s3fs; the
server's CPU seconds (user + system, from ``wait4``) and the client's wall time are printed with the
stock/new ratios. Not a test (pytest collects ``test_*.py`` only).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import s3fs
from servers import free_port

AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
       "AWS_DEFAULT_REGION": "us-east-1"}


def serve_and_measure(cmd: list[str], n: int) -> tuple[float, float]:
    """Return (client wall s, server CPU s) of N PUTs + N GETs of 2 kB objects against ``cmd``."""
    port = free_port()
    proc = subprocess.Popen([*cmd, "-H", "127.0.0.1", "-p", str(port)], env={**os.environ, **AWS},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(url + "/", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    fs = s3fs.S3FileSystem(key="testing", secret="testing", client_kwargs={"endpoint_url": url},
                           skip_instance_cache=True)
    fs.mkdir("bench-moto")
    t0 = time.monotonic()
    fs.pipe({f"bench-moto/k/{i}": b"x" * 2000 for i in range(n)})
    fs.cat([f"bench-moto/k/{i}" for i in range(n)])
    wall = time.monotonic() - t0
    proc.terminate()
    _, _, usage = os.wait4(proc.pid, 0)
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    os.environ.update(AWS)
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1500
    stock = serve_and_measure([str(Path(sys.executable).with_name("moto_server"))], n)
    new = serve_and_measure([sys.executable, str(Path(__file__).with_name("moto_main.py"))], n)
    print(f"{n} PUT + {n} GET: stock moto_server wall {stock[0]:.1f} s, server CPU {stock[1]:.1f} s | "
          f"moto_main.py wall {new[0]:.1f} s, server CPU {new[1]:.1f} s | "
          f"server CPU stock/new {stock[1] / new[1]:.2f}, wall stock/new {stock[0] / new[0]:.2f}")


if __name__ == "__main__":
    main()
