"""Health, OpenAPI (in step with the routes), Prometheus /metrics, the dashboard page."""

from __future__ import annotations

import gzip
import re

import pytest

from srvmon_server.app import ROUTES
from srvmon_server.legacy.routes import ROUTES as LEGACY_ROUTES
from srvmon_server.prometheus import GZIP_FROM_BYTES, accepts_gzip
from tests.server.harness import RunningServer, make_batch


def route_to_openapi(pattern: str) -> str:
    names = iter(["key"] * 10)
    path = pattern
    if pattern.startswith(("/api/v1/rules/", "/api/v1/silences/", "/api/v1/tokens/")):
        names = iter(["id"])
    return re.sub(r"\(\[\^/\]\+\)", lambda _m: "{" + next(names) + "}", path)


def test_openapi_lists_exactly_the_routes(server: RunningServer) -> None:
    """Every app route (and every legacy route) is an OpenAPI path with the same methods,
    and vice versa."""
    resp = server.request("GET", "/api/v1/openapi.json")
    assert resp.status == 200
    doc = resp.json()
    assert doc["openapi"].startswith("3.1")
    documented = {path: set(ops) for path, ops in doc["paths"].items()}
    served = {}
    for pattern, handler in [*ROUTES, *LEGACY_ROUTES]:
        methods = {
            m.lower()
            for m in ("GET", "POST", "PUT", "DELETE")
            if getattr(handler, m.lower()) is not getattr(handler.__mro__[-2], m.lower(), None)
        }
        served[route_to_openapi(pattern)] = methods
    assert documented == served
    legacy = {route_to_openapi(pattern) for pattern, _ in LEGACY_ROUTES}
    tagged = {
        p
        for p, ops in doc["paths"].items()
        if any("legacy" in o.get("tags", ()) for o in ops.values())
    }
    assert tagged == legacy  # the legacy routes, and only they, under the legacy tag
    assert [t["name"] for t in doc["tags"]] == ["legacy"]


def test_metrics_exposition(server: RunningServer) -> None:
    """/metrics shows the latest machine figures under Prometheus names and base units
    (percent as a 0-1 ratio), per machine up and last seen, and the server's own figures."""
    server.ingest(make_batch(cpu=42.5, containers=(("web", 12.0),)))
    resp = server.request("GET", "/metrics")
    assert resp.status == 200
    assert resp.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    lines = resp.body.decode().splitlines()
    host = 'host_id="h1",hostname="h1.example"'
    web = f'container="web",{host}'
    expected = [
        f'srvmon_machine_up{{{host},kind="host"}} 1.0',
        f'srvmon_machine_up{{{web},kind="container"}} 1.0',
        f'srvmon_machine_last_seen_timestamp_seconds{{{host},kind="host"}} 1.7956008e+09',
        f"srvmon_host_cpu_ratio{{{host}}} 0.425",
        f"srvmon_host_memory_ratio{{{host}}} 0.25",
        f"srvmon_host_memory_used_bytes{{{host}}} 2000.0",
        f"srvmon_host_load_1{{{host}}} 0.5",
        f"srvmon_container_cpu_ratio{{{web}}} 0.12",
        f"srvmon_container_restarts_total{{{web}}} 0.0",
        "# TYPE srvmon_container_restarts_total counter",
        "srvmon_server_ingest_samples_total 2.0",
        "srvmon_server_ingest_batches_total 1.0",
        "srvmon_server_sse_clients 0.0",
        "srvmon_server_alertmanager_alerts_active 0.0",
        "# TYPE srvmon_server_ingest_samples_total counter",
    ]
    assert [line for line in expected if line not in lines] == []
    assert not [line for line in lines if "_percent" in line or "_per_s{" in line]
    latency = [x for x in lines if x.startswith("srvmon_server_db_latency_seconds ")]
    assert len(latency) == 1 and float(latency[0].split()[1]) > 0


def test_dashboard_index_and_static(start_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """/ serves index.html (public even with read auth), /static/ its files, 404 envelopes."""
    static = tmp_path / "static"
    static.mkdir()
    (static / "index.html").write_text("<html>srvmon</html>")
    (static / "app.js").write_text("console.log(1)")
    server = start_server(static_path=str(static), read_auth=True)
    index = server.request("GET", "/", token=None)
    assert index.status == 200
    assert index.body == b"<html>srvmon</html>"
    assert index.headers["content-type"].startswith("text/html")
    js = server.request("GET", "/static/app.js", token=None)
    assert js.status == 200 and js.body == b"console.log(1)"
    missing = server.request("GET", "/static/nope.js", token=None)
    assert missing.status == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_metrics_are_gzipped_for_a_client_that_accepts_gzip(server: RunningServer) -> None:
    """Prometheus sends ``Accept-Encoding: gzip``: it gets the same text compressed, with
    ``Content-Encoding: gzip`` and ``Vary``. A client that does not ask, or refuses gzip
    with q=0, gets the text as it is."""
    containers = tuple((f"svc-{i}", float(i)) for i in range(20))
    server.ingest(make_batch(cpu=42.5, containers=containers))
    plain = server.request("GET", "/metrics")
    assert plain.status == 200
    assert "content-encoding" not in plain.headers
    assert plain.headers["vary"] == "Accept-Encoding"
    assert len(plain.body) >= GZIP_FROM_BYTES
    packed = server.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.headers["content-type"] == plain.headers["content-type"]
    text = gzip.decompress(packed.body)
    assert len(packed.body) * 4 < len(text)
    own = re.compile(rb"^srvmon_server_.*$", re.MULTILINE)  # they count the requests
    assert own.sub(b"", text) == own.sub(b"", plain.body)
    refused = server.request("GET", "/metrics", headers={"Accept-Encoding": "gzip;q=0, *"})
    assert "content-encoding" not in refused.headers
    assert refused.body.startswith(b"# HELP srvmon_machine_up ")


@pytest.mark.parametrize(
    ("header", "admitted"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("deflate, GZIP;q=0.5", True),
        ("*", True),
        ("", False),
        ("identity", False),
        ("gzip;q=0", False),
        ("gzip;q=0.000, *", False),
        ("br;q=1, *;q=0.1", True),
        ("*;q=0", False),
        ("gzip;q=oops", False),
    ],
)
def test_accept_encoding_admits_gzip(header: str, admitted: bool) -> None:
    assert accepts_gzip(header) is admitted
