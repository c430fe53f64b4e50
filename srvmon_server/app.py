"""The application factory: routes, settings and the shared ServerContext."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tornado.web
from tornado.log import access_log

from srvmon_server.bus import EventBus
from srvmon_server.config import ServerConfig
from srvmon_server.context import build_context
from srvmon_server.handlers.alerts import (
    ActiveAlertsHandler,
    HistoryHandler,
    SilenceHandler,
    SilencesHandler,
)
from srvmon_server.handlers.base import NotFoundHandler
from srvmon_server.handlers.events import EventsHandler
from srvmon_server.handlers.ingest import IngestHandler
from srvmon_server.handlers.machines import (
    MachineHandler,
    MachineRulesHandler,
    MachinesHandler,
    SeriesHandler,
)
from srvmon_server.handlers.meta import (
    HealthHandler,
    IndexHandler,
    MetricsHandler,
    OpenApiHandler,
    StaticHandler,
)
from srvmon_server.handlers.names import ResolveHandler
from srvmon_server.handlers.rules import RuleHandler, RulesHandler
from srvmon_server.handlers.tokens import TokenHandler, TokenRotateHandler, TokensHandler
from srvmon_server.storage import Storage

PACKAGE_STATIC = Path(__file__).parent / "static"
KEY = r"([^/]+)"

ROUTES: list[tuple[str, type[tornado.web.RequestHandler]]] = [
    (r"/api/v1/ingest", IngestHandler),
    (r"/api/v1/machines", MachinesHandler),
    (rf"/api/v1/machines/{KEY}/series", SeriesHandler),
    (rf"/api/v1/machines/{KEY}/rules", MachineRulesHandler),
    (rf"/api/v1/machines/{KEY}", MachineHandler),
    (r"/api/v1/rules", RulesHandler),
    (rf"/api/v1/rules/{KEY}", RuleHandler),
    (r"/api/v1/alerts", ActiveAlertsHandler),
    (r"/api/v1/alerts/history", HistoryHandler),
    (r"/api/v1/silences", SilencesHandler),
    (rf"/api/v1/silences/{KEY}", SilenceHandler),
    (r"/api/v1/tokens", TokensHandler),
    (rf"/api/v1/tokens/{KEY}/rotate", TokenRotateHandler),
    (rf"/api/v1/tokens/{KEY}", TokenHandler),
    (r"/api/v1/health", HealthHandler),
    (r"/api/v1/openapi.json", OpenApiHandler),
    (r"/api/v1/events", EventsHandler),
    (r"/metrics", MetricsHandler),
    (r"/api/v1/resolve", ResolveHandler),
]
"""Every API route; the OpenAPI document lists exactly these (a test checks it)."""


TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&]*")


def redact(uri: str) -> str:
    """The request URI with any ``token=`` query value hidden, for the access log."""
    return TOKEN_IN_QUERY.sub(r"\1<redacted>", uri)


def log_request(handler: tornado.web.RequestHandler) -> None:
    """Tornado's access log line, minus tokens given as ``?token=`` (SSE)."""
    status = handler.get_status()
    log_method = access_log.info if status < 400 else access_log.warning
    if status >= 500:
        log_method = access_log.error
    request = handler.request
    log_method(
        "%d %s %s (%s) %.2fms",
        status,
        request.method,
        redact(request.uri or ""),
        request.remote_ip,
        1000.0 * request.request_time(),
    )


def utc_now() -> datetime:
    return datetime.now(UTC)


def make_app(
    config: ServerConfig,
    storage: Storage,
    *,
    clock: Callable[[], datetime] = utc_now,
    bus: EventBus | None = None,
    **settings: Any,
) -> tornado.web.Application:
    """Build the application. Loads rules and alert state from ``storage`` (seeding the
    default rules on first start) and, when an event loop is running, starts the periodic
    jobs; otherwise call ``app.settings["srvmon"].start()`` from the loop. Call
    ``app.settings["srvmon"].close()`` to stop. ``bus``: where live events go (default:
    this process's SSE hub).
    """
    context = build_context(config, storage, clock, bus=bus)
    static_path = config.static_path or os.fspath(PACKAGE_STATIC)
    handlers: list[Any] = [*ROUTES]
    handlers.append((r"/", IndexHandler))
    if config.legacy.enabled:  # the original Java back end's routes (srvmon_server/legacy)
        from srvmon_server.legacy.routes import install

        legacy_routes, settings["srvmon_legacy"] = install(context, config.legacy)
        handlers.extend(legacy_routes)
    app = tornado.web.Application(
        handlers,
        default_handler_class=NotFoundHandler,
        static_path=static_path,
        static_handler_class=StaticHandler,
        srvmon=context,
        log_function=log_request,
        **settings,
    )
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        context.start()
    return app
