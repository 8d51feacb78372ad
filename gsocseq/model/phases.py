"""The GSOCseq procedure on plain arrays: checks, pixel classification, the schemes, the 29 layers.

Owns :func:`run_phases` (the one entry point of the model) and :class:`PhaseResult`. The procedure
is the same for both schemes: validate the configuration and the pixels
(:mod:`~gsocseq.model.inputs`), classify pixels, run the scheme (``exact``:
:mod:`~gsocseq.model.exact`, ``fao``: :mod:`~gsocseq.model.fao_phases`) on blocks of valid pixels,
derive the 29 layers (:mod:`~gsocseq.model.layers`), give every failed pixel its reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType

import numpy as np

from gsocseq.model import exact, fao_phases
from gsocseq.model.inputs import PhaseConfig, Pixels, classify_pixels
from gsocseq.model.layers import product_layers
from gsocseq.vocabulary import LAYERS, QUALITY_NODATA, SCHEME_QUALITY_LAYERS, Reason

__all__ = ["BLOCK_SIZE", "SCHEMES", "PhaseConfig", "PhaseResult", "classify_pixels", "run_phases"]

BLOCK_SIZE: int = 4096
"""Pixels processed together; bounds the (months × pixels) temporaries to a few hundred MB."""

#: Scheme name → module with ``run(pixels, config)``, ``diagnostic_names(config)`` and optionally
#: ``run_columns(pixels, idx, config)`` (``run`` on pixels ``idx``, without their block copy) and
#: ``DIAGNOSE_MASKED`` (keep the diagnostics of pixels the scheme masked).
SCHEMES: dict[str, ModuleType] = {"exact": exact, "fao": fao_phases}


@dataclass
class PhaseResult:
    """Output of :func:`run_phases` for ``n`` pixels."""

    layers: dict[str, np.ndarray]
    """The 29 product layers of ``vocabulary.LAYERS`` → float32 ``(n,)``, NaN where not modelled."""
    reason: np.ndarray
    """``uint8 (n,)`` :class:`~gsocseq.vocabulary.Reason` per pixel, 0 = modelled."""
    diagnostics: dict[str, np.ndarray] = field(default_factory=dict)
    """float64 ``(n,)`` per name of the scheme's ``diagnostic_names`` (NaN where not modelled)."""
    quality: dict[str, np.ndarray] = field(default_factory=dict)
    """``uint8 (n,)`` per quality layer of the scheme (``vocabulary.SCHEME_QUALITY_LAYERS``), kept
    on pixels the scheme masked (they explain why), ``QUALITY_NODATA`` where it did not run."""


def run_phases(
    *,
    soc: np.ndarray,
    clay: np.ndarray,
    land_use: np.ndarray,
    tmp: np.ndarray,
    prec: np.ndarray,
    pet: np.ndarray,
    cover: np.ndarray,
    config: PhaseConfig = PhaseConfig(),
) -> PhaseResult:
    """Run the GSOCseq procedure per pixel and return the 29 layers, reason codes and diagnostics.

    Parameters
    ----------
    soc, clay, land_use
        ``(n,)``: SOC stock 0–30 cm in 2000 (t C/ha), clay (%), FAO land-use class (integer).
    tmp, prec, pet
        ``(12·(spinup_years + warmup_years), n)``, January 1981 first: mean air temperature (°C),
        precipitation (mm/month), potential evapotranspiration (mm/month).
    cover
        ``(12, n)`` vegetated share of each calendar month (0–1).
    config
        Procedure settings, among them the scheme (``exact`` or ``fao``).

    Returns
    -------
    PhaseResult
        Stocks in t C/ha, rates in t C/ha/yr, uncertainties in %. Pixels not modelled have NaN in
        every layer and diagnostic and a reason code: ``NOT_AGRICULTURAL`` (class not 2, 3, 5, 12,
        13), ``MISSING_INPUT`` (NaN/inf in any input month), ``INPUT_OUT_OF_RANGE`` (outside
        :data:`gsocseq.vocabulary.PLAUSIBLE_RANGES`), then the scheme's own (``SPINUP_FAILED``;
        ``fao``: ``FAO_TEMPERATURE_UNDEFINED``, ``FAO_EULER_UNSTABLE``, ``FAO_IN_MODEL_FILTER``)
        and ``NON_FINITE_RESULT``. Masked pixels never affect the others.

    Raises
    ------
    InputValidationError
        An argument has a wrong shape or dtype, or ``config`` an invalid value.
    """
    config.check()
    scheme = SCHEMES[config.scheme]
    px = Pixels.checked(config, soc=soc, clay=clay, land_use=land_use, tmp=tmp, prec=prec,
                        pet=pet, cover=cover)
    n = px.n
    reason = classify_pixels(soc=px.soc, clay=px.clay, land_use=px.land_use, tmp=px.tmp,
                             prec=px.prec, pet=px.pet, cover=px.cover)
    values = {name: np.full(n, np.nan) for name in LAYERS}
    diagnostics = {name: np.full(n, np.nan) for name in scheme.diagnostic_names(config)}
    quality = {name: np.full(n, QUALITY_NODATA, dtype=np.uint8)
               for name in SCHEME_QUALITY_LAYERS[config.scheme]}
    needed = [name for name in LAYERS if config.uncertainty or not name.endswith("_Uncertainty")]
    todo = np.flatnonzero(reason == Reason.OK)
    for start in range(0, todo.size, BLOCK_SIZE):
        idx = todo[start : start + BLOCK_SIZE]
        if hasattr(scheme, "run_columns"):  # reads the block's columns itself, in one pass
            out = scheme.run_columns(px, idx, config)
        else:
            out = scheme.run(px.block(idx), config)
        layers = product_layers(out.stocks, config.forward_years)
        finite = np.all([np.isfinite(layers[name]) for name in needed], axis=0)
        block_reason = np.where(finite, Reason.OK, Reason.NON_FINITE_RESULT).astype(np.uint8)
        block_reason[out.reason != Reason.OK] = out.reason[out.reason != Reason.OK]
        reason[idx] = block_reason
        for name, arr in layers.items():
            values[name][idx] = arr
        for name, arr in out.diagnostics.items():
            diagnostics[name][idx] = arr
        for name, arr in out.quality.items():
            quality[name][idx] = arr
    masked = reason != Reason.OK
    keep = getattr(scheme, "DIAGNOSE_MASKED", False)  # fao: diagnostics explain its masks
    for arr in (*values.values(), *(() if keep else diagnostics.values())):
        arr[masked] = np.nan
    return PhaseResult(
        layers={name: values[name].astype(np.float32) for name in LAYERS}, reason=reason,
        diagnostics=diagnostics, quality=quality,
    )
