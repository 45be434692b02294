"""Avro encoding of topic records with the schemas kept in `pfi/schemas/`.

Records are schemaless Avro (no per-record schema, no registry); the schema name rides
in the `pfi-schema` header so that a consumer can refuse a record it cannot read instead
of misreading it. Schemas are parsed once per process.
"""

from __future__ import annotations

import io
import json
from functools import cache
from importlib import resources
from typing import Any

import fastavro

SCHEMA_VERSION = "v1"


@cache
def parsed_schema(name: str) -> Any:
    text = resources.files("pfi.schemas").joinpath(f"{name}.avsc").read_text(encoding="utf-8")
    return fastavro.parse_schema(json.loads(text))


def schema_header(name: str) -> str:
    return f"{name}.{SCHEMA_VERSION}"


def encode(schema: str, record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed_schema(schema), record)
    return buf.getvalue()


def decode(schema: str, payload: bytes) -> dict[str, Any]:
    return fastavro.schemaless_reader(io.BytesIO(payload), parsed_schema(schema))  # type: ignore[return-value]


class SchemaMismatch(ValueError):
    """A record whose schema header is not the one its topic carries."""
