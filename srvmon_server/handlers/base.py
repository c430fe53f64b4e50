"""The base handler: auth, CORS, the JSON error envelope, DB calls on the worker thread.

The one place errors become HTTP: ``write_error`` answers an ``ApiError`` as it says, any
domain error (``DecodeError``, ``ConfigError``, ``StorageUnavailable``, ``InvalidQuery``)
as ``srvmon_server.errors.http_error`` maps it, and anything else as a 500 envelope.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import tornado.web

from srvmon_server.auth import Access, bearer_token
from srvmon_server.context import ServerContext
from srvmon_server.cors import cors_headers
from srvmon_server.errors import CONTENT_TYPE, ApiError, default_code, error_body, http_error
from srvmon_server.ratelog import RateLimitedLog
from srvmon_server.storage.errors import StorageUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")
DB_DOWN_LOG = RateLimitedLog(log)
"""Why the database is unavailable (answers say only that it is), once per 10 s."""


__all__ = ["ApiError", "BaseHandler", "NotFoundHandler", "iso", "parse_time", "to_json"]


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
"""Query times outside [EARLIEST, LATEST] are refused: nothing is stored there, and
arithmetic on them (``to`` minus a default span) would overflow."""


def parse_time(raw: str, name: str) -> datetime:
    """ISO 8601 (with zone; naive means UTC) or epoch seconds, from 1970 to 9999."""
    parsed: datetime | None = None
    with contextlib.suppress(ValueError, OverflowError, OSError):
        parsed = datetime.fromtimestamp(float(raw), UTC)
    if parsed is None:
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise ApiError(
                400, "invalid_parameter", f"{name} must be ISO 8601 or epoch seconds", name
            ) from None
        if parsed.utcoffset() is None:
            parsed = parsed.replace(tzinfo=UTC)
    try:
        inside = EARLIEST <= parsed <= LATEST
    except OverflowError:  # an offset pushing year 1 or 9999 past datetime's range
        inside = False
    if not inside:
        raise ApiError(
            400, "invalid_parameter", f"{name} must lie between 1970-01-01 and 9999-01-01", name
        )
    return parsed


def iso(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value


def encode_json(data: Any) -> bytes:
    """``data`` as compact UTF-8 JSON, datetimes as ISO strings."""
    return json.dumps(to_json(data), separators=(",", ":")).encode()


def to_json(value: Any) -> Any:
    """Datetimes to ISO strings, recursively."""
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return iso(value)


@tornado.web.stream_request_body
class BaseHandler(tornado.web.RequestHandler):
    """Every API handler derives from this.

    Bodies are streamed so the size limit is enforced before a large body is buffered: a
    ``Content-Length`` over the limit is refused at once (413), a chunked body as soon as it
    passes the limit. Auth is checked before any body byte is read.
    """

    needs: dict[str, Access] = {"GET": Access.READ, "HEAD": Access.READ}
    """The scope each method needs; any other method needs ``admin``."""
    body = b""
    _body_parts: list[bytes]
    _body_size = 0
    _too_large = False
    _early = True
    """True until ``prepare`` returns: an answer now comes before the request was read, and
    Tornado closes the connection after it, so the answer says ``Connection: close``."""

    def data_received(self, chunk: bytes) -> None:
        self._body_size += len(chunk)
        if self._body_size > self.ctx.config.max_body_bytes:
            self._too_large = True
            self._body_parts = []
            return
        self._body_parts.append(chunk)

    def _check_size(self) -> None:
        limit = self.ctx.config.max_body_bytes
        if self._too_large:
            raise ApiError(413, "body_too_large", f"the body exceeds {limit} bytes")
        self.body = b"".join(self._body_parts)

    @property
    def ctx(self) -> ServerContext:
        context = self.application.settings["srvmon"]
        assert isinstance(context, ServerContext)
        return context

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE)
        allowed = self.application.settings["srvmon"].config.cors_allowed_origins
        for name, value in cors_headers(allowed, self.request.headers.get("Origin")).items():
            self.set_header(name, value)

    def token(self) -> str | None:
        return bearer_token(self.request.headers.get("Authorization"))

    def prepare(self) -> None:
        self._body_parts = []
        if self.request.method == "OPTIONS":
            self._early = False
            return
        limit = self.ctx.config.max_body_bytes
        self.request.connection.set_max_body_size(4 * limit + 1)  # type: ignore[union-attr]
        length = self.request.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise ApiError(413, "body_too_large", f"the body exceeds {limit} bytes")
        needed = self.needs.get(self.request.method or "", Access.ADMIN)
        denied = self.ctx.tokens.policy.check(needed, self.token())
        if denied is not None:
            if denied.status == 401:
                self.set_header("WWW-Authenticate", 'Bearer realm="srvmon"')
            raise ApiError(denied.status, denied.code, denied.message)
        self._early = False

    def allowed_methods(self) -> list[str]:
        """The methods this route serves (for ``Allow``): those the handler defines, HEAD
        with GET, and OPTIONS (CORS preflight)."""
        base = tornado.web.RequestHandler
        served = [
            m
            for m in ("GET", "POST", "PUT", "DELETE", "PATCH")
            if getattr(type(self), m.lower()) is not getattr(base, m.lower())
        ]
        if "GET" in served:
            served.insert(1, "HEAD")
        return [*served, "OPTIONS"]

    async def head(self, *args: str) -> None:
        """HEAD on every GET route: the GET answer's status and headers, no body."""
        if type(self).get is tornado.web.RequestHandler.get:
            raise tornado.web.HTTPError(405)
        result = self.get(*args)
        if inspect.isawaitable(result):
            await result

    def options(self, *_args: str) -> None:
        """CORS preflight: headers only for allowed origins."""
        allowed = self.ctx.config.cors_allowed_origins
        origin = self.request.headers.get("Origin")
        for name, value in cors_headers(allowed, origin, preflight=True).items():
            self.set_header(name, value)
        self.set_status(204)
        self.finish()

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        if self._headers_written:
            # a stream already started: nothing sane can be sent, just close
            if not self._finished:
                self.finish()
            return
        super().send_error(status_code, **kwargs)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        self.clear_header("Content-Encoding")
        self.set_header("Content-Type", CONTENT_TYPE)
        if self._early:
            self.set_header("Connection", "close")
        if status_code == 405:
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        mapped = None if exc is None else http_error(exc)
        if isinstance(exc, StorageUnavailable):
            DB_DOWN_LOG.warning("%s %s: %s", self.request.method, self.request.path, exc)
        if mapped is not None:
            self.set_status(mapped.status)
            self.finish(error_body(mapped.status, mapped.code, mapped.message, mapped.field))
            return
        if isinstance(exc, tornado.web.HTTPError):
            message = exc.log_message or exc.reason or default_code(status_code)
            if status_code == 405:
                message = f"method {self.request.method} is not allowed here"
            self.finish(error_body(status_code, default_code(status_code), message % exc.args))
            return
        if status_code >= 500 and exc is not None:
            log.error("unexpected error on %s %s", self.request.method, self.request.path)
            message = "internal error; see the server log"
        else:
            message = default_code(status_code).replace("_", " ")
        self.finish(error_body(status_code, default_code(status_code), message))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, tornado.web.HTTPError) or http_error(value) is not None:
            return
        super().log_exception(typ, value, tb)

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(encode_json(data))

    async def write_large_json(self, build: Callable[[], Any]) -> None:
        """Like ``write_json`` for answers that may be large (series, history pages):
        ``build()`` makes the data and it is encoded on a worker thread, so the IOLoop (SSE,
        health) goes on meanwhile. ``build`` must only read values nothing else changes."""
        body = await asyncio.get_running_loop().run_in_executor(None, lambda: encode_json(build()))
        self.finish(body)

    def json_body(self) -> Any:
        self._check_size()
        try:
            return json.loads(self.body or b"null")
        except RecursionError:
            raise ApiError(400, "invalid_body", "body is nested too deeply") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "invalid_body", f"body is not valid JSON: {exc}") from None

    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run one storage call on the single DB worker thread (DB down: StorageUnavailable,
        answered 503 by ``write_error``)."""
        return await self.ctx.db.run(fn, *args)


class NotFoundHandler(BaseHandler):
    def prepare(self) -> None:
        raise ApiError(404, "not_found", f"no route for {self.request.path}")
