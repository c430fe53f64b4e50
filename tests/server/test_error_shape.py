"""The base handler turns every failure, even an unexpected bug, into the JSON envelope."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import tornado.httpclient
import tornado.httpserver
import tornado.netutil
import tornado.web

from srvmon_server.config import ServerConfig
from srvmon_server.context import ServerContext
from srvmon_server.handlers.base import BaseHandler, NotFoundHandler
from tests.helpers import run_async


class Buggy(BaseHandler):
    def get(self) -> None:
        raise RuntimeError("secret internal detail")


class HttpErrorRaiser(BaseHandler):
    def get(self) -> None:
        raise tornado.web.HTTPError(418, "short and %s", "stout")


def test_unexpected_exception_is_a_500_envelope_without_traceback() -> None:
    """A bug answers 500 with the envelope; neither the message nor a traceback leaks."""

    async def scenario() -> list[tuple[int, dict[str, object], str]]:
        context = ServerContext(
            ServerConfig(write_tokens={"w"}), storage=None, clock=lambda: datetime.now(UTC)
        )
        app = tornado.web.Application(
            [(r"/bug", Buggy), (r"/teapot", HttpErrorRaiser)],
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
            for path in ("/bug", "/teapot"):
                resp = await client.fetch(f"http://127.0.0.1:{port}{path}", raise_error=False)
                out.append((resp.code, json.loads(resp.body), resp.body.decode()))
        finally:
            server.stop()
            context.close()
        return out

    (bug_status, bug, bug_raw), (tea_status, tea, _) = run_async(scenario())
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
