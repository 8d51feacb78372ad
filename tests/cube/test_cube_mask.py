"""Reason codes of the modelled-pixel mask: precedence and ranges."""

from __future__ import annotations

import numpy as np

from gsocseq.cube.mask import reason_codes
from gsocseq.vocabulary import Reason


def _fields(n: int = 6) -> dict[str, np.ndarray]:
    return {
        "soc": np.full((1, n), 50.0),
        "clay": np.full((1, n), 25.0),
        "tmp": np.full((1, n, 24), 15.0),
        "prec": np.full((1, n, 24), 70.0),
        "pet": np.full((1, n, 24), 90.0),
        "cover": np.full((1, n, 12), 0.6),
    }


def test_each_reason_and_precedence() -> None:
    f = _fields()
    inside = np.array([[False, True, True, True, True, True]])
    land_use = np.array([[2, 4, 0, 3, 5, 12]], dtype=np.uint8)
    f["tmp"][0, 3, 7] = np.nan  # one missing month → missing input
    f["clay"][0, 4] = 130.0  # impossible clay → out of range
    f["soc"][0, 0] = np.nan  # outside the region wins over missing
    f["soc"][0, 1] = np.nan  # tree cover wins over missing
    reason = reason_codes(inside, land_use, f)
    assert reason.dtype == np.uint8
    np.testing.assert_array_equal(
        reason[0],
        [
            Reason.OUTSIDE_REGION,
            Reason.NOT_AGRICULTURAL,
            Reason.MISSING_INPUT,
            Reason.MISSING_INPUT,
            Reason.INPUT_OUT_OF_RANGE,
            Reason.OK,
        ],
    )


def test_missing_beats_out_of_range_and_all_modelled_classes_are_ok() -> None:
    f = _fields(5)
    f["prec"][0, 0, 0] = -5.0
    f["pet"][0, 0, 1] = np.nan
    reason = reason_codes(np.ones((1, 5), bool), np.array([[2, 3, 5, 12, 13]], np.uint8), f)
    np.testing.assert_array_equal(reason[0], [Reason.MISSING_INPUT] + [Reason.OK] * 4)
