"""A process that read rasters through the per-process cache exits cleanly.

The cache keeps rasters open on its own thread; they must be closed before that thread's executor
shuts down at interpreter exit, or GDAL tears them down late and the process segfaults (exit 139,
``ERROR 3: … I/O error``) after a run whose products are all written. A real child process.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gsocseq.demo import write_demo_world


def test_a_process_reading_rasters_exits_zero_with_nothing_on_stderr(tmp_path: Path) -> None:
    write_demo_world(f"file://{tmp_path}", {}, tiles_y=1, tiles_x=1, tile_size=30, seed=0)
    script = (
        "from gsocseq.sources.readers import RASTERS, read_raster_window\n"
        "box = (-64, -34.25, -63.75, -34.0)\n"
        f"a = read_raster_window('file://{tmp_path}/soc/GSOCmap_demo.tif', box)\n"
        f"b = read_raster_window('file://{tmp_path}/clay/clay_0-5cm_mean.tif', box)\n"
        "assert RASTERS.opens == 2, RASTERS.opens\n"
        "print(a.shape, b.shape)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "I/O error" not in done.stderr
    assert done.stdout.strip()
