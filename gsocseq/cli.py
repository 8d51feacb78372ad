"""The ``gsocseq`` command line: ``run``, ``validate``, ``demo-data`` and ``fao-points``.

Flags are parsed once into a :class:`~gsocseq.config.RunConfig`; the commands are thin calls into
:mod:`gsocseq.pipeline`. Exit status: 0 success, 1 failed tiles or invalid products (named on
stderr), 2 bad arguments. Storage options (e.g. an S3 endpoint) come from ``--storage-options`` or
the ``GSOCSEQ_STORAGE_OPTIONS`` environment variable, as JSON.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from gsocseq import __version__
from gsocseq.errors import GsocseqError
from gsocseq.vocabulary import SCENARIOS


def _storage_options(value: str | None) -> dict[str, Any]:
    """Parse the ``--storage-options`` JSON object."""
    if not value:
        return {}
    try:
        doc = json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--storage-options") from exc
    if not isinstance(doc, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--storage-options")
    return doc


STORAGE_OPTION = click.option(
    "--storage-options", "storage_options", envvar="GSOCSEQ_STORAGE_OPTIONS", default=None,
    help='fsspec options as JSON, e.g. \'{"client_kwargs": {"endpoint_url": "http://…"}}\'.',
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gsocseq")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """GSOCseq v1.1 soil organic carbon sequestration maps (RothC-26.3), distributed."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if verbose < 2:  # dask logs every worker start / stop at INFO; read when distributed loads
        import dask

        dask.config.set({"logging.distributed": "warning"})


@main.command("run")
@click.option("--region", default=None,
              help="(required) ISO3 code, bbox 'west,south,east,north', 'demo' or 'world'.")
@click.option("--out", default=None, help="(required) Output URL prefix (s3://bucket/prefix, file:///path).")
@click.option("--scenarios", default=None,
              help="Comma-separated subset of " + ", ".join(SCENARIOS) + " (default: all).")
@click.option("--scheme", type=click.Choice(["exact", "fao"]), default=None,
              help="Numerical scheme (default: exact).")
@click.option("--cluster", default=None,
              help="Scheduler address (tcp://host:8786), 'threads', 'processes' or 'synchronous'; "
                   "default: a LocalCluster of processes.")
@click.option("--sources", default=None, help="URL of a sources.toml (default: shipped sources; "
                                              "the demo world for --region demo).")
@click.option("--tile-size", type=int, default=None, help="Tile edge, cells (default: 240).")
@click.option("--no-uncertainty", is_flag=True, help="Skip the bracket runs (uncertainty = NaN).")
@click.option("--map-version", default=None, help="Map version (default: v1.1).")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              default=None, help="TOML file with the same keys; flags override it.")
@click.option("--summary-json", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Also write the run summary as JSON to this local file.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--fao-inputs", default=None,
              help="Folder (or URL) laid out as FAO's v1.2 scripts expect their raw inputs "
                   "(AOI_POLYGON/, SOC_MAP/, CLAY/, TERRA_CLIMATE/, COV/, LAND_USE/); sets the "
                   "region from the AOI and implies --scheme fao.")
@STORAGE_OPTION
def run_command(
    region: str | None, out: str | None, scenarios: str | None, scheme: str | None, cluster: str | None,
    sources: str | None, tile_size: int | None, no_uncertainty: bool, map_version: str | None,
    config_file: str | None, summary_json: str | None, no_progress: bool,
    fao_inputs: str | None, storage_options: str | None,
) -> None:
    """Run GSOCseq on a region and publish COGs + STAC under OUT."""
    from gsocseq.config import RunConfig
    from gsocseq.pipeline import format_summary, run

    given = dict(region=region, out=out, scenarios=scenarios, scheme=scheme, cluster=cluster,
                 sources=sources, tile_size=tile_size, uncertainty=False if no_uncertainty else None,
                 map_version=map_version, storage_options=_storage_options(storage_options) or None)
    fields = {k: v for k, v in given.items() if v is not None}
    if fao_inputs is not None:
        fields.update(_fao_inputs_fields(fao_inputs, fields))
    try:
        config = (RunConfig.from_toml(config_file, **fields) if config_file
                  else RunConfig(**fields))
    except ValidationError as exc:
        raise click.UsageError(_validation_message(exc)) from exc
    try:
        summary = run(config, progress=not no_progress)
    except Exception as exc:
        _fail(exc)
    click.echo(format_summary(summary))
    if summary_json:
        Path(summary_json).write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
    if not summary.ok:
        click.echo(f"error: {len(summary.tiles_failed)} tile(s) failed: "
                   + ", ".join(summary.tiles_failed) + " (rerun to retry them; finished tiles "
                   "are skipped)", err=True)
        sys.exit(1)


