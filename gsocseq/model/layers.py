"""The 29 product layers from a scheme's stocks: one derivation for both schemes.

Owns :class:`Stocks` (what a scheme hands the procedure: T0 and the 2040 stocks per scenario, with
the bracket stocks) and :func:`product_layers` (changes, rates, relative gains, uncertainties).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gsocseq.model.uncertainty import uncertainty_layers
from gsocseq.vocabulary import LAYERS, SCENARIO_TABLE, SCENARIOS, SSM_LABELS


class Stocks(NamedTuple):
    """SOC stocks (t C/ha, float64 ``(n,)``) of a block of pixels; NaN where not computed."""

    t0: np.ndarray
    """Stock at the end of the warm-up (2020)."""
    finals: dict[str, np.ndarray]
    """Stock after the forward years per scenario key (``bau``, ``ssm_low``, ...)."""
    brackets: dict[str, dict[str, np.ndarray]] | None = None
    """Per bracket (``min``, ``max``): ``t0``, ``bau``, ``ssm_med`` stocks; None without brackets."""


def product_layers(stocks: Stocks, forward_years: int) -> dict[str, np.ndarray]:
    """Return the 29 layers (float64, in FAO order) from ``stocks``; rates per ``forward_years``.

    Uncertainty layers are NaN when ``stocks.brackets`` is None.
    """
    t0 = stocks.t0
    finals = {SCENARIO_TABLE[k].product: stocks.finals[k] for k in SCENARIOS}
    years = float(forward_years)
    out: dict[str, np.ndarray] = {"T0": t0}
    for scen, final in finals.items():
        out[f"finalSOC_{scen}"] = final
        out[f"AbsDiff_{scen}"] = final - t0
        out[f"ASR_{scen}"] = out[f"AbsDiff_{scen}"] / years
    for scen in SSM_LABELS:
        out[f"RelDiff_{scen}"] = finals[scen] - finals["BAU"]
        out[f"RSR_{scen}"] = out[f"RelDiff_{scen}"] / years
    if stocks.brackets is not None:
        low, high = stocks.brackets["min"], stocks.brackets["max"]
        out.update(
            uncertainty_layers(
                t0=t0, t0_min=low["t0"], t0_max=high["t0"],
                bau=finals["BAU"], bau_min=low["bau"], bau_max=high["bau"],
                ssm_med=finals["SSM2"], ssm_med_min=low["ssm_med"], ssm_med_max=high["ssm_med"],
                ssm=(finals["SSM1"], finals["SSM2"], finals["SSM3"]),
            )
        )
    else:
        n = t0.shape[0]
        out.update({name: np.full(n, np.nan) for name in LAYERS if name.endswith("_Uncertainty")})
    return {name: out[name] for name in LAYERS}


class SchemeOutput(NamedTuple):
    """What a scheme returns for a block of valid pixels."""

    stocks: Stocks
    reason: np.ndarray
    """``uint8 (n,)``: the scheme's own reason per pixel (0 where it has none); it wins over
    ``NON_FINITE_RESULT``, which the procedure sets from the layers."""
    diagnostics: dict[str, np.ndarray]
    """float64 ``(n,)`` per name of the scheme's ``diagnostic_names(config)``."""
    quality: dict[str, np.ndarray] = {}
    """uint8 ``(n,)`` per quality layer of the scheme (``vocabulary.SCHEME_QUALITY_LAYERS``)."""
