"""The one JSON error envelope every HTTP error uses, and the one place domain errors
become HTTP. Pure: exceptions and values in, status and bytes out.

Services (ingest, alerting, storage) raise domain errors: ``DecodeError`` and
``ConfigError`` from srvmon_core, ``TimestampRejected`` from the ingest pipeline,
``StorageUnavailable`` and ``InvalidQuery`` from storage.
Only the handlers speak HTTP: they raise :class:`ApiError` for what is HTTP's own (auth,
sizes, unknown ids), and the base handler maps any other error through :func:`http_error`.
"""

from __future__ import annotations

import json
from http import HTTPStatus

from srvmon_core.errors import ConfigError, DecodeError
from srvmon_server.ingest import TimestampRejected
from srvmon_server.names import AmbiguousMachine, TooManyMachines, UnknownMachine
from srvmon_server.storage.errors import InvalidQuery, StorageUnavailable

CONTENT_TYPE = "application/json; charset=utf-8"


class ApiError(Exception):
    """An HTTP answer in the envelope: status, machine-readable code, message, field."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def http_error(exc: BaseException) -> ApiError | None:
    """The HTTP answer for a domain error; None for anything else (a bug: 500)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, StorageUnavailable):  # the detail names the database: log it only
        return ApiError(503, "db_unavailable", "the database is unavailable; see the server log")
    if isinstance(exc, InvalidQuery):
        return ApiError(400, "invalid_parameter", str(exc))
    if isinstance(exc, TimestampRejected):
        return ApiError(422, "timestamp_out_of_range", exc.message, exc.path)
    if isinstance(exc, DecodeError):
        return ApiError(400, "invalid_body", exc.message, exc.path)
    if isinstance(exc, ConfigError):
        return ApiError(400, "invalid_body", exc.message, exc.path)
    if isinstance(exc, UnknownMachine):
        return ApiError(404, "unknown_machine", str(exc), "machine")
    if isinstance(exc, AmbiguousMachine):
        return ApiError(409, "ambiguous_machine", str(exc), "machine")
    if isinstance(exc, TooManyMachines):
        return ApiError(400, "invalid_parameter", str(exc), "machine")
    return None


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
