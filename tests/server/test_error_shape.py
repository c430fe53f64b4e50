"""The base handler turns every failure, even an unexpected bug, into the JSON envelope."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import tornado.httpclient
import tornado.httpserver
import tornado.netutil
import tornado.web

from srvmon_core.errors import ConfigError, DecodeError
from srvmon_server.config import ServerConfig
from srvmon_server.context import build_context
from srvmon_server.handlers.base import BaseHandler, NotFoundHandler
from srvmon_server.storage import InvalidQuery, Storage, StorageUnavailable
from tests.helpers import run_async


class Buggy(BaseHandler):
    def get(self) -> None:
        raise RuntimeError("secret internal detail")


class HttpErrorRaiser(BaseHandler):
    def get(self) -> None:
        raise tornado.web.HTTPError(418, "short and %s", "stout")


DOMAIN_ERRORS: dict[str, Exception] = {
    "down": StorageUnavailable("connection refused"),
    "query": InvalidQuery("unknown metric 'x'"),
    "decode": DecodeError("must be a number, got true", "$.containers[0].cpu_percent"),
    "config": ConfigError("unknown field", "$.wran"),
}


class DomainErrorRaiser(BaseHandler):
    """A service below the handlers raised a domain error; the handler does not catch it."""

    def get(self, which: str) -> None:
        raise DOMAIN_ERRORS[which]


def serve(tmp_path: Path, paths: list[str]) -> list[tuple[int, dict[str, object], str]]:
    """GET each path from a real server with the test handlers; (status, JSON, raw body)."""

    async def scenario() -> list[tuple[int, dict[str, object], str]]:
        storage = Storage.open(f"sqlite:///{tmp_path / 'shape.db'}")
        context = build_context(
            ServerConfig(write_tokens={"w"}), storage, clock=lambda: datetime.now(UTC)
        )
        app = tornado.web.Application(
            [
                (r"/bug", Buggy),
                (r"/teapot", HttpErrorRaiser),
                (r"/domain/(\w+)", DomainErrorRaiser),
            ],
            default_handler_class=NotFoundHandler,
            srvmon=context,
        )
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        server = tornado.httpserver.HTTPServer(app)
        server.add_sockets(sockets)
        port = sockets[0].getsockname()[1]
        client = tornado.httpclient.AsyncHTTPClient()
        out = []
        try:
            for path in paths:
                resp = await client.fetch(f"http://127.0.0.1:{port}{path}", raise_error=False)
                out.append((resp.code, json.loads(resp.body), resp.body.decode()))
        finally:
            server.stop()
            context.close()
            storage.close()
        return out

    return run_async(scenario())


def test_unexpected_exception_is_a_500_envelope_without_traceback(tmp_path: Path) -> None:
    """A bug answers 500 with the envelope; neither the message nor a traceback leaks."""
    (bug_status, bug, bug_raw), (tea_status, tea, _) = serve(tmp_path, ["/bug", "/teapot"])
    assert bug_status == 500
    assert bug == {
        "error": {
            "status": 500,
            "code": "internal_server_error",
            "message": "internal error; see the server log",
        }
    }
    assert "secret" not in bug_raw and "Traceback" not in bug_raw
    assert tea_status == 418
    assert tea["error"]["message"] == "short and stout"


def test_domain_errors_become_http_in_one_place(tmp_path: Path) -> None:
    """Errors raised below the handlers map to the same envelope: the database down is a
    503, a bad query parameter, a bad body or bad rule data a 400 naming the field."""
    answers = serve(tmp_path, [f"/domain/{name}" for name in DOMAIN_ERRORS])
    assert [(status, body) for status, body, _ in answers] == [
        (
            503,
            {
                "error": {
                    "status": 503,
                    "code": "db_unavailable",
                    "message": "the database is unavailable; see the server log",
                }
            },
        ),
        (
            400,
            {
                "error": {
                    "status": 400,
                    "code": "invalid_parameter",
                    "message": "unknown metric 'x'",
                }
            },
        ),
        (
            400,
            {
                "error": {
                    "status": 400,
                    "code": "invalid_body",
                    "message": "must be a number, got true",
                    "field": "$.containers[0].cpu_percent",
                }
            },
        ),
        (
            400,
            {
                "error": {
                    "status": 400,
                    "code": "invalid_body",
                    "message": "unknown field",
                    "field": "$.wran",
                }
            },
        ),
    ]
