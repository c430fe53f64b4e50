"""The JSON wire format: one cattrs converter, pure encode/decode functions.

Decoding untrusted bytes raises only :class:`DecodeError`, naming the field path.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import cattrs
from cattrs.preconf.json import make_converter

from srvmon_core.errors import DecodeError
from srvmon_core.schema import Batch


def _make_converter() -> cattrs.Converter:
    converter = make_converter(forbid_extra_keys=False)

    def to_iso(value: datetime) -> str:
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")

    def from_iso(value: Any, _type: type) -> datetime:
        if not isinstance(value, str):
            raise ValueError(f"expected an ISO 8601 string, got {type(value).__name__}")
        parsed = datetime.fromisoformat(value)
        if parsed.utcoffset() is None:
            raise ValueError("timestamp needs a time zone, e.g. a trailing Z")
        return parsed.astimezone(UTC)

    converter.register_unstructure_hook(datetime, to_iso)
    converter.register_structure_hook(datetime, from_iso)
    return converter


CONVERTER = _make_converter()


def unstructure(obj: object) -> Any:
    """Plain JSON-ready data for any schema object."""
    return CONVERTER.unstructure(obj)


def batch_from_dict(data: Any) -> Batch:
    """Structure plain data into a Batch, raising DecodeError with the field path."""
    if not isinstance(data, dict):
        raise DecodeError(f"expected an object, got {type(data).__name__}")
    try:
        return CONVERTER.structure(data, Batch)
    except cattrs.BaseValidationError as exc:
        messages = cattrs.transform_error(exc, path="$")
        first = messages[0] if messages else str(exc)
        message, _, path = first.partition(" @ ")
        raise DecodeError(message.strip(), path.strip() or "$") from None
    except (ValueError, TypeError, KeyError) as exc:
        raise DecodeError(str(exc)) from None


def encode_batch(batch: Batch) -> bytes:
    """The batch as compact UTF-8 JSON."""
    return json.dumps(unstructure(batch), separators=(",", ":")).encode()


def decode_batch(data: bytes | str) -> Batch:
    """Parse and validate one srvmon envelope."""
    try:
        parsed = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(f"not valid JSON: {exc}") from None
    return batch_from_dict(parsed)
