"""Helpers of the Prefect end-to-end tests: deployment names, the serve process, the S3 environment.

The Prefect server, its REST client and process control live in ``tests/servers.py`` (re-exported
here for the tests of this folder).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servers import REPO, PrefectServer, free_port, start_process, stop_process, tail

COUNTRY = ("gsocseq-country-rerun", "country-rerun")
"""(flow name, deployment name) of the on-demand country rerun."""
GLOBAL = ("gsocseq-global-rebuild", "global-rebuild")
"""(flow name, deployment name) of the scheduled global rebuild."""

__all__ = ["COUNTRY", "GLOBAL", "REPO", "PrefectServer", "ServeProcess", "free_port", "s3_env",
           "start_process", "stop_process", "tail"]


def s3_env(s3_server: Any) -> dict[str, str]:
    """Environment pointing s3fs (botocore's ``AWS_ENDPOINT_URL``) and GDAL at the local S3."""
    return {
        **s3_server.gdal_env(),
        "AWS_ENDPOINT_URL": s3_server.endpoint_url,
        "AWS_DEFAULT_REGION": "us-east-1",
    }


@dataclass(frozen=True)
class ServeProcess:
    """A running ``python -m flows.serve`` process and what it was started with."""

    out: str
    """Default ``out`` parameter of the deployments (an s3:// prefix on the local S3)."""
    sources: str
    """Default ``sources`` parameter (the demo world's sources.toml)."""
    log: Path
