"""Offline STAC schema cache: found from an argument or the environment, never fetched."""

from pathlib import Path

import pystac
import pytest

from gsocseq.products.stac_schemas import (
    ENV_VAR,
    load_schema_cache,
    locate_schemas_dir,
    offline_validator,
    schema_problems,
)

SCHEMAS = Path(__file__).resolve().parents[2] / "tests" / "data" / "stac-schemas"
RASTER = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"


def minimal_item(**props):
    item = pystac.Item(
        "x", {"type": "Point", "coordinates": [0.0, 0.0]}, [0.0, 0.0, 0.0, 0.0], None,
        {"start_datetime": "2021-01-01T00:00:00Z", "end_datetime": "2040-12-31T23:59:59Z"},
    )
    d = item.to_dict()
    d["properties"].update(props)
    return d


def test_cache_holds_extensions_by_url_and_projjson():
    cache = load_schema_cache(SCHEMAS)
    assert cache[RASTER]["$id"].rstrip("#") == RASTER
    assert "https://stac-extensions.github.io/projection/v2.0.0/schema.json" in cache
    assert "https://proj.org/schemas/v0.7/projjson.schema.json" in cache


def test_directory_from_environment_and_explicit_missing_directory(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(SCHEMAS))
    assert locate_schemas_dir() == SCHEMAS.resolve()
    with pytest.raises(FileNotFoundError, match="pass schemas_dir or set GSOCSEQ_STAC_SCHEMAS"):
        locate_schemas_dir(tmp_path / "absent")


def test_projjson_in_projection_v2_validates_offline():
    v = offline_validator(SCHEMAS)
    proj = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
    good = minimal_item(**{"proj:projjson": {"type": "Unknown"}})
    good["stac_extensions"] = [proj]
    problems = schema_problems(good, v)
    assert len(problems) == 1 and "proj:projjson" in problems[0]  # resolved, not fetched
    good["properties"]["proj:projjson"] = None
    assert schema_problems(good, v) == []


def test_unknown_extension_is_reported_not_downloaded():
    d = minimal_item()
    d["stac_extensions"] = ["https://stac-extensions.github.io/nope/v9.9.9/schema.json"]
    [problem] = schema_problems(d, offline_validator(SCHEMAS))
    assert "nope/v9.9.9" in problem and "offline cache" in problem


def test_non_stac_dict_is_a_problem_not_a_crash():
    [problem] = schema_problems({"hello": 1}, offline_validator(SCHEMAS))
    assert "not a STAC object" in problem


def test_packaged_schemas_are_the_official_files():
    """The copies shipped in the package (used in containers) equal the official schemas."""
    import gsocseq.products.stac_schemas as mod

    packaged = Path(mod.__file__).resolve().parent / "schemas"
    files = sorted(packaged.rglob("schema.json"))
    assert len(files) == 3
    for path in files:
        official = SCHEMAS / path.relative_to(packaged)
        assert path.read_bytes() == official.read_bytes(), path
