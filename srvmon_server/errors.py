"""The one JSON error envelope every HTTP error uses. Pure: bytes in, bytes out."""

from __future__ import annotations

import json
from http import HTTPStatus

CONTENT_TYPE = "application/json; charset=utf-8"


def default_code(status: int) -> str:
    """A machine-readable code for a status when the caller has none more precise."""
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def error_dict(
    status: int, code: str, message: str, field: str | None = None
) -> dict[str, dict[str, object]]:
    """The envelope as plain data: ``{"error": {"status", "code", "message", "field"?}}``."""
    error: dict[str, object] = {"status": status, "code": code, "message": message}
    if field is not None:
        error["field"] = field
    return {"error": error}


def error_body(status: int, code: str, message: str, field: str | None = None) -> bytes:
    """The envelope serialised as compact UTF-8 JSON."""
    return json.dumps(error_dict(status, code, message, field), separators=(",", ":")).encode()
