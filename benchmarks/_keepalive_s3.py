"""moto's S3 served by uvicorn (HTTP/1.1 keep-alive), for the benchmarks' ``s3-keepalive`` store.

``moto_server`` runs on werkzeug's development server, which answers every request with
``Connection: close``: each S3 request of a client then pays a new TCP connection and aiohttp
connection setup, which real S3 endpoints (and MinIO) do not ask for. This serves the same moto
application (same in-memory S3 backend, same responses) under uvicorn, which keeps connections
open, so a benchmark can show the client's cost per request without that emulator artefact.
Usage: ``python benchmarks/_keepalive_s3.py PORT`` (runs until killed).
"""

from __future__ import annotations

import sys

import uvicorn
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from uvicorn.middleware.wsgi import WSGIMiddleware


def main() -> None:
    """Serve moto on 127.0.0.1:PORT with keep-alive connections."""
    app = WSGIMiddleware(DomainDispatcherApplication(create_backend_app))
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                timeout_keep_alive=60)


if __name__ == "__main__":
    main()
