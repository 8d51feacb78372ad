import numpy as np

from gsocseq.model import landuse

CLASSES = np.array([0, 1, 2, 3, 4, 5, 12, 13], dtype=np.uint8)


def test_modelled_classes_are_the_five_fao_target_classes():
    assert landuse.is_modelled(CLASSES).tolist() == [False, False, True, True, False, True, True, True]


def test_dpm_rpm_ratio_by_class():
    np.testing.assert_array_equal(
        landuse.dpm_rpm_ratio(CLASSES), [np.nan, np.nan, 1.44, 0.67, 0.25, 0.67, 1.44, 1.44]
    )


def test_npp_coefficient_by_class():
    np.testing.assert_array_equal(
        landuse.npp_coefficient(CLASSES), [np.nan, np.nan, 0.53, 0.72, 0.88, 0.72, 0.53, 0.53]
    )


def test_paddy_rate_factor_and_scenario_group():
    assert landuse.rate_factor(CLASSES).tolist() == [1, 1, 1, 1, 1, 1, 1, 0.4]
    assert landuse.scenario_group(CLASSES).tolist() == [
        "", "", "crops", "grass", "", "grass", "crops", "paddy"
    ]
