"""The Prefect run artifact shows the published quick looks (embedded) and links every one."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np

from flows.report import RegionReport, render_markdown
from gsocseq.pipeline.summary import summarise
from gsocseq.products.quicklook import render_png


def test_artifact_embeds_t0_final_soc_and_asr_quick_looks(tmp_path: Path) -> None:
    looks = {}
    for layer in ("T0", "finalSOC_BAU", "ASR_BAU", "AbsDiff_BAU", "T0_Uncertainty"):
        path = tmp_path / f"DEM_GSOCseq_{layer}_Map030.png"
        path.write_bytes(render_png(np.arange(12.0).reshape(3, 4), layer=layer,
                                    max_pixels=256))
        looks[layer] = f"file://{path}"
    looks["ASR_SSM1"] = f"file://{tmp_path}/missing.png"  # unreadable: linked, not embedded

    class Published:  # the fields of gsocseq.pipeline.PublishResult that the report reads
        cogs = {k: v.replace(".png", ".tif") for k, v in looks.items()}
        stac_url = f"file://{tmp_path}/stac/catalog.json"
        stac_items = (f"file://{tmp_path}/stac/c/DEM/DEM.json",)
        quicklooks = looks

    summary = summarise([], region="DEM", config_hash="c" * 64, scenarios=("bau",),
                        wall_seconds=1.0, urls={})
    report = RegionReport.from_pipeline(summary, Published())
    assert list(report.pictures) == ["T0", "finalSOC_BAU", "ASR_BAU"]
    png = base64.b64decode(report.pictures["T0"].split(",", 1)[1])
    assert png == (tmp_path / "DEM_GSOCseq_T0_Map030.png").read_bytes()
    md = render_markdown("run", "synchronous", [report])
    assert "### Quick looks" in md
    assert md.count("](data:image/png;base64,") == 3
    assert "| AbsDiff_BAU | [DEM_GSOCseq_AbsDiff_BAU_Map030.tif]" in md
    assert f"[png]({looks['T0_Uncertainty']})" in md and f"[png]({looks['ASR_SSM1']})" in md
    assert report.as_dict()["quicklooks"] == looks
