"""Bad input, fuzzed with hypothesis at the public API: a clear error or a masked pixel, never a crash
inside numba and never a wrong finite number.

* ``run_phases`` (both schemes) and the pipeline's ``compute_tile`` (what a worker runs on a tile read
  from the input cube): per pixel, NaN / ±inf / negative / out-of-range values give a reason code
  and NaN in every layer; modelled pixels have all layers finite and do not depend on the bad ones.
* ``rothc.simulate`` / ``equilibrium`` / ``equilibrium_input``: a non-finite or out-of-range value,
  a wrong shape or a non-numeric dtype raises :class:`InputValidationError` naming the argument.
* configuration: unknown ISO3 codes and malformed regions are rejected.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gsocseq.config import RunConfig
from gsocseq.errors import InputValidationError
from gsocseq.model import rothc
from gsocseq.model.phases import PhaseConfig, run_phases
from gsocseq.pipeline.tile import compute_tile
from gsocseq.vocabulary import LAYER_NAMES, Reason

MONTHS = 12 * 40
BAD = [np.nan, np.inf, -np.inf, -1.0, -1e30]
SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _valid_pixels(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` valid cropland pixels (t C/ha, %, °C, mm/month, share)."""
    return {
        "soc": rng.uniform(20, 80, n), "clay": rng.uniform(5, 60, n),
        "land_use": np.full(n, 2, dtype=np.uint8),
        "tmp": rng.uniform(5, 25, (MONTHS, n)), "prec": rng.uniform(20, 120, (MONTHS, n)),
        "pet": rng.uniform(20, 120, (MONTHS, n)), "cover": rng.uniform(0, 1, (12, n)),
    }


@st.composite
def corrupted(draw: Any) -> tuple[dict[str, np.ndarray], set[int]]:
    """Valid pixels of which some get one bad value in one input (returns inputs, bad indices)."""
    n = draw(st.integers(2, 6))
    inputs = _valid_pixels(n, np.random.default_rng(draw(st.integers(0, 2**16))))
    bad: set[int] = set()
    for _ in range(draw(st.integers(0, n))):
        pixel = draw(st.integers(0, n - 1))
        name = draw(st.sampled_from(["soc", "clay", "tmp", "prec", "pet", "cover"]))
        huge = [1e30, 2e4] if name in ("prec", "pet", "soc") else [1e30]
        value = draw(st.sampled_from(BAD + huge + ([101.0] if name == "clay" else [])
                                     + ([1.5] if name == "cover" else [])))
        if name in ("tmp", "pet") and value == -1.0:
            value = -100.0  # −1 °C is a valid temperature, −1 mm a month of dew
        if inputs[name].ndim == 1:
            inputs[name][pixel] = value
        else:
            inputs[name][draw(st.integers(0, inputs[name].shape[0] - 1)), pixel] = value
        bad.add(pixel)
    return inputs, bad


#: Layers computed without the uncertainty bracket runs (the others are NaN with uncertainty off).
CENTRAL = [n for n in LAYER_NAMES if "Uncertainty" not in n]


def _check_masked_and_modelled(layers: dict[str, np.ndarray], reason: np.ndarray, bad: set[int]
                               ) -> None:
    for i in range(reason.size):
        values = np.array([layers[name][i] for name in LAYER_NAMES])
        if i in bad:
            assert reason[i] != Reason.OK, f"pixel {i} with a bad input was modelled"
        if reason[i] == Reason.OK:
            central = np.array([layers[name][i] for name in CENTRAL])
            assert np.isfinite(central).all(), f"modelled pixel {i} has a non-finite layer"
        else:
            assert np.isnan(values).all(), f"masked pixel {i} (reason {reason[i]}) has a value"


@pytest.mark.parametrize("scheme", ["exact", "fao"])
@SETTINGS
@given(case=corrupted())
def test_run_phases_masks_bad_pixels_and_keeps_the_others(
    scheme: str, case: tuple[dict[str, np.ndarray], set[int]]
) -> None:
    inputs, bad = case
    config = PhaseConfig(scheme=scheme, uncertainty=False)
    result = run_phases(**inputs, config=config)
    _check_masked_and_modelled(result.layers, result.reason, bad)
    if scheme == "exact":  # the documented codes (fao has its own filters, e.g. Euler stability)
        for i in bad:
            assert result.reason[i] in (Reason.MISSING_INPUT, Reason.INPUT_OUT_OF_RANGE,
                                        Reason.SPINUP_FAILED), (i, result.reason[i])
    good = np.array(sorted(set(range(inputs["soc"].size)) - bad), dtype=int)
    if good.size:  # the bad pixels change nothing for the good ones
        alone = run_phases(**{k: v[..., good] for k, v in inputs.items()}, config=config)
        for name in LAYER_NAMES:
            np.testing.assert_array_equal(alone.layers[name], result.layers[name][good])


