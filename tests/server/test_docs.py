"""The server's docs name every route, option, SSE event and Prometheus figure."""

from __future__ import annotations

import re
from pathlib import Path

from srvmon_server.app import ROUTES
from srvmon_server.command import server
from srvmon_server.legacy.routes import ROUTES as LEGACY_ROUTES
from srvmon_server.prometheus import OWN_HELP, names_table
from srvmon_server.sse import TOPIC_OF_EVENT

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_route_in_api_md() -> None:
    """Each route's path (with {key}/{id} placeholders) appears in docs/api.md."""
    api = (DOCS / "api.md").read_text()
    for pattern, _ in [*ROUTES, *LEGACY_ROUTES]:
        prefix = re.split(r"\(", pattern)[0].rstrip("/")
        assert f"`{prefix}" in api, pattern


def test_every_sse_event_in_api_md() -> None:
    """Each SSE event name has a row in docs/api.md."""
    api = (DOCS / "api.md").read_text()
    for name in TOPIC_OF_EVENT:
        assert f"| `{name}` |" in api, name


def test_every_option_and_envvar_in_server_md() -> None:
    """Each option of `srvmon server` and its environment variable are in docs/server.md."""
    text = (DOCS / "server.md").read_text()
    for param in server.params:
        for opt in param.opts:  # type: ignore[attr-defined]
            assert f"`{opt}" in text, opt
        assert f"`{param.envvar}`" in text, param.envvar  # type: ignore[attr-defined]


def test_every_own_metric_in_server_md() -> None:
    """Each srvmon_server_* figure of /metrics is in docs/server.md."""
    text = (DOCS / "server.md").read_text()
    for name in OWN_HELP:
        assert f"`srvmon_server_{name}`" in text, name


def test_prometheus_names_table_in_metrics_md() -> None:
    """docs/metrics.md holds the Prometheus name of every flat metric, as generated."""
    assert names_table() in (DOCS / "metrics.md").read_text()