def _fao_inputs_fields(folder: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Convert an FAO raw-input folder once; return the run fields it implies (region, scheme, sources)."""
    from gsocseq.config import normalise_url
    from gsocseq.sources.fao_raw import FAO_INPUTS, find_fao_raw, write_fao_inputs

    for key, allowed in (("region", None), ("sources", None), ("scheme", "fao")):
        if key in fields and fields[key] != allowed:
            raise click.UsageError(f"--fao-inputs sets --{key} itself; got --{key} {fields[key]!r}")
    if "out" not in fields:
        raise click.UsageError("--out is required")
    so = fields.get("storage_options") or {}
    try:
        out = normalise_url(fields["out"], what="out")
        raw = find_fao_raw(folder, so)
        toml = write_fao_inputs(raw, f"{out}/{FAO_INPUTS}/{raw.name}", so)
    except GsocseqError as exc:
        _fail(exc)
    return {"region": raw.iso3, "scheme": "fao", "sources": toml}


@main.command("validate")
@click.argument("url")
@STORAGE_OPTION
def validate_command(url: str, storage_options: str | None) -> None:
    """Check the runs under URL (a run's --out): completeness, COGs and STAC."""
    from gsocseq.config import normalise_url
    from gsocseq.pipeline.completeness import check_run, find_manifests
    from gsocseq.pipeline.plan import RunPlan
    from gsocseq.pipeline.publish import product_layers
    from gsocseq.products.validate import validate_products
    from gsocseq.storage import read_json

    so = _storage_options(storage_options)
    try:
        url = normalise_url(url, what="URL")
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    manifests = find_manifests(url, so)
    if not manifests:
        click.echo(f"error: no gsocseq run found under {url}", err=True)
        sys.exit(1)
    problems: list[str] = []
    for manifest in manifests:
        run_problems = check_run(manifest, so)
        doc = read_json(manifest, so) or {}
        plan = RunPlan.from_dict(doc["plan"])
        if not run_problems:
            layers = product_layers(tuple(doc["config"]["scenarios"]),
                                    bool(doc["config"]["uncertainty"]),
                                    str(doc["config"].get("scheme", "exact")))
            report = validate_products(plan.stac_url, so, expected_layers=layers,
                                       regions=[plan.region_name])
            run_problems += list(report.problems)
        click.echo(f"{plan.region} ({plan.run_url}): "
                   + ("valid and complete" if not run_problems
                      else f"{len(run_problems)} problem(s)"))
        problems += run_problems
    for p in problems:
        click.echo(f"problem: {p}", err=True)
    if problems:
        sys.exit(1)
    click.echo(f"ok: {len(manifests)} run(s) valid")


@main.command("demo-data")
@click.argument("url")
@click.option("--tiles-y", type=int, default=2, show_default=True)
@click.option("--tiles-x", type=int, default=3, show_default=True)
@click.option("--tile-size", type=int, default=240, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--stac", is_flag=True, help="STAC flavour: land cover and NDVI cover via a catalog.")
@STORAGE_OPTION
def demo_data_command(url: str, tiles_y: int, tiles_x: int, tile_size: int, seed: int,
                      stac: bool, storage_options: str | None) -> None:
    """Write the synthetic demo world (inputs in real formats + sources.toml) to URL."""
    from gsocseq.config import normalise_url
    from gsocseq.demo import write_demo_world
    from gsocseq.demo_stac import write_demo_stac

    try:
        url = normalise_url(url, what="URL")
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    write = write_demo_stac if stac else write_demo_world
    written = write(url, _storage_options(storage_options), tiles_y=tiles_y,
                               tiles_x=tiles_x, tile_size=tile_size, seed=seed)
    click.echo(f"demo world written: {written}")


@main.command("fao-points")
@click.option("--spinup", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--warmup", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--forward", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--spinup-variant", type=click.Choice(["analytical", "equilibrium"]),
              default="analytical", show_default=True)
def fao_points_command(spinup: str, warmup: str, forward: str, out_dir: str,
                       spinup_variant: str) -> None:
    """Run FAO's point scripts (spin-up, warm-up, forward CSV tables) in fao compatibility mode."""
    from gsocseq.fao_points import run_fao_points

    try:
        files = run_fao_points(spinup, warmup, forward, out_dir, spinup_variant=spinup_variant)
    except GsocseqError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    for name, path in files.items():
        click.echo(f"{name}: {path}")


def _register_optional_commands() -> None:
    """Add the commands that live beside their modules (scheme comparison)."""
    from gsocseq.compare import compare_schemes_command
    from gsocseq.pipeline.costing import plan_command

    main.add_command(compare_schemes_command, "compare-schemes")
    main.add_command(plan_command(), "plan")


_register_optional_commands()


def _fail(exc: Exception) -> None:
    """Report an error on stderr (traceback with -v) and exit with status 1."""
    if logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger("gsocseq").exception("run failed")
    kind = "" if isinstance(exc, GsocseqError) else f"{type(exc).__name__}: "
    click.echo(f"error: {kind}{exc}", err=True)
    sys.exit(1)


def _validation_message(exc: ValidationError) -> str:
    """Return pydantic errors as one line per field: ``--field: message``."""
    return "; ".join(
        f"--{'.'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}"
        for e in exc.errors()
    )
