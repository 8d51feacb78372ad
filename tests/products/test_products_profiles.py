"""COG profile registry: named encodings turned into GDAL COG driver options."""

import pytest

from gsocseq.errors import InputValidationError
from gsocseq.products import profiles
from gsocseq.products.profiles import PROFILES, CogProfile, get_profile, register_profile


def test_default_profile_is_deflate_predictor3_tiled_512_average():
    opts = get_profile("gsocseq").creation_options()
    assert opts["compress"] == "DEFLATE"
    assert opts["predictor"] == 3
    assert opts["blocksize"] == 512
    assert opts["overview_resampling"] == "average"
    assert opts["overviews"] == "AUTO"
    assert get_profile("gsocseq").dtype == "float32"


def test_level_and_no_compression_options():
    assert get_profile("gsocseq-zstd").creation_options()["level"] == 9
    raw = CogProfile("raw-test", compress="NONE").creation_options()
    assert "predictor" not in raw and "level" not in raw


def test_unknown_profile_names_the_registered_ones():
    with pytest.raises(InputValidationError, match="gsocseq-zstd"):
        get_profile("nope")


@pytest.fixture
def clean_registry():
    yield
    profiles._REGISTRY.pop("test-lzw", None)


def test_register_refuses_silent_overwrite_and_registry_is_read_only(clean_registry):
    prof = CogProfile("test-lzw", compress="LZW", predictor=2)
    register_profile(prof)
    assert get_profile("test-lzw") is prof
    with pytest.raises(InputValidationError, match="already registered"):
        register_profile(CogProfile("test-lzw"))
    register_profile(CogProfile("test-lzw", compress="ZSTD"), replace=True)
    assert PROFILES["test-lzw"].compress == "ZSTD"
    with pytest.raises(TypeError):
        PROFILES["x"] = prof  # type: ignore[index]


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"blocksize": 500}, "multiple of 16"), ({"predictor": 4}, "predictor")]
)
def test_invalid_profiles_are_rejected(kwargs, match):
    with pytest.raises(InputValidationError, match=match):
        CogProfile("bad", **kwargs)
