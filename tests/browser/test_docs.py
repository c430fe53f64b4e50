"""docs/dashboard.md keeps up with the dashboard's files, routes and handled SSE events."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "srvmon_server" / "static"
DOC = (ROOT / "docs" / "dashboard.md").read_text()


def test_every_static_module_is_documented() -> None:
    """Each JS module and the stylesheet is named in the file table of docs/dashboard.md."""
    files = [p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*") if p.is_file()]
    assert files, "no dashboard files found"
    undocumented = [f for f in files if f"`{f.removeprefix('views/')}`" not in DOC]
    assert undocumented == []


def test_every_route_and_handled_event_is_documented() -> None:
    """The router's route names and the SSE events the stream listens to appear in the docs."""
    app = (STATIC / "app.js").read_text()
    routes = set(re.findall(r'parts\[0\] === "(\w+)"', app))
    assert routes == {"host", "alerts", "rules", "silences"}
    for route in routes:
        assert f"`#/{route}" in DOC, route
    sse = (STATIC / "sse.js").read_text()
    events = re.search(r"for \(const name of \[([^\]]+)\]\)", sse)
    assert events is not None
    names = re.findall(r'"(\w+)"', events.group(1))
    assert names == ["hello", "sample", "machine", "summary", "alert", "machine_deleted", "resync"]
    for name in names:
        assert f"`{name}`" in DOC, name
