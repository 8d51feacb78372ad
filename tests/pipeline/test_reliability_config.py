"""Writes stay under the configured prefix, and credentials stay out of every printed form of the
configuration, at each entry point below the CLI: ``RunConfig``, TOML files, and the pipeline itself
(``plan_run`` / ``run`` re-validate a configuration changed with ``model_copy``, which skips the
validators). In-memory fsspec store (nothing else is needed: every case is rejected before I/O).
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from pydantic import ValidationError

from gsocseq import storage
from gsocseq.config import RunConfig
from gsocseq.pipeline import plan_run, run
from gsocseq.storage import (
    RETRY_BACKOFF_ENV,
    S3_MAX_ATTEMPTS,
    call_with_retries,
    is_transient,
    retry_backoff_s,
    with_s3_retries,
)

SECRET = "sEcReT-3c1f0b6e-unique"
BAD_OUT = ["s3://bucket/runs/../../other-bucket", "s3://bucket/./x", "s3://other@bucket/x",
           "file://relative/path", "memory://x/../../y", "s3:///no-bucket", "ftp://host/x",
           "/tmp/a/../b", "s3://b/x\n/y"]


@pytest.mark.parametrize("out", BAD_OUT)
def test_run_config_rejects_out_urls_that_leave_the_prefix(out: str) -> None:
    with pytest.raises(ValidationError, match="out"):
        RunConfig(region="demo", out=out)


@pytest.mark.parametrize(("field", "value"), [("map_version", "../v1"), ("map_version", "a/b"),
                                              ("sources", "s3://b/../x/sources.toml"),
                                              ("region", "../../ARG"), ("region", "AR/G")])
def test_run_config_rejects_other_fields_that_name_places(field: str, value: str) -> None:
    with pytest.raises(ValidationError, match=field):
        RunConfig(**{"region": "demo", "out": "memory://ok", field: value})


def test_toml_config_is_validated_like_flags(tmp_path: Path) -> None:
    toml = tmp_path / "run.toml"
    toml.write_text('[run]\nregion = "demo"\nout = "memory://ok"\nmap_version = "../../x"\n')
    with pytest.raises(ValidationError, match="map_version"):
        RunConfig.from_toml(toml)


@pytest.mark.parametrize("update", [{"out": "memory://ok/../../escape"},
                                    {"map_version": "../other"}, {"region": "../ARG"},
                                    {"sources": "memory://ok/../x.toml"}])
def test_pipeline_revalidates_a_config_changed_after_construction(update: dict[str, str]) -> None:
    config = RunConfig(region="demo", out="memory://ok", tile_size=60)
    changed = config.model_copy(update=update)  # model_copy does not run the validators
    with pytest.raises(ValidationError, match=next(iter(update))):
        plan_run(changed)
    with pytest.raises(ValidationError):
        run(changed, progress=False)


def test_credentials_are_not_in_repr_public_dict_or_validation_errors() -> None:
    so = {"key": "AKIAUNIQUE", "secret": SECRET, "client_kwargs": {"endpoint_url": "http://x"}}
    config = RunConfig(region="demo", out="s3://bucket/x", storage_options=so)
    assert config.storage_options["secret"] == SECRET
    for text in (repr(config), str(config), str(config.public_dict())):
        assert SECRET not in text and "AKIAUNIQUE" not in text
    with pytest.raises(ValidationError) as info:
        RunConfig(region="demo", out="s3://bucket/../x", storage_options=so)
    assert SECRET not in str(info.value)


def test_s3_runs_get_bounded_request_retries_unless_set() -> None:
    config = RunConfig(region="demo", out="s3://bucket/x", storage_options={"key": "k"})
    retries = config.storage_options["config_kwargs"]["retries"]
    assert retries == {"max_attempts": S3_MAX_ATTEMPTS, "mode": "adaptive"}
    mine = {"config_kwargs": {"retries": {"max_attempts": 2}}}
    assert with_s3_retries(mine, "s3://b/x") is mine
    assert with_s3_retries({}, "file:///x", None) == {}
    assert RunConfig(region="demo", out="memory://x").storage_options == {}


def _waits_of_two_transient_failures(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr(storage.time, "sleep", waits.append)
    errors = [ConnectionResetError("reset"), TimeoutError("slow")]

    def flaky() -> str:
        if errors:
            raise errors.pop(0)
        return "ok"

    assert call_with_retries(flaky, what="x", attempts=3) == "ok"
    return waits


def test_retry_backoff_is_a_setting_of_unit_and_request_retries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from botocore.retries.standard import ExponentialBackoff, RetryContext

    # the third attempt of a request: botocore waits rand(0, 1) × 2² s; rand pinned to 1
    backoff, third = ExponentialBackoff(random=lambda: 1.0), RetryContext(attempt_number=3)
    with_s3_retries({}, "s3://b/x")  # an S3 run installs the scaling (a no-op when unset)
    monkeypatch.delenv(RETRY_BACKOFF_ENV, raising=False)
    assert retry_backoff_s() == 1.0
    assert _waits_of_two_transient_failures(monkeypatch) == [1.0, 2.0]
    assert backoff.delay_amount(third) == 4.0  # botocore's own back-off, unscaled

    monkeypatch.setenv(RETRY_BACKOFF_ENV, "0.25")
    assert retry_backoff_s() == 0.25
    assert _waits_of_two_transient_failures(monkeypatch) == [0.25, 0.5]
    assert backoff.delay_amount(third) == 1.0
    assert call_with_retries(lambda: 1, what="x", backoff_s=3.0) == 1  # explicit value kept
    for bad in ("-1", "inf", "nan", "soon"):
        monkeypatch.setenv(RETRY_BACKOFF_ENV, bad)
        with pytest.raises(ValueError):
            retry_backoff_s()


@pytest.mark.parametrize(("exc", "transient"), [
    (OSError(5, "InternalError"), True), (TimeoutError(), True), (ConnectionResetError(), True),
    (FileNotFoundError("k"), False), (PermissionError("denied"), False), (ValueError("bad"), False),
    # what fsspec's HTTP filesystem raises for an http(s) source's error answers
    (aiohttp.ClientResponseError(None, (), status=503), True),  # type: ignore[arg-type]
    (aiohttp.ClientResponseError(None, (), status=429), True),  # type: ignore[arg-type]
    (aiohttp.ClientResponseError(None, (), status=403), False),  # type: ignore[arg-type]
])
def test_only_transient_errors_are_retried(exc: Exception, transient: bool) -> None:
    wrapped = RuntimeError("tile failed")
    wrapped.__cause__ = exc
    assert is_transient(wrapped) is transient


def test_no_unseeded_randomness_in_the_package() -> None:
    """Random draws come only from generators given an explicit seed (demo worlds, synthetic
    benchmark/validation cases); uuid4 only names temporary objects, dask task keys and lease holders
    (never part of an output)."""
    import re

    import gsocseq

    root = Path(gsocseq.__file__).parent
    for path in root.rglob("*.py"):
        text = path.read_text()
        rel = path.relative_to(root).as_posix()
        assert "import random" not in text, rel
        assert not re.search(r"np\.random\.(?!default_rng|Generator)", text), rel
        for seed in re.findall(r"default_rng\(([^)]*)\)", text):
            assert seed.strip(), f"{rel}: unseeded default_rng()"
        for line in text.splitlines():
            if "uuid4()" in line and rel != "lease.py":  # lease.py: the id of a lease's holder
                assert re.search(r"tmp|token|key", line), f"{rel}: {line.strip()}"
    demo = (root / "demo.py").read_text()
    assert re.findall(r"default_rng\((\w*)", demo) and "default_rng()" not in demo
