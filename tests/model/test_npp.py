import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gsocseq.errors import InputValidationError
from gsocseq.model.npp import annual_npp, miami_npp, miami_npp_carbon

# Hand-computed from Lieth's MIAMI formulas (reference §3.4), g DM/m2/yr:
#   T=10 °C, P=1000 mm: NPP_T = 3000/(1+e^(1.315-1.19)) = 1406.372 < NPP_P = 1455.636 -> T-limited
#   T=25 °C, P=300 mm:  NPP_P = 3000*(1-e^-0.1992) = 541.842 < NPP_T = 2520.714      -> P-limited
#   T=-2 °C, P=600 mm:  NPP_T = 3000/(1+e^(1.315+0.238)) = 523.960                    -> T-limited
CASES = [(10.0, 1000.0, 1406.3718798787), (25.0, 300.0, 541.8420007675), (-2.0, 600.0, 523.9601916757)]


@pytest.mark.parametrize(("t", "p", "expected"), CASES)
def test_miami_hand_computed(t, p, expected):
    assert miami_npp(np.array([t]), np.array([p]))[0] == pytest.approx(expected, rel=1e-10)


def test_miami_carbon_is_dry_matter_times_0_005():
    # 1 g/m2 = 0.01 t/ha, carbon fraction 0.5 -> 1406.372 g DM/m2/yr = 7.03186 t C/ha/yr
    assert miami_npp_carbon(np.array([10.0]), np.array([1000.0]))[0] == pytest.approx(
        7.0318594, rel=1e-7
    )


def test_miami_no_rain_gives_zero_and_saturates_at_3000():
    assert miami_npp(np.array([20.0]), np.array([0.0]))[0] == 0.0
    assert miami_npp(np.array([200.0]), np.array([1e6]))[0] == pytest.approx(3000.0, rel=1e-6)


def test_annual_npp_uses_yearly_mean_temperature_and_total_precipitation():
    # year 1: 12 months of 10 °C and 1000/12 mm; year 2: alternating 20/30 °C (mean 25) and 25 mm/month
    tmp = np.concatenate([np.full(12, 10.0), np.tile([20.0, 30.0], 6)])[:, None]
    prec = np.concatenate([np.full(12, 1000.0 / 12), np.full(12, 25.0)])[:, None]
    out = annual_npp(tmp, prec)
    assert out.shape == (2, 1)
    np.testing.assert_allclose(out[:, 0], [1406.3718798787 * 0.005, 541.8420007675 * 0.005], rtol=1e-9)


def test_annual_npp_rejects_incomplete_years():
    with pytest.raises(InputValidationError, match=r"tmp \(13, 2\)"):
        annual_npp(np.zeros((13, 2)), np.zeros((13, 2)))


@given(st.floats(-30, 40), st.floats(0, 4000), st.floats(0, 10), st.floats(0, 500))
def test_miami_is_nondecreasing_in_temperature_and_precipitation(t, p, dt, dp):
    base = miami_npp(np.array([t]), np.array([p]))[0]
    assert miami_npp(np.array([t + dt]), np.array([p]))[0] >= base
    assert miami_npp(np.array([t]), np.array([p + dp]))[0] >= base
    assert 0.0 <= base < 3000.0
