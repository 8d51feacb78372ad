"""Test data: a demo world whose SOC map is a VRT over two GeoTIFFs (a tiled national map, or
SoilGrids' sub-tiles), so that one part of a source can be made unreachable while the rest is served.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def soc_in_two_files(world: Path, root: Path, west_edge: float) -> None:
    """Copy the world with its SOC map cut at ``west_edge`` (+3 cells) into two GeoTIFFs + a VRT.

    A tiled national map (or SoilGrids' sub-tiles): the west tile's window (+2 margin cells) lies
    in the west file alone, the east tile's in both.
    """
    import rasterio
    from rasterio.windows import Window

    shutil.copytree(world, root)
    soc = root / "soc" / "GSOCmap_demo.tif"
    with rasterio.open(soc) as src:
        t, profile = src.transform, src.profile
        cut = round((west_edge - t.c) / t.a) + 3
        parts = {"west": Window(0, 0, cut, src.height),
                 "east": Window(cut, 0, src.width - cut, src.height)}
        sources = []
        for name, win in parts.items():
            path = soc.parent / f"GSOCmap_{name}.tif"
            with rasterio.open(path, "w", **{**profile, "width": win.width, "height": win.height,
                                             "transform": src.window_transform(win)}) as dst:
                dst.write(src.read(1, window=win), 1)
            sources.append(
                f'<SimpleSource><SourceFilename relativeToVRT="1">{path.name}</SourceFilename>'
                f'<SourceBand>1</SourceBand><SourceProperties RasterXSize="{win.width}" '
                f'RasterYSize="{win.height}" DataType="Float32" BlockXSize="{win.width}" '
                f'BlockYSize="1"/><SrcRect xOff="0" yOff="0" xSize="{win.width}" '
                f'ySize="{win.height}"/><DstRect xOff="{win.col_off}" yOff="0" '
                f'xSize="{win.width}" ySize="{win.height}"/></SimpleSource>')
        nodata = "" if src.nodata is None else f"<NoDataValue>{src.nodata}</NoDataValue>"
        (soc.parent / "GSOCmap_tiles.vrt").write_text(
            f'<VRTDataset rasterXSize="{src.width}" rasterYSize="{src.height}">'
            f"<SRS>{src.crs.to_wkt()}</SRS><GeoTransform>{t.c}, {t.a}, 0, {t.f}, 0, {t.e}"
            f'</GeoTransform><VRTRasterBand dataType="{src.dtypes[0].capitalize()}" band="1">'
            f"{nodata}{''.join(sources)}</VRTRasterBand></VRTDataset>")
    toml = root / "sources.toml"
    toml.write_text(toml.read_text().replace("soc/GSOCmap_demo.tif", "soc/GSOCmap_tiles.vrt"))
