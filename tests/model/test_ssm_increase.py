"""SSM increases per land-use group: configuration (RunConfig, TOML, flow parameters), config hash,
model settings of a tile, STAC provenance."""

from __future__ import annotations

import pytest

from flows.params import build_config
from gsocseq.config import RunConfig
from gsocseq.pipeline.tile import phase_config
from gsocseq.products.stac import Provenance
from gsocseq.vocabulary import LAND_USE_GROUPS


def _config(**kw) -> RunConfig:
    return RunConfig(region="demo", out="file:///tmp/gsocseq-ssm", **kw)


def test_defaults_and_partial_groups() -> None:
    assert _config().ssm_increase == dict.fromkeys(LAND_USE_GROUPS, (0.05, 0.10, 0.20))
    c = _config(ssm_increase={"paddy": [0.0, 0.1, 0.1]})
    assert c.ssm_increase["paddy"] == (0.0, 0.1, 0.1)
    assert c.ssm_increase["crops"] == (0.05, 0.10, 0.20)


@pytest.mark.parametrize(("value", "match"), [
    ({"grass": [0.2, 0.1, 0.3]}, r"grass.*non-decreasing"),
    ({"crops": [0.05, 0.1, 1.5]}, r"crops.*in \[0, 1\]"),
    ({"crops": [-0.1, 0.1, 0.2]}, r"crops.*in \[0, 1\]"),
    ({"crops": [0.1, 0.2]}, r"crops.*3 fractions"),
    ({"forest": [0.1, 0.2, 0.3]}, "unknown land-use group 'forest'"),
    ([0.1, 0.2, 0.3], "must map land-use groups"),
])
def test_bad_increases_are_rejected_naming_group_and_value(value, match) -> None:
    with pytest.raises(ValueError, match=match):
        _config(ssm_increase=value)


def test_increase_is_science_it_changes_the_hash() -> None:
    base = _config()
    assert _config(ssm_increase={"crops": [0.05, 0.10, 0.20]}).config_hash == base.config_hash
    assert _config(ssm_increase={"crops": [0.05, 0.10, 0.25]}).config_hash != base.config_hash


def test_toml_flow_parameters_and_tile_settings(tmp_path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('[run]\nregion = "demo"\nout = "file:///tmp/gsocseq-ssm"\n'
                    '[run.ssm_increase]\ngrass = [0.0, 0.0, 0.0]\npaddy = [0.1, 0.2, 0.3]\n')
    from_file = RunConfig.from_toml(path)
    assert from_file.ssm_increase == {"crops": (0.05, 0.10, 0.20), "grass": (0.0, 0.0, 0.0),
                                      "paddy": (0.1, 0.2, 0.3)}
    from_flow = build_config("demo", out="file:///tmp/gsocseq-ssm", scenarios=["bau"],
                             scheme="exact", map_version="v1.1", sources=None, tile_size=60,
                             uncertainty=True,
                             ssm_increase={"grass": [0.0, 0.0, 0.0], "paddy": [0.1, 0.2, 0.3]})
    assert from_flow.ssm_increase == from_file.ssm_increase
    assert phase_config(from_file).ssm_increase == ((0.05, 0.10, 0.20), (0.0, 0.0, 0.0),
                                                    (0.1, 0.2, 0.3))


def test_stac_provenance_records_the_increases() -> None:
    p = Provenance(code_version="1", scheme="exact", config_hash="abc",
                   ssm_increase={"crops": [0.05, 0.1, 0.2]})
    assert p.properties()["gsocseq:ssm_increase"] == {"crops": [0.05, 0.1, 0.2]}
    assert "gsocseq:ssm_increase" not in Provenance("1", "exact", "abc").properties()


def test_prefect_form_has_the_increases() -> None:
    from prefect.utilities.callables import parameter_schema

    from flows.gsocseq_flows import country_rerun, global_rebuild

    for flow in (country_rerun, global_rebuild):
        schema = parameter_schema(flow.fn)
        assert "ssm_increase" in schema.properties
        assert "ssm_increase" not in (schema.required or [])
