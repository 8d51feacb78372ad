"""Entry point of the tests' moto S3 server process: ``moto.server.main`` itself, run with moto's list of
service modules read once instead of on every request.

Usage: ``python tests/moto_main.py -H 127.0.0.1 -p PORT`` (the arguments of ``moto_server``).
Why: moto's server matches each request's host against ``moto.backends.list_of_moto_modules()``, a
generator that lists moto's package folder and ``stat``s its ≈ 170 entries, twice per request; it was
the largest single cost of the server (≈ 1/3 of its CPU in a demo run, profiled). The folder does not
change while the server runs, so the list is computed once; every request is still served by moto.
werkzeug's access log (one INFO line per request, ≈ 5 % of the server's CPU) is off; warnings and
errors (moto's tracebacks) still go to the log.
"""

from __future__ import annotations

import logging

import moto.backends
from moto.server import main

MODULES = tuple(moto.backends.list_of_moto_modules())


def _modules() -> tuple[str, ...]:
    """moto's service module names, listed once at start-up."""
    return MODULES


moto.backends.list_of_moto_modules = _modules  # type: ignore[assignment]
logging.getLogger("werkzeug").setLevel(logging.WARNING)

if __name__ == "__main__":
    main()
