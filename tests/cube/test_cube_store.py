"""The cube template and its schema check (in memory, nothing written)."""

from __future__ import annotations

import numpy as np
import pytest

from gsocseq.cube.region import resolve_region
from gsocseq.cube.store import check_schema, encoding, months, template
from gsocseq.errors import GridMismatchError


@pytest.fixture(scope="module")
def tmpl():
    return template(resolve_region("-63.9,-34.9,-63.2,-34.1", tile_size=60))


def test_template_layout(tmpl) -> None:
    # monthly climate is not stored at 30″: it lives in the climate store (gsocseq.cube.climate)
    assert not {"tmp", "prec", "pet"} & set(tmpl.data_vars)
    assert tmpl["cover"].dims == ("latitude", "longitude", "month")
    assert tmpl["cover"].shape == (120, 120, 12)
    assert tmpl["cover"].data.chunksize == (60, 60, 12)  # one chunk per tile, all months
    assert tmpl["soc"].attrs["units"] == "t C/ha" and tmpl["clay"].attrs["units"] == "%"
    assert tmpl.attrs["origin_row"] == 14880 and tmpl.attrs["tile_size"] == 60
    assert months()[0] == np.datetime64("1981-01-01") and months()[-1] == np.datetime64(
        "2020-12-01"
    )
    enc = encoding(tmpl)
    assert enc["reason"]["fill_value"] == 1  # unwritten cells read as OUTSIDE_REGION
    assert enc["cover"]["chunks"] == (60, 60, 12)
    assert enc["tile_status"]["fill_value"] == -1
    check_schema(tmpl)


def test_schema_check_lists_every_problem(tmpl) -> None:
    bad = tmpl.drop_vars("cover")
    bad["soc"] = bad["soc"].copy().assign_attrs(units="kg/m2")
    bad = bad.assign_coords(latitude=bad.latitude + 0.001)
    with pytest.raises(GridMismatchError) as err:
        check_schema(bad, "s3://b/cube.zarr")
    msg = str(err.value)
    assert "s3://b/cube.zarr" in msg
    assert "missing variable 'cover'" in msg
    assert "soc: units 'kg/m2', expected 't C/ha'" in msg


def test_schema_check_catches_off_grid_coordinates(tmpl) -> None:
    with pytest.raises(GridMismatchError, match="latitude is not the 30 arc-second grid"):
        check_schema(tmpl.assign_coords(latitude=tmpl.latitude + 0.001))
    with pytest.raises(GridMismatchError, match="time has 12 months"):
        check_schema(tmpl.isel(time=slice(0, 12)))
