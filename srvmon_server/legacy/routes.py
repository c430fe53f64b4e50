"""The legacy routes and :func:`install`, which ``app.make_app`` calls when they are on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from srvmon_server.legacy.config import LegacyConfig
from srvmon_server.legacy.handlers import (
    AlertStreamHandler,
    AllHistoryHandler,
    DayHistoryHandler,
    InventoryHandler,
    MetricsHandler,
    OverLimitsHandler,
    TargetHistoryHandler,
    UnderLimitsHandler,
)
from srvmon_server.legacy.live import LegacyLive
from srvmon_server.legacy.websocket import MetricsSocketHandler

if TYPE_CHECKING:
    from srvmon_server.context import ServerContext

ROUTES: list[tuple[str, Any]] = [
    (r"/api/metrics", MetricsHandler),
    (r"/api/metrics/threshold-setting", OverLimitsHandler),
    (r"/api/metrics/under-threshold-setting", UnderLimitsHandler),
    (r"/api/metrics/threshold-history", TargetHistoryHandler),
    (r"/api/metrics/threshold-history-all", AllHistoryHandler),
    (r"/api/metrics/history", DayHistoryHandler),
    (r"/api/metrics/threshold-alert", AlertStreamHandler),
    (r"/api/inventory/list", InventoryHandler),
    (r"/ws/metrics", MetricsSocketHandler),
]
"""The legacy routes; the OpenAPI document lists them under the ``legacy`` tag."""


def install(ctx: ServerContext, config: LegacyConfig) -> tuple[list[tuple[str, Any]], LegacyLive]:
    """Listen to ``ctx``'s live publisher; return the routes and the live state (the
    application setting ``srvmon_legacy``)."""
    live = LegacyLive(ctx, config)
    live.install()
    return list(ROUTES), live
