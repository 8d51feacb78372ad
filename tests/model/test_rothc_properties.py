"""Model invariants of the RothC kernels, checked on hypothesis-generated inputs."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gsocseq.model import reference, rothc

#: Keyword arguments that make up a :class:`rothc.Site`.
SITE = ("tmp", "prec", "pet", "cover", "dpm_rpm", "clay", "depth", "rate_modifier", "evap_factor")


def _call(fn, *args, validate=True, **kw):
    """Call ``fn(*args, site, **rest)`` with the site built (and checked) from the keywords."""
    site = rothc.site(**{k: kw.pop(k) for k in SITE if k in kw}, validate=validate)
    return fn(*args, site, validate=validate, **kw)

SETTINGS = settings(max_examples=40, deadline=None)


def _floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@st.composite
def runs(draw, max_pixels: int = 6, max_months: int = 30):
    """Draw a start state and monthly inputs for a small block of pixels."""
    n = draw(st.integers(1, max_pixels))
    nm = draw(st.integers(1, max_months))

    def monthly(lo, hi):
        return draw(arrays(np.float64, (nm, n), elements=_floats(lo, hi)))

    def pixel(lo, hi):
        return draw(arrays(np.float64, (n,), elements=_floats(lo, hi)))

    sparse = arrays(np.bool_, (nm, n))
    inputs = {
        "tmp": monthly(-30, 40),
        "prec": monthly(0, 300),
        "pet": monthly(-2, 250),
        "cover": monthly(0, 1),
        "c_inp": monthly(0, 3) * draw(sparse),
        "fym": monthly(0, 3) * draw(sparse),
        "dpm_rpm": monthly(0, 5) if draw(st.booleans()) else pixel(0, 5),
        "clay": pixel(0, 100),
        "depth": pixel(1, 100),
        "rate_modifier": pixel(0, 2),
        "evap_factor": draw(st.sampled_from([0.75, 1.0])),
    }
    pools = draw(arrays(np.float64, (n, 5), elements=_floats(0, 300)))
    # a deficit state lies in [SMDmax, 0]
    smd = pixel(0, 1) * rothc.smd_max(inputs["clay"], inputs["depth"])
    return pools, smd, inputs


@SETTINGS
@given(runs())
def test_pools_stay_non_negative_and_iom_constant(run):
    pools0, smd0, inp = run
    pools, smd = _call(rothc.simulate, pools0, smd0, **inp, monthly=True)
    assert np.all(pools >= 0.0)
    assert np.all(pools[:, :, 4] == pools0[:, 4])
    assert np.all(smd <= 0.0)


@SETTINGS
@given(runs())
def test_monthly_mass_balance(run):
    """ΔSOC = plant input + manure - CO₂ in every month."""
    pools0, smd0, inp = run
    pools, _, co2 = _call(rothc.simulate, pools0, smd0, **inp, monthly=True, return_co2=True)
    soc = np.concatenate([pools0.sum(axis=1)[None], pools.sum(axis=2)])
    assert np.all(co2 >= 0.0)
    balance = np.diff(soc, axis=0) - (inp["c_inp"] + inp["fym"] - co2)
    scale = 1.0 + soc[:-1] + inp["c_inp"] + inp["fym"]
    assert np.all(np.abs(balance) <= 1e-13 * scale)


@SETTINGS
@given(runs(), _floats(0.01, 2.0))
def test_more_input_gives_more_soc(run, extra):
    pools0, smd0, inp = run
    low, _ = _call(rothc.simulate, pools0, smd0, **inp, monthly=True)
    more = dict(inp, c_inp=inp["c_inp"] + extra / 12.0)
    high, _ = _call(rothc.simulate, pools0, smd0, **more, monthly=True)
    assert np.all(high.sum(axis=2) > low.sum(axis=2))
    assert np.all(high >= low)  # every pool, every month


@SETTINGS
@given(runs(max_pixels=8), st.data())
def test_a_pixel_does_not_depend_on_the_others(run, data):
    pools0, smd0, inp = run
    n = pools0.shape[0]
    i = data.draw(st.integers(0, n - 1))
    whole, smd_whole = _call(rothc.simulate, pools0, smd0, **inp)

    def take(v):
        return v[:, i:i + 1] if np.ndim(v) == 2 else (v[i:i + 1] if np.ndim(v) == 1 else v)

    alone, smd_alone = _call(rothc.simulate, pools0[i:i + 1], smd0[i:i + 1],
                                      **{k: take(v) for k, v in inp.items()})
    np.testing.assert_array_equal(alone[0], whole[i])
    np.testing.assert_array_equal(smd_alone[0], smd_whole[i])
    # …nor on where it sits in a (multi-block) array
    big = 300
    tile = {k: np.repeat(take(v), big, axis=-1) if np.ndim(v) else v for k, v in inp.items()}
    many, _ = _call(rothc.simulate, np.repeat(pools0[i:i + 1], big, axis=0),
                             np.repeat(smd0[i:i + 1], big), **tile)
    assert np.all(many == alone[0])


@settings(max_examples=15, deadline=None)
@given(runs(max_pixels=2, max_months=18))
def test_kernel_matches_reference(run):
    pools0, smd0, inp = run
    pools, smd = _call(rothc.simulate, pools0, smd0, **inp, monthly=True)
    names = ("tmp", "prec", "pet", "cover", "c_inp", "fym")
    for i in range(pools0.shape[0]):
        dr = inp["dpm_rpm"]
        state = reference.State(*pools0[i], smd=smd0[i])
        months = [
            reference.Month(*(inp[k][m, i] for k in names),
                            dr[m, i] if dr.ndim == 2 else dr[i])
            for m in range(inp["tmp"].shape[0])
        ]
        out = reference.run(state, months, inp["clay"][i], inp["depth"][i],
                            inp["evap_factor"], inp["rate_modifier"][i])
        ref = np.array([[s.dpm, s.rpm, s.bio, s.hum, s.iom] for s, _ in out])
        # 1e-12 relative to the pixel's carbon: a pool fed by the decay of a much larger one
        # inherits that pool's rounding
        scale = max(1.0, ref[0].sum(), pools0[i].sum())
        np.testing.assert_allclose(pools[:, i], ref, rtol=1e-12, atol=1e-12 * scale)
        np.testing.assert_allclose(smd[:, i], [s.smd for s, _ in out], rtol=1e-12, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(runs(max_pixels=4, max_months=1), _floats(0.1, 10.0))
def test_equilibrium_is_affine_in_the_input(run, cin):
    """Equilibrium SOC at input cin equals the per-unit part times cin plus the fixed part."""
    _, _, inp = run
    n = inp["clay"].shape[0]
    rng = np.random.default_rng(int(cin * 1000))
    year = {k: np.repeat(v, 12, axis=0) if np.ndim(v) == 2 else v for k, v in inp.items()}
    year["tmp"] = year["tmp"] + rng.uniform(-5, 5, (12, n))  # some months warmer, some colder
    year["tmp"][6] = 15.0  # at least one month decomposes…
    year["rate_modifier"] = np.maximum(year["rate_modifier"], 0.1)  # …at a non-zero rate
    year.pop("c_inp")
    parts = _call(rothc.equilibrium_parts, **year)
    eq, _ = _call(rothc.equilibrium, np.zeros(n), c_inp=np.full((12, n), cin / 12.0), **year)
    # atol: a denormal DPM/RPM ratio (5e-324) leaves ~1e-322 t C/ha of DPM on one side only
    np.testing.assert_allclose(eq[:, :4], parts.p_fixed + cin * parts.p_unit, rtol=1e-9, atol=1e-12)
    assert np.all(parts.p_unit >= 0)
    assert np.all(parts.p_unit.sum(axis=1) > 0)
