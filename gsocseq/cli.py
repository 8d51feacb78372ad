"""The ``gsocseq`` command line (run, plan, validate, report, sources check, demo-data, fao-points …).

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
from typing import Any, NoReturn

import click
from pydantic import ValidationError

from gsocseq import __version__
from gsocseq.errors import GsocseqError
from gsocseq.model.inputs import EULER_CRITERION
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
@click.option("--no-uncertainty", is_flag=True, help="Skip the bracket runs (uncertainty = NaN); "
                                                     "same as --uncertainty none.")
@click.option("--uncertainty", "uncertainty_method",
              type=click.Choice(["brackets", "montecarlo", "none"]), default=None,
              help="FAO's min/max brackets (default), brackets plus seeded Monte Carlo layers, "
                   "or none.")
@click.option("--draws", type=int, default=None,
              help="Monte Carlo draws per pixel (with --uncertainty montecarlo; default 100).")
@click.option("--seed", type=int, default=None, help="Seed of the Monte Carlo draws (default 0).")
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
    sources: str | None, tile_size: int | None, no_uncertainty: bool,
    uncertainty_method: str | None, draws: int | None, seed: int | None, map_version: str | None,
    config_file: str | None, summary_json: str | None, no_progress: bool,
    fao_inputs: str | None, storage_options: str | None,
) -> None:
    """Run GSOCseq on a region and publish COGs + STAC under OUT."""
    from gsocseq.config import RunConfig
    from gsocseq.pipeline import format_summary, run

    if no_uncertainty and uncertainty_method not in (None, "none"):
        raise click.UsageError(f"--no-uncertainty contradicts --uncertainty {uncertainty_method}")
    given = dict(region=region, out=out, scenarios=scenarios, scheme=scheme, cluster=cluster,
                 sources=sources, tile_size=tile_size,
                 uncertainty="none" if no_uncertainty else uncertainty_method,
                 draws=draws, seed=seed,
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
    from gsocseq.pipeline import fao_inputs_fields

    for key, allowed in (("region", None), ("sources", None), ("scheme", "fao")):
        if key in fields and fields[key] != allowed:
            raise click.UsageError(f"--fao-inputs sets --{key} itself; got --{key} {fields[key]!r}")
    if "out" not in fields:
        raise click.UsageError("--out is required")
    try:
        return fao_inputs_fields(folder, fields["out"], fields.get("storage_options") or {})
    except GsocseqError as exc:
        _fail(exc)


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
                                    str(doc["config"].get("scheme", "exact")),
                                    int(doc["config"].get("draws", 0)) > 0)
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


@main.group("sources")
def sources_group() -> None:
    """Inspect the input sources."""


@sources_group.command("check")
@click.option("--sources", "sources_url", default=None,
              help="URL of a sources.toml (default: the shipped real public sources).")
@click.option("--region", default=None, help="ISO3 code or bbox 'west,south,east,north'.")
@STORAGE_OPTION
def sources_check_command(sources_url: str | None, region: str | None,
                          storage_options: str | None) -> None:
    """Check each source: reachable, format, CRS, resolution, bands, units, nodata, period, bytes."""
    from gsocseq.cube.region import resolve_region
    from gsocseq.cube.source_check import check_sources
    from gsocseq.sources import load_sources

    so = _storage_options(storage_options)
    try:
        config = load_sources(sources_url, storage_options=so)
        bounds = resolve_region(region, config, tile_size=120).bbox if region else None
    except GsocseqError as exc:
        click.echo(f"problem: {exc}", err=True)
        sys.exit(1)
    lines, problems = check_sources(config, bounds)
    for line in lines:
        click.echo(line)
    for p in problems:
        click.echo(f"problem: {p}", err=True)
    if problems:
        sys.exit(1)
    click.echo(f"ok: {len(config.specs)} source(s) as declared")


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


@main.command("compare-schemes")
@click.option("--region", default="demo", show_default=True,
              help="ISO3 code, bbox 'west,south,east,north' or 'demo'.")
@click.option("--out", default=None, help="URL prefix for the demo world and the input cube.")
@click.option("--cube", "cube_url", default=None, help="Use this built input cube instead.")
@click.option("--sources", default=None, help="URL of a sources.toml (default: demo world).")
@click.option("--tile-size", type=int, default=60, show_default=True)
@click.option("--max-tiles", type=int, default=None, help="Compare only the first N tiles.")
@click.option("--no-uncertainty", is_flag=True, help="Skip the bracket runs.")
@click.option("--euler-criterion", type=click.Choice(["month", "cycle"]), default=EULER_CRITERION,
              show_default=True, help="How the fao scheme masks unstable Euler steps.")
@click.option("--csv", "csv_path", default=None, help="Also write the layer table as CSV here.")
@STORAGE_OPTION
def compare_schemes_command(
    region: str, out: str | None, cube_url: str | None, sources: str | None, tile_size: int,
    max_tiles: int | None, no_uncertainty: bool, euler_criterion: str, csv_path: str | None,
    storage_options: str | None,
) -> None:
    """Compare the exact and fao schemes on a region's pixels; print markdown tables."""
    from gsocseq.compare import build_comparison_cube, compare_cube, format_comparison
    from gsocseq.model.phases import PhaseConfig

    so = _storage_options(storage_options)
    if cube_url is None and out is None:
        raise click.UsageError("give --out (to build the input cube) or --cube")
    config = PhaseConfig(uncertainty=not no_uncertainty, fao_euler_criterion=euler_criterion)
    try:
        tiles = None
        if cube_url is None:
            assert out is not None
            cube_url, tiles = build_comparison_cube(
                region, out, sources=sources, tile_size=tile_size, max_tiles=max_tiles,
                storage_options=so,
            )
        comparison = compare_cube(cube_url, tiles=tiles, config=config, storage_options=so)
    except ValidationError as exc:
        raise click.UsageError(_validation_message(exc)) from exc
    except GsocseqError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(format_comparison(comparison))
    if csv_path:
        comparison.layers.to_csv(csv_path)


