"""Health, the OpenAPI document, Prometheus /metrics and the dashboard's index page."""

from __future__ import annotations

import asyncio
from importlib import resources
from pathlib import Path
from typing import Any

import tornado.web

from srvmon_server.errors import CONTENT_TYPE, default_code, error_body
from srvmon_server.handlers.base import ApiError, BaseHandler
from srvmon_server.prometheus import CONTENT_TYPE as PROMETHEUS_CONTENT_TYPE
from srvmon_server.storage import StorageUnavailable

HEALTH_PING_TIMEOUT_SECONDS = 2.0
"""A database that does not answer ``SELECT 1`` within this is reported unavailable."""


class HealthHandler(BaseHandler):
    """Always public (liveness probes carry no secrets); it reveals only up/down."""

    def prepare(self) -> None:
        self._body_parts = []
        self._early = False

    async def get(self) -> None:
        try:  # not on the DB thread: a long roll-up or prune pass does not stall health
            await self.ctx.db.probe(self.ctx.storage.ping, HEALTH_PING_TIMEOUT_SECONDS)
        except StorageUnavailable:
            self.set_status(503)
            self.finish(b'{"status":"degraded","db":"unavailable"}')
            return
        self.write_json({"status": "ok", "db": "ok"})


class OpenApiHandler(BaseHandler):
    """Always public, like health: the API's description holds no data."""

    def prepare(self) -> None:
        self._body_parts = []
        self._early = False

    def get(self) -> None:
        self.finish(resources.files("srvmon_server").joinpath("openapi.json").read_bytes())


class MetricsHandler(BaseHandler):
    """Built from memory (the latest view and the server's counters): no database call.
    Formatting and compression run on a worker thread (``Scrape.encoded``), so a large
    fleet's scrape (bench/bench_metrics.py) does not hold the IOLoop (SSE, ingest) for its
    whole length."""

    async def get(self) -> None:
        loop = asyncio.get_running_loop()
        accept = self.request.headers.get("Accept-Encoding", "")
        body, encoding = await loop.run_in_executor(None, self.ctx.metrics.encoded, accept)
        self.set_header("Content-Type", PROMETHEUS_CONTENT_TYPE)
        self.set_header("Vary", "Accept-Encoding")
        if encoding is not None:
            self.set_header("Content-Encoding", encoding)
        self.finish(body)


class IndexHandler(BaseHandler):
    """The dashboard page is public even with --read-auth: it holds no data, its API calls
    carry the token."""

    def prepare(self) -> None:
        self._body_parts = []
        self._early = False

    def get(self) -> None:
        index = Path(self.settings["static_path"]) / "index.html"
        if not index.is_file():
            raise ApiError(404, "not_found", "the dashboard is not installed")
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(index.read_bytes())


class StaticHandler(tornado.web.StaticFileHandler):
    """The dashboard's files; errors (404) use the JSON envelope too."""

    @classmethod
    def get_absolute_path(cls, root: str, path: str) -> str:
        if not path.isprintable():  # NUL (os.stat raises ValueError) or control characters
            raise tornado.web.HTTPError(404)
        return super().get_absolute_path(root, path)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", CONTENT_TYPE)
        if status_code == 405:
            self.set_header("Allow", "GET, HEAD")
        message = "no such file" if status_code == 404 else default_code(status_code)
        self.finish(error_body(status_code, default_code(status_code), message))
