"""Unit normalisation, the ESA CCI → FAO table and SoilGrids depth weights (pure functions)."""

from __future__ import annotations

import numpy as np
import pytest

from gsocseq.errors import InputValidationError
from gsocseq.sources.adapters import depth_weights
from gsocseq.sources.landcover import FAO_FROM_ESA, esa_to_fao
from gsocseq.sources.units import canonical, convert, native_units


@pytest.mark.parametrize(
    ("native", "target", "value", "expected"),
    [
        ("kg/m2", "t C/ha", 4.2, 42.0),
        ("kg m-2", "t C/ha", 1.0, 10.0),
        ("g/kg", "%", 255.0, 25.5),
        ("K", "degC", 273.15, 0.0),
        ("mm", "mm/month", 80.0, 80.0),
        ("%", "1", 40.0, 0.4),
        ("Mg/ha", "t C/ha", 55.0, 55.0),
    ],
)
def test_conversions(native: str, target: str, value: float, expected: float) -> None:
    assert convert(np.array([value]), native, target, "here")[0] == pytest.approx(expected)


def test_pet_mm_per_day_uses_month_lengths() -> None:
    days = np.array([31.0, 28.0, 30.0])
    out = convert(np.array([2.0, 2.0, 2.0]), "mm/day", "mm/month", "cru", days_in_month=days)
    np.testing.assert_allclose(out, [62.0, 56.0, 60.0])
    with pytest.raises(InputValidationError, match="month lengths"):
        convert(np.array([1.0]), "mm/day", "mm/month", "cru")


def test_unconvertible_units_name_source_and_units() -> None:
    with pytest.raises(
        InputValidationError, match=r"source 'soc' at s3://b/x.tif.*'g/kg' to 't C/ha'"
    ):
        convert(np.array([1.0]), "g/kg", "t C/ha", "source 'soc' at s3://b/x.tif")


def test_file_units_conflicting_with_config_is_an_error() -> None:
    assert native_units("", "kg m-2", "w") == "kg/m2"
    assert native_units("t C/ha", None, "w") == "t C/ha"
    assert native_units("t/ha", "t C/ha", "w") == "t C/ha"
    with pytest.raises(
        InputValidationError, match=r"soc.tif: file declares units 'kg/m2'.*'t C/ha'"
    ):
        native_units("t C/ha", "kg/m2", "soc.tif")


def test_canonical_spellings() -> None:
    assert canonical(" Kg/M2 ") == "kg/m2"
    assert canonical("degrees_Celsius") == "degC"


def test_esa_to_fao_follows_reference_table() -> None:
    for fao, codes in FAO_FROM_ESA.items():
        np.testing.assert_array_equal(esa_to_fao(np.array(codes)), fao)
    # codes not in the table and out-of-range values are FAO 0 (no data)
    np.testing.assert_array_equal(esa_to_fao(np.array([15, 255, -1, 300])), 0)
    assert esa_to_fao(np.array([[10, 130], [20, 210]])).dtype == np.uint8


def test_soilgrids_depth_weights_are_thickness_weights() -> None:
    np.testing.assert_allclose(
        depth_weights(("0-5cm", "5-15cm", "15-30cm")), [5 / 30, 10 / 30, 15 / 30]
    )
    with pytest.raises(InputValidationError, match="not contiguous"):
        depth_weights(("0-5cm", "15-30cm"))
    with pytest.raises(InputValidationError, match="'topsoil' is not like"):
        depth_weights(("topsoil",))
