"""Backend of ``gsocseq fao-points``: FAO's per-point tables in, FAO's spin-up/warm-up/forward out.

Reads the tables FAO's stack scripts extract at the target points (reference §1.1–1.3; layout of
``tests/data/fao-sample/ARG_PE/points/``, ``.csv`` or ``.csv.xz``) and runs the three RothC scripts
with :mod:`gsocseq.model.fao_phases`, vectorised over all points. Writes ``spinup.csv``,
``warmup.csv`` and ``forward.csv`` with ``FID, x, y`` and FAO's column names; ``NA`` marks a missing
value. A point the scripts skip keeps ``SOC_FAO = 0`` (spin-up, warm-up) / ``SOC_t0 = 0``
(forward) and ``NA`` elsewhere.

Input columns:

- spin-up and forward: ``FID, x, y, SOC, clay, T1..T12, P1..P12, PET1..PET12, DR, LU,
  Cov1..Cov12`` (°C, mm/month, cover factor 0.6–1.0);
- warm-up: ``FID, x, y, SOC, clay, Cov1..Cov12, LU_y1.., DR_y1.., T_yYY_mMM, P_yYY_mMM,
  PET_yYY_mMM, NPP_81_00`` (``NPP_81_00_MIN``/``_MAX`` are read by the scripts but unused: the
  brackets divide by the central mean NPP).

Rows are matched on ``FID``. A missing ``LU`` is read as class 0 (no pools, rate factor 1).
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import pandas as pd

from gsocseq.errors import InputValidationError
from gsocseq.model import fao_phases

MONTHS = range(1, 13)
ID_COLUMNS: tuple[str, ...] = ("FID", "x", "y")
CLIMATE_COLUMNS: tuple[str, ...] = (
    *(f"T{m}" for m in MONTHS), *(f"P{m}" for m in MONTHS), *(f"PET{m}" for m in MONTHS)
)
COVER_COLUMNS: tuple[str, ...] = tuple(f"Cov{m}" for m in MONTHS)
STACK_COLUMNS: tuple[str, ...] = (
    *ID_COLUMNS, "SOC", "clay", *CLIMATE_COLUMNS, "DR", "LU", *COVER_COLUMNS
)
"""Columns of the spin-up and forward tables."""
OUTPUT_FILES: dict[str, str] = {
    "spinup": "spinup.csv", "warmup": "warmup.csv", "forward": "forward.csv"
}


def read_table(path: str | Path, required: tuple[str, ...] = ID_COLUMNS) -> pd.DataFrame:
    """Read a points table (``.csv`` or compressed ``.csv.xz``/``.gz``) indexed by ``FID``."""
    path = Path(path)
    if not path.is_file():
        raise InputValidationError(f"points table {path} does not exist")
    table = pd.read_csv(path, na_values=["NA"])
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise InputValidationError(
            f"{path.name}: missing columns {missing[:5]}{'…' if len(missing) > 5 else ''}; "
            "expected the layout of FAO's stack scripts (reference §1.1–1.3)"
        )
    if table["FID"].duplicated().any():
        raise InputValidationError(f"{path.name}: duplicated FID values")
    return table.set_index("FID", drop=False)


def _block(table: pd.DataFrame, columns: list[str] | tuple[str, ...]) -> np.ndarray:
    """Return ``table[columns]`` as float64 ``(len(columns), n)``."""
    return table.loc[:, list(columns)].to_numpy(dtype=np.float64).T


def _land_use(values: np.ndarray) -> np.ndarray:
    return np.nan_to_num(values, nan=0.0).astype(np.int16)


def _warmup_years(table: pd.DataFrame) -> int:
    years = sum(1 for c in table.columns if c.startswith("T_y") and c.endswith("_m01"))
    if years == 0:
        raise InputValidationError("warm-up table has no T_yYY_m01 columns")
    return years


def _warmup_climate(table: pd.DataFrame, var: str, years: int) -> np.ndarray:
    cols = [f"{var}_y{y:02d}_m{m:02d}" for y in range(1, years + 1) for m in MONTHS]
    missing = [c for c in cols if c not in table.columns]
    if missing:
        raise InputValidationError(f"warm-up table: missing columns {missing[:5]}")
    return _block(table, cols)


def _aligned(table: pd.DataFrame, fids: pd.Index, name: str) -> pd.DataFrame:
    if set(table.index) != set(fids):
        raise InputValidationError(f"{name} table has other FIDs than the spin-up table")
    return table.loc[fids]


def run_fao_points(
    spinup_csv: str | Path,
    warmup_csv: str | Path,
    forward_csv: str | Path,
    out_dir: str | Path,
    *,
    spinup_variant: str = "analytical",
    ssm_factors: tuple[float, float, float] = (1.05, 1.10, 1.20),
) -> dict[str, Path]:
    """Run FAO's spin-up, warm-up and forward scripts on point tables; return the written files.

    ``spinup_variant`` is ``"analytical"`` (default) or ``"equilibrium"``. Returns
    ``{"spinup": …/spinup.csv, "warmup": …/warmup.csv, "forward": …/forward.csv}``.
    """
    spin_t = read_table(spinup_csv, STACK_COLUMNS)
    fwd_t = _aligned(read_table(forward_csv, STACK_COLUMNS), spin_t.index, "forward")
    warm_t = read_table(warmup_csv, (*ID_COLUMNS, "SOC", "clay", *COVER_COLUMNS, "NPP_81_00"))
    warm_t = _aligned(warm_t, spin_t.index, "warm-up")
    years = _warmup_years(warm_t)
    clim = {v: _block(spin_t, [f"{v}{m}" for m in MONTHS]) for v in ("T", "P", "PET")}
    spin = fao_phases.spin_up(
        soc=spin_t["SOC"].to_numpy(np.float64), clay=spin_t["clay"].to_numpy(np.float64),
        tmp=clim["T"], prec=clim["P"], pet=clim["PET"],
        cover_factor=_block(spin_t, COVER_COLUMNS), dpm_ratio=spin_t["DR"].to_numpy(np.float64),
        land_use=_land_use(spin_t["LU"].to_numpy(np.float64)), variant=spinup_variant,
    )
    warm = fao_phases.warm_up(
        spin=spin.columns, soc=warm_t["SOC"].to_numpy(np.float64),
        clay=warm_t["clay"].to_numpy(np.float64),
        tmp=_warmup_climate(warm_t, "T", years), prec=_warmup_climate(warm_t, "P", years),
        pet=_warmup_climate(warm_t, "PET", years), cover_factor=_block(warm_t, COVER_COLUMNS),
        dpm_ratio=_block(warm_t, [f"DR_y{y}" for y in range(1, years + 1)]),
        land_use=_land_use(_block(warm_t, [f"LU_y{y}" for y in range(1, years + 1)])),
        npp_mean=warm_t["NPP_81_00"].to_numpy(np.float64),
    )
    clim = {v: _block(fwd_t, [f"{v}{m}" for m in MONTHS]) for v in ("T", "P", "PET")}
    fwd = fao_phases.forward(
        warm=warm.columns, clay=fwd_t["clay"].to_numpy(np.float64), tmp=clim["T"],
        prec=clim["P"], pet=clim["PET"], cover_factor=_block(fwd_t, COVER_COLUMNS),
        dpm_ratio=fwd_t["DR"].to_numpy(np.float64),
        land_use=_land_use(fwd_t["LU"].to_numpy(np.float64)), ssm_factors=ssm_factors,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for key, source, result, columns in (
        ("spinup", spin_t, spin, fao_phases.SPINUP_COLUMNS),
        ("warmup", warm_t, warm, fao_phases.WARMUP_COLUMNS),
        ("forward", fwd_t, fwd, fao_phases.FORWARD_COLUMNS),
    ):
        frame = pd.DataFrame({c: source[c].to_numpy() for c in ID_COLUMNS})
        for name in columns:
            frame[name] = result.columns[name]
        path = out / OUTPUT_FILES[key]
        frame.to_csv(path, index=False, na_rep="NA", float_format="%.10g")
        written[key] = path
    return written


@click.command("fao-points")
@click.argument("spinup_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("warmup_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("forward_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("."), show_default=True, help="Folder for the three output tables.")
@click.option("--spinup-variant", type=click.Choice(["analytical", "equilibrium"]),
              default="analytical", show_default=True,
              help="FAO spin-up script: analytical (v66) or 500-year equilibrium (v2).")
def fao_points_command(
    spinup_csv: Path, warmup_csv: Path, forward_csv: Path, out_dir: Path, spinup_variant: str
) -> None:
    """Run FAO's RothC scripts (fao scheme) on per-point input tables."""
    written = run_fao_points(spinup_csv, warmup_csv, forward_csv, out_dir,
                             spinup_variant=spinup_variant)
    for path in written.values():
        click.echo(str(path))
