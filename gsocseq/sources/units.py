"""Unit normalisation: native units of a source → the cube's units (:mod:`gsocseq.cube.schema`).

Conversions are ``value * scale + offset`` (``mm/day`` → ``mm/month`` also needs the month length,
see :func:`convert`). Unknown or incompatible units raise :class:`InputValidationError`.
"""

from __future__ import annotations

import numpy as np

from gsocseq.errors import InputValidationError

_ALIASES: dict[str, str] = {
    "tc/ha": "t C/ha",
    "t/ha": "t C/ha",
    "mg/ha": "t C/ha",
    "mgc/ha": "t C/ha",
    "t c ha-1": "t C/ha",
    "tc ha-1": "t C/ha",
    "t ha-1": "t C/ha",
    "kg/m2": "kg/m2",
    "kg/m^2": "kg/m2",
    "kg m-2": "kg/m2",
    "kgc/m2": "kg/m2",
    "kg c m-2": "kg/m2",
    "g/kg": "g/kg",
    "g kg-1": "g/kg",
    "%": "%",
    "percent": "%",
    "degc": "degC",
    "c": "degC",
    "celsius": "degC",
    "degrees_celsius": "degC",
    "°c": "degC",
    "degrees celsius": "degC",
    "deg c": "degC",
    "k": "K",
    "kelvin": "K",
    "mm": "mm/month",
    "mm/month": "mm/month",
    "mm month-1": "mm/month",
    "mm/day": "mm/day",
    "mm day-1": "mm/day",
    "mm/d": "mm/day",
    "1": "1",
    "": "",
    "fraction": "1",
    "ratio": "1",
}

#: (native, cube) → (scale, offset); mm/day → mm/month is handled in :func:`convert`.
_LINEAR: dict[tuple[str, str], tuple[float, float]] = {
    ("t C/ha", "t C/ha"): (1.0, 0.0),
    ("kg/m2", "t C/ha"): (10.0, 0.0),
    ("%", "%"): (1.0, 0.0),
    ("g/kg", "%"): (0.1, 0.0),
    ("degC", "degC"): (1.0, 0.0),
    ("K", "degC"): (1.0, -273.15),
    ("mm/month", "mm/month"): (1.0, 0.0),
    ("1", "1"): (1.0, 0.0),
    ("%", "1"): (0.01, 0.0),
}


def canonical(units: str) -> str:
    """Return the canonical spelling of a unit string (``"kg m-2"`` → ``"kg/m2"``)."""
    key = " ".join(str(units).strip().lower().split())
    if key in _ALIASES:
        return _ALIASES[key]
    compact = key.replace(" ", "")
    return _ALIASES.get(compact, str(units).strip())


def native_units(declared: str, found: str | None, where: str) -> str:
    """Decide a source's native units from the spec (``declared``) and the file's own metadata.

    The file wins when the spec is silent; a disagreement is an error (``where`` names the source
    and URL), because silently trusting either could make the cube wrong by a factor of 10.
    """
    d, f = canonical(declared), canonical(found or "")
    if d and f and d != f:
        raise InputValidationError(
            f"{where}: file declares units {found!r} but the sources config declares {declared!r}; "
            f"fix the config (units = {found!r} converts to cube units) or the file"
        )
    return d or f


def convert(
    values: np.ndarray,
    native: str,
    target: str,
    where: str,
    days_in_month: np.ndarray | None = None,
) -> np.ndarray:
    """Convert ``values`` from ``native`` to ``target`` units (float64 result).

    ``days_in_month`` (broadcastable to ``values``) is needed for ``mm/day`` → ``mm/month``.
    """
    n, t = canonical(native), canonical(target)
    v = np.asarray(values, dtype=np.float64)
    if (n, t) == ("mm/day", "mm/month"):
        if days_in_month is None:
            raise InputValidationError(f"{where}: mm/day → mm/month needs the month lengths")
        return v * days_in_month
    if (n, t) not in _LINEAR:
        known = {a for a, b in _LINEAR if b == t} | ({"mm/day"} if t == "mm/month" else set())
        raise InputValidationError(
            f"{where}: cannot convert units {native!r} to {target!r}; supported: {sorted(known)}"
        )
    scale, offset = _LINEAR[(n, t)]
    return v * scale + offset if (scale, offset) != (1.0, 0.0) else v
