"""A real STAC API on 127.0.0.1 for the tests: ``rustac serve`` (stac-server, memory backend).

:func:`start_stac_api` exports the collections and items of a static catalog (on any fsspec store)
to local JSON files and starts ``rustac serve`` on a free port; the process serves the STAC API
(``/search`` with bbox, datetime and collections; no query extension, which the client then
applies itself). It is the rustac wheel's own server, not an imitation.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pystac


@dataclass
class StacApi:
    """A running ``rustac serve`` process."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        """Terminate the server (this process only)."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def export_catalog(catalog_url: str, storage_options: dict[str, Any], folder: Path) -> list[Path]:
    """Write each collection (without links) and all its items as local JSON; return the files."""
    from gsocseq.sources.stac import FsspecStacIO

    root = pystac.read_file(catalog_url, stac_io=FsspecStacIO(storage_options))
    files = []
    for coll in root.get_children():
        doc = coll.to_dict(include_self_link=False, transform_hrefs=False)
        doc["links"] = []
        path = folder / f"{coll.id}.json"
        path.write_text(json.dumps(doc))
        features = []
        for item in coll.get_items(recursive=True):
            d = item.to_dict(include_self_link=False, transform_hrefs=False)
            d["links"] = []
            features.append(d)
        items = folder / f"{coll.id}-items.json"
        items.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
        files += [path, items]
    return files


def start_stac_api(catalog_url: str, storage_options: dict[str, Any], port: int) -> StacApi:
    """Start ``rustac serve`` with the catalog's collections and items; wait until it answers."""
    folder = Path(tempfile.mkdtemp(prefix="stac-api-"))
    files = export_catalog(catalog_url, storage_options, folder)
    exe = Path(sys.executable).with_name("rustac")
    log = folder / "rustac.log"
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(exe), "serve", "--addr", f"127.0.0.1:{port}", *map(str, files)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"rustac serve exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/collections", timeout=1) as resp:
                if resp.status == 200:
                    return StacApi(url, proc, log)
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"rustac serve did not answer at {url}: {log.read_text()[-2000:]}")
