"""Offline STAC JSON-schema cache: validate items and collections without network access.

The core STAC 1.1.0 and GeoJSON schemas ship inside pystac. The extension schemas (projection,
raster, file, …) come from a folder laid out by URL — ``<dir>/stac-extensions.github.io/raster/
v1.1.0/schema.json`` is ``https://stac-extensions.github.io/raster/v1.1.0/schema.json`` — found, in
order, from an explicit argument, the ``GSOCSEQ_STAC_SCHEMAS`` environment variable, or the
copies packaged in ``products/schemas`` (the three extensions gsocseq writes). Nothing outside the
package is read. The PROJJSON schema that projection v2 references is the
one bundled with pyproj.

:func:`offline_validator` returns a pystac ``JsonSchemaSTACValidator`` whose cache holds all of
these and which refuses (instead of downloading) any schema it does not hold.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema.exceptions
import pyproj.datadir
from pystac.errors import STACValidationError
from pystac.serialization.identify import identify_stac_object
from pystac.validation.stac_validator import GetSchemaError, JsonSchemaSTACValidator

__all__ = [
    "ENV_VAR",
    "OfflineSTACValidator",
    "load_schema_cache",
    "locate_schemas_dir",
    "offline_validator",
    "schema_problems",
]

ENV_VAR = "GSOCSEQ_STAC_SCHEMAS"
"""Environment variable naming the folder of extension schemas laid out by URL."""
_PROJJSON_URL = "https://proj.org/schemas/v0.7/projjson.schema.json"


def locate_schemas_dir(schemas_dir: str | Path | None = None) -> Path:
    """Return the folder of extension schemas (argument, ``$GSOCSEQ_STAC_SCHEMAS``, or packaged).

    Raises
    ------
    FileNotFoundError
        None of the candidates is a folder; the message lists the paths tried.
    """
    candidates = [
        Path(schemas_dir) if schemas_dir is not None else None,
        Path(os.environ[ENV_VAR]) if os.environ.get(ENV_VAR) else None,
        Path(__file__).resolve().parent / "schemas",  # packaged copies of the schemas we write
    ]
    tried = []
    for cand in candidates:
        if cand is None:
            continue
        if cand.is_dir():
            return cand.resolve()
        tried.append(str(cand))
        if schemas_dir is not None:
            break  # an explicit folder that does not exist is an error, not a fallback
    raise FileNotFoundError(
        f"no STAC extension schema folder found (tried {tried}); pass schemas_dir or set {ENV_VAR}"
    )


def load_schema_cache(schemas_dir: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Return ``{schema URL: schema}`` for every ``*.json`` under the folder, plus PROJJSON."""
    root = locate_schemas_dir(schemas_dir)
    cache: dict[str, dict[str, Any]] = {}
    for path in sorted(root.rglob("*.json")):
        url = "https://" + path.relative_to(root).as_posix()
        cache[url] = json.loads(path.read_text(encoding="utf-8"))
    projjson = Path(pyproj.datadir.get_data_dir()) / "projjson.schema.json"
    if projjson.is_file():
        schema = json.loads(projjson.read_text(encoding="utf-8"))
        cache[_PROJJSON_URL] = schema
        cache.setdefault(str(schema.get("$id", _PROJJSON_URL)), schema)
    return cache


class OfflineSTACValidator(JsonSchemaSTACValidator):
    """A pystac JSON-schema validator that never fetches a schema over the network."""

    def _get_schema(self, schema_uri: str) -> dict[str, Any]:
        if schema_uri not in self.schema_cache:
            raise GetSchemaError(
                schema_uri,
                LookupError(
                    f"schema {schema_uri} is not in the offline cache; add it to the folder "
                    f"named by {ENV_VAR}"
                ),
            )
        return self.schema_cache[schema_uri]


def offline_validator(schemas_dir: str | Path | None = None) -> OfflineSTACValidator:
    """Return a validator whose cache holds pystac's core schemas and the offline extensions."""
    validator = OfflineSTACValidator()
    validator.schema_cache.update(load_schema_cache(schemas_dir))
    return validator


def schema_problems(
    stac_dict: dict[str, Any], validator: JsonSchemaSTACValidator, href: str | None = None
) -> list[str]:
    """Return every schema violation of one STAC object (core and each extension; empty: valid).

    Unlike ``pystac.validation.validate_dict``, which stops at the first failing schema, every
    schema is checked and every error reported as ``"<where>: <json path>: <message>"``.
    """
    where = href or str(stac_dict.get("id", "<no id>"))
    try:
        desc = identify_stac_object(stac_dict)
    except Exception as exc:  # noqa: BLE001 - report, do not raise
        return [f"{where}: not a STAC object: {exc}"]
    version = str(stac_dict.get("stac_version", ""))
    checks: list[str | None] = [None, *stac_dict.get("stac_extensions", [])]
    problems: list[str] = []
    for ext in checks:
        try:
            if ext is None:
                validator.validate_core(stac_dict, desc.object_type, version, href)
            else:
                validator.validate_extension(stac_dict, desc.object_type, version, ext, href)
        except STACValidationError as exc:
            errors = exc.source if isinstance(exc.source, list) else []
            schema = "core" if ext is None else ext
            for err in errors or [None]:
                problems.append(f"{where}: [{schema}] {_message(err, exc)}")
        except GetSchemaError as exc:
            problems.append(f"{where}: cannot check {ext}: {exc}")
    return problems


def _message(err: jsonschema.exceptions.ValidationError | None, exc: Exception) -> str:
    """Return the most specific message of a jsonschema error (or of the wrapping exception)."""
    if err is None:
        return str(exc).splitlines()[-1]
    # oneOf / anyOf errors wrap one sub-error per branch: the deepest leaf in the document is the
    # real problem (shallow ones are "this is not a Collection" from the branches not taken)
    best = max(_leaves(err), key=lambda e: len(e.absolute_path))
    path = "/".join(str(p) for p in best.absolute_path) or "<root>"
    message = best.message if len(best.message) <= 200 else best.message[:197] + "..."
    return f"{path}: {message}"


def _leaves(
    err: jsonschema.exceptions.ValidationError,
) -> list[jsonschema.exceptions.ValidationError]:
    """Return the leaf errors under ``err`` (itself if it has no sub-errors)."""
    if not err.context:
        return [err]
    return [leaf for sub in err.context for leaf in _leaves(sub)]