@SETTINGS
@given(case=corrupted())
def test_compute_tile_on_cube_arrays_masks_bad_pixels(
    case: tuple[dict[str, np.ndarray], set[int]]
) -> None:
    inputs, bad = case
    n = inputs["soc"].size  # a 1 × n tile in the cube layout: (ny, nx) and (ny, nx, months)
    arrays = {k: (v.T[None, :, :] if v.ndim == 2 else v[None, :]).astype(
        np.uint8 if k == "land_use" else np.float32) for k, v in inputs.items()}
    arrays["reason"] = np.zeros((1, n), dtype=np.uint8)
    layers, reason = compute_tile(arrays, PhaseConfig(uncertainty=False))
    assert reason.shape == (1, n) and all(v.dtype == np.float32 for v in layers.values())
    _check_masked_and_modelled({k: v[0] for k, v in layers.items()}, reason[0], bad)


@pytest.mark.parametrize(
    "change",
    [{"soc": np.zeros((2, 3))}, {"tmp": np.zeros((MONTHS - 1, 3))}, {"soc": np.array(["a"] * 3)},
     {"cover": np.zeros((11, 3))}, {"clay": np.zeros(4)}],
)
def test_run_phases_rejects_wrong_shapes_and_dtypes(change: dict[str, np.ndarray]) -> None:
    inputs = {**_valid_pixels(3, np.random.default_rng(0)), **change}
    with pytest.raises(InputValidationError, match=next(iter(change))):
        run_phases(**inputs, config=PhaseConfig(uncertainty=False))


def _rothc_inputs(n: int) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    return {
        "tmp": rng.uniform(5, 25, (12, n)), "prec": rng.uniform(20, 120, (12, n)),
        "pet": rng.uniform(20, 120, (12, n)), "cover": np.ones((12, n)),
        "fym": np.zeros((12, n)), "dpm_rpm": np.full(n, 1.44), "clay": np.full(n, 20.0),
        "depth": np.full(n, 30.0),
    }


def _call_rothc(api: str, kw: dict[str, Any]) -> object:
    """Build the site from ``kw`` and call ``rothc.<api>`` with the rest."""
    keys = ("tmp", "prec", "pet", "cover", "dpm_rpm", "clay", "depth")
    site = rothc.site(**{k: kw.pop(k) for k in keys})
    if api == "simulate":
        return rothc.simulate(kw.pop("pools"), kw.pop("smd"), site, **kw)
    if api == "equilibrium":
        return rothc.equilibrium(kw.pop("iom"), site, **kw)
    return rothc.equilibrium_input(kw.pop("soc"), site, **kw)


@SETTINGS
@given(name=st.sampled_from(["tmp", "prec", "pet", "cover", "fym", "dpm_rpm", "clay", "depth",
                             "soc", "c_inp", "iom", "pools", "smd"]),
       value=st.sampled_from(BAD), where=st.integers(0, 2),
       api=st.sampled_from(["simulate", "equilibrium", "equilibrium_input"]))
def test_rothc_rejects_bad_values_with_a_clear_error(name: str, value: float, where: int, api: str
                                                     ) -> None:
    n = 3
    kw = _rothc_inputs(n)
    extra = {"simulate": {"pools": np.full((n, 5), 10.0), "smd": np.zeros(n),
                          "c_inp": np.full((12, n), 0.2)},
             "equilibrium": {"iom": np.full(n, 2.0), "c_inp": np.full((12, n), 0.2)},
             "equilibrium_input": {"soc": np.full(n, 50.0)}}[api]
    kw.update(extra)
    if name not in kw or (value == -1.0 and name == "tmp"):
        return  # argument of another function / a valid value
    if (name == "smd" and np.isfinite(value)) or (name == "pet" and value == -1.0):
        return  # a valid value (deficits are ≤ 0; dew: pet slightly < 0)
    arr = np.array(kw[name], dtype=np.float64)
    arr.reshape(-1)[where] = value
    kw[name] = arr
    with pytest.raises(InputValidationError, match=name if name != "dpm_rpm" else "dpm"):
        _call_rothc(api, kw)


def test_rothc_rejects_wrong_shape_and_dtype() -> None:
    kw = _rothc_inputs(3)
    with pytest.raises(InputValidationError, match="tmp"):
        _call_rothc("equilibrium_input", {**kw, "soc": np.full(3, 50.0), "tmp": np.zeros((12, 2))})
    with pytest.raises(InputValidationError, match="clay"):
        _call_rothc("equilibrium_input",
                    {**kw, "soc": np.full(3, 50.0), "clay": np.array(["x", "y", "z"])})


@pytest.mark.parametrize("region", ["../ARG", "AR", "ARGE", "s3://b/x", "1,2,3", "10,0,5,5",
                                    "nan,0,1,1", ""])
def test_malformed_regions_are_rejected(region: str) -> None:
    with pytest.raises(ValueError, match="region"):
        RunConfig(region=region, out="memory://x")
