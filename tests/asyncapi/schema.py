"""Validation against the official AsyncAPI 3.0.0 JSON Schema, offline.

``asyncapi-3.0.0.schema.json`` is ``schemas/3.0.0.json`` of the npm package
``@asyncapi/specs`` (Apache-2.0; see README.md here). Its definitions carry their own
``$id`` and refer to each other by it, and to the JSON Schema draft-07 meta-schema; both
resolve from this file and from ``jsonschema-specifications``, never from the network.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema_specifications import REGISTRY as SPECIFICATIONS
from referencing.jsonschema import DRAFT7

SCHEMA_FILE = Path(__file__).parent / "asyncapi-3.0.0.schema.json"


@cache
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    # No `retrieve`: an unknown reference fails instead of being fetched.
    registry = SPECIFICATIONS.with_resource(schema["$id"], DRAFT7.create_resource(schema)).crawl()
    return jsonschema.Draft7Validator(schema, registry=registry)


def _describe(error: jsonschema.ValidationError) -> str:
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    deepest = jsonschema.exceptions.best_match([error, *(error.context or [])])
    return f"{where}: {deepest.message[:300]}"


def schema_errors(doc: Any) -> list[str]:
    """Every violation of the AsyncAPI 3.0.0 schema (empty when the document is valid)."""
    return [_describe(e) for e in validator().iter_errors(doc)]


def unresolved_refs(doc: Any) -> list[str]:
    """Local ``$ref``s that point at nothing (the JSON Schema cannot check these)."""

    def resolve(ref: str) -> bool:
        node: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            key = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or key not in node:
                return False
            node = node[key]
        return True

    missing: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and (not ref.startswith("#/") or not resolve(ref)):
                missing.append(ref)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    return missing
