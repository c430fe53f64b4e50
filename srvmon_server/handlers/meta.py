"""Health, the OpenAPI document, Prometheus /metrics and the dashboard's index page."""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path
from typing import Any

import tornado.web

from srvmon_server.errors import CONTENT_TYPE, default_code, error_body
from srvmon_server.handlers.base import ApiError, BaseHandler
from srvmon_server.prometheus import (
    REJECTED_SAMPLES,
    exposition,
    rejected_family,
    render_metrics,
)
from srvmon_server.storage import StorageUnavailable

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
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
    def get(self) -> None:
        self.finish(resources.files("srvmon_server").joinpath("openapi.json").read_bytes())


class MetricsHandler(BaseHandler):
    async def get(self) -> None:
        ctx = self.ctx
        records = await self.db(ctx.storage.samples.machines)
        own = {
            "ingest_batches_total": float(ctx.stats.ingest_batches_total),
            "ingest_samples_total": float(ctx.stats.ingest_samples_total),
            "ingest_duplicates_total": float(ctx.stats.ingest_duplicates_total),
            "ingest_samples_per_second": ctx.stats.samples_per_second(time.monotonic()),
            "sse_clients": float(ctx.hub.client_count),
            "sse_dropped_clients_total": float(ctx.hub.dropped_clients),
            "db_latency_seconds": ctx.db.latency_seconds,
            "db_errors_total": float(ctx.db.errors_total),
            "alert_events_total": float(ctx.stats.alert_events_total),
            "notifications_sent_total": float(ctx.notifier.sent),
            "notifications_failed_total": float(ctx.notifier.failed),
        }
        families = render_metrics(records, own)
        families[REJECTED_SAMPLES] = rejected_family(ctx.stats.rejected_samples_total)
        self.set_header("Content-Type", PROMETHEUS_CONTENT_TYPE)
        self.finish(exposition(families))


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
