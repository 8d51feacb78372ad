"""RunConfig: parsing, validation of region / out strings, config hash, TOML loading."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gsocseq.config import RunConfig, normalise_url, parse_region, region_slug
from gsocseq.vocabulary import SCENARIOS


def test_defaults_and_normalisation(tmp_path: Path) -> None:
    cfg = RunConfig(region="arg", out=str(tmp_path / "out") + "/")
    assert cfg.region == "ARG"
    assert cfg.out == f"file://{tmp_path}/out"
    assert cfg.scenarios == SCENARIOS
    assert cfg.scheme == "exact" and cfg.tile_size == 240 and cfg.uncertainty
    with pytest.raises(ValidationError):
        cfg.region = "BRA"  # frozen


@pytest.mark.parametrize(
    "out",
    ["s3://bucket/../other-bucket/x", "s3://bucket/a/../../b", "file:///tmp/../etc", "../up",
     "s3:///no-bucket", "ftp://host/x", "s3://bucket/./x", "file://relative/path", ""],
)
def test_out_traversal_and_bad_urls_rejected(out: str) -> None:
    with pytest.raises(ValidationError, match="out"):
        RunConfig(region="demo", out=out)


@pytest.mark.parametrize("region", ["../ARG", "s3://other/x", "AR", "ARGE", "1,2,3", "10,0,5,1",
                                    "0,0,1,nan", "A/B", ""])
def test_bad_regions_rejected(region: str) -> None:
    with pytest.raises(ValidationError, match="region"):
        RunConfig(region=region, out="s3://b/x")


def test_region_forms() -> None:
    assert parse_region(" Demo ") == "demo"
    assert parse_region("-60.5, -40, -58, -38.25") == "-60.5,-40,-58,-38.25"
    assert region_slug("-60.5,-40,-58,-38.25") == "bbox_-60p5_-40_-58_-38p25"
    assert normalise_url("memory://bucket/x/", what="out") == "memory://bucket/x"


def test_scenarios_parsed_and_ordered() -> None:
    cfg = RunConfig(region="demo", out="s3://b/x", scenarios="ssm_high, bau")
    assert cfg.scenarios == ("bau", "ssm_high")
    with pytest.raises(ValidationError, match="scenarios"):
        RunConfig(region="demo", out="s3://b/x", scenarios=("bau", "ssm_extreme"))


def test_cluster_and_tile_size_checked() -> None:
    assert RunConfig(region="demo", out="s3://b/x", cluster="tcp://10.0.0.1:8786").cluster
    with pytest.raises(ValidationError, match="cluster"):
        RunConfig(region="demo", out="s3://b/x", cluster="http://x; rm -rf /")
    with pytest.raises(ValidationError, match="tile_size"):
        RunConfig(region="demo", out="s3://b/x", tile_size=7)


def test_config_hash_covers_science_fields_only() -> None:
    base = RunConfig(region="demo", out="s3://b/x")
    same = RunConfig(region="demo", out="s3://other/y", cluster="threads", tile_size=120,
                     storage_options={"anon": True})
    assert base.config_hash == same.config_hash
    assert len(base.config_hash) == 64
    for change in ({"scheme": "fao"}, {"uncertainty": False}, {"scenarios": ("bau",)},
                   {"sources": "s3://b/sources.toml"}, {"map_version": "v1.2"},
                   {"region": "ARG"}):
        assert base.model_copy(update=change).config_hash != base.config_hash, change
    assert RunConfig.model_validate_json(base.model_dump_json()).config_hash == base.config_hash


def test_public_dict_hides_storage_options() -> None:
    cfg = RunConfig(region="demo", out="s3://b/x", storage_options={"secret": "k"})
    assert "storage_options" not in cfg.public_dict()


def test_from_toml_with_overrides(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('[run]\nregion = "demo"\nout = "s3://b/runs"\nscenarios = ["bau"]\n'
                    "tile_size = 120\n")
    cfg = RunConfig.from_toml(path, scheme="fao", cluster=None)
    assert (cfg.region, cfg.out, cfg.scenarios, cfg.tile_size, cfg.scheme) == (
        "demo", "s3://b/runs", ("bau",), 120, "fao")
    path.write_text('region = "demo"\nout = "s3://b/../x"\n')
    with pytest.raises(ValidationError, match="out"):
        RunConfig.from_toml(path)


def test_uncertainty_methods_draws_and_seed(tmp_path: Path) -> None:
    base = RunConfig(region="demo", out="s3://b/x")
    assert (base.uncertainty_method, base.draws, base.seed) == ("brackets", 0, 0)
    assert RunConfig(region="demo", out="s3://b/x", uncertainty="brackets") == base
    assert RunConfig(region="demo", out="s3://b/x", uncertainty="none").uncertainty is False
    mc = RunConfig(region="demo", out="s3://b/x", uncertainty="montecarlo", seed=7)
    assert (mc.uncertainty, mc.draws, mc.uncertainty_method) == (True, 100, "montecarlo")
    assert mc.check() == mc and RunConfig.model_validate_json(mc.model_dump_json()) == mc
    # a seed alone changes nothing (no Monte Carlo): the hash of every other run stays
    assert base.model_copy(update={"seed": 3}).config_hash == base.config_hash
    hashes = {c.config_hash for c in (base, mc, mc.model_copy(update={"seed": 8}),
                                      mc.model_copy(update={"draws": 50}))}
    assert len(hashes) == 4
    toml = tmp_path / "run.toml"
    toml.write_text('[run]\nregion = "demo"\nout = "s3://b/x"\nuncertainty = "montecarlo"\n'
                    "draws = 20\nseed = 4\n")
    assert RunConfig.from_toml(toml).draws == 20 and RunConfig.from_toml(toml).seed == 4
    for bad, word in (({"uncertainty": "none", "draws": 5}, "montecarlo"),
                      ({"uncertainty": "montecarlo", "scheme": "fao"}, "exact"),
                      ({"uncertainty": "mc"}, "brackets"), ({"draws": -1}, "draws"),
                      ({"uncertainty": "montecarlo", "seed": -2}, "seed")):
        with pytest.raises(ValidationError, match=word):
            RunConfig(region="demo", out="s3://b/x", **bad)
