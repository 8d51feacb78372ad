import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gsocseq.model.uncertainty import rate_uncertainty, stock_uncertainty, uncertainty_layers
from gsocseq.vocabulary import LAYERS


def test_stock_uncertainty_hand_computed():
    # 100 * (60 - 40) / (2 * 50) = 20 %
    assert stock_uncertainty(np.array([50.0]), np.array([40.0]), np.array([60.0]))[0] == 20.0
    # 100 * (33 - 30) / (2 * 30) = 5 %
    assert stock_uncertainty(np.array([30.0]), np.array([30.0]), np.array([33.0]))[0] == pytest.approx(5.0)


def test_rate_uncertainty_hand_computed():
    # sqrt((10*60)^2 + (20*50)^2) / |60 + 50| = sqrt(360000 + 1000000) / 110 = 10.6017307 %
    out = rate_uncertainty(np.array([60.0]), np.array([10.0]), np.array([50.0]), np.array([20.0]))
    assert out[0] == pytest.approx(10.601730717900546, rel=1e-12)


def test_rate_uncertainty_equal_stocks_and_uncertainties_is_u_over_sqrt2():
    out = rate_uncertainty(np.array([40.0]), np.array([30.0]), np.array([40.0]), np.array([30.0]))
    assert out[0] == pytest.approx(30.0 / np.sqrt(2.0))


def test_uncertainty_layers_names_and_values():
    one = np.ones(1)
    out = uncertainty_layers(
        t0=50 * one, t0_min=40 * one, t0_max=60 * one,          # U_t0 = 20 %
        bau=48 * one, bau_min=36 * one, bau_max=55.2 * one,     # U_BAU = 100*19.2/96 = 20 %
        ssm_med=60 * one, ssm_med_min=45 * one, ssm_med_max=75 * one,  # U_SSM = 100*30/120 = 25 %
        ssm=(55 * one, 60 * one, 70 * one),
    )
    assert set(out) == {name for name in LAYERS if name.endswith("_Uncertainty")}
    assert out["T0_Uncertainty"][0] == pytest.approx(20.0)
    assert out["BAU_Uncertainty"][0] == pytest.approx(20.0)
    assert out["SSM_Uncertainty"][0] == pytest.approx(25.0)
    # ASR_BAU: sqrt((20*48)^2 + (20*50)^2) / 98 = 1386.24 / 98
    assert out["ASR_BAU_Uncertainty"][0] == pytest.approx(np.sqrt(960.0**2 + 1000.0**2) / 98.0)
    # ASR_SSM3: sqrt((25*70)^2 + (20*50)^2) / 120
    assert out["ASR_SSM3_Uncertainty"][0] == pytest.approx(np.sqrt(1750.0**2 + 1000.0**2) / 120.0)
    # RSR_SSM1: sqrt((25*55)^2 + (20*48)^2) / 103
    assert out["RSR_SSM1_Uncertainty"][0] == pytest.approx(np.sqrt(1375.0**2 + 960.0**2) / 103.0)
    # RSR_SSM2: sqrt((25*60)^2 + (20*48)^2) / 108
    assert out["RSR_SSM2_Uncertainty"][0] == pytest.approx(np.sqrt(1500.0**2 + 960.0**2) / 108.0)


def test_zero_central_stock_gives_non_finite_not_error():
    out = stock_uncertainty(np.array([0.0]), np.array([0.0]), np.array([1.0]))
    assert not np.isfinite(out[0])

stock = st.floats(1.0, 500.0)
pct = st.floats(0.0, 100.0)


@given(stock, pct, stock, pct, st.floats(0.01, 100.0))
def test_rate_uncertainty_is_symmetric_and_scale_free(a, ua, b, ub, k):
    one = np.ones(1)
    u = rate_uncertainty(a * one, ua * one, b * one, ub * one)[0]
    assert u == pytest.approx(rate_uncertainty(b * one, ub * one, a * one, ua * one)[0])
    assert u == pytest.approx(rate_uncertainty(k * a * one, ua * one, k * b * one, ub * one)[0])
    assert u <= max(ua, ub) + 1e-9  # a weighted quadratic mean over a sum never exceeds the max