@main.command("report")
@click.argument("url")
@click.option("--output", "output_dir", type=click.Path(file_okay=False), default=None,
              help="Also copy each page into this local folder.")
@click.option("--open", "open_browser", is_flag=True, help="Open the page(s) in a web browser.")
@STORAGE_OPTION
def report_command(url: str, output_dir: str | None, open_browser: bool,
                   storage_options: str | None) -> None:
    """Write one self-contained HTML report per run under URL (a run's --out) as {run}/report.html."""
    import tempfile
    import webbrowser

    from gsocseq.config import normalise_url
    from gsocseq.report import write_reports

    so = _storage_options(storage_options)
    try:
        url = normalise_url(url, what="URL")
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        written, problems = write_reports(url, so)
    except GsocseqError as exc:
        _fail(exc)
    if open_browser and output_dir is None and not all(t.startswith("file://") for t, _ in written):
        output_dir = tempfile.mkdtemp(prefix="gsocseq-report-")
    for target, page in written:
        local = target.removeprefix("file://") if target.startswith("file://") else None
        if output_dir is not None:
            run_name = target.rsplit("/", 2)[-2]
            scheme = target.split("/runs/")[0].rsplit("/", 1)[-1]
            local = str(Path(output_dir) / f"{run_name}-{scheme}.html")
            Path(output_dir).mkdir(parents=True, exist_ok=True)
            Path(local).write_text(page, encoding="utf-8")
        click.echo(f"report: {target}" + (f" (copy: {local})" if local and output_dir else ""))
        if open_browser and local:
            webbrowser.open(Path(local).resolve().as_uri())
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    if problems:
        sys.exit(1)


@main.command("validation-report")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--fao-sample", type=click.Path(exists=True, file_okay=False), default=None,
              help="FAO-layout raw-input folder to compare the schemes on (e.g. the repository's "
                   "tests/data/fao-sample/ARG_PE/raw).")
@click.option("--rothc-example", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder of the official RothC example (default: the packaged copy).")
@click.option("--no-demo", is_flag=True, help="Skip the exact-vs-fao comparison on the demo world.")
@click.option("--long-years", type=int, default=100_000, show_default=True,
              help="Years of iteration the closed-form equilibrium is checked against.")
def validation_report_command(out_dir: str, fao_sample: str | None, rothc_example: str | None,
                              no_demo: bool, long_years: int) -> None:
    """Write the validation report (HTML with plots, numbers as CSV) into OUT_DIR."""
    from gsocseq.validation.report import EXAMPLE_DIR, write_validation_report

    try:
        page = write_validation_report(
            out_dir, example_dir=rothc_example or EXAMPLE_DIR, fao_sample=fao_sample,
            demo=not no_demo, long_years=long_years, log=lambda m: click.echo(f"... {m}"),
        )
    except GsocseqError as exc:
        _fail(exc)
    click.echo(f"validation report: {page}")


def _register_optional_commands() -> None:
    """Add the commands that live beside their modules (run costing)."""
    from gsocseq.pipeline.costing import plan_command

    main.add_command(plan_command(), "plan")


_register_optional_commands()


def _fail(exc: Exception) -> NoReturn:
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
