"""End to end over real HTTP on SQLite: ingest, machines, latest sample, series, errors."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from srvmon_core.schema import host_id_for
from tests.server.harness import READ, T0, RunningServer, SseReader, make_batch


def test_ingest_then_read_back(server_any_db: RunningServer) -> None:
    """An ingested batch appears in /machines, /machines/{key} and its series (both DBs)."""
    server = server_any_db
    resp = server.ingest(make_batch(cpu=42.5, containers=(("web", 12.0), ("db", 3.0))))
    assert resp.status == 200, resp.body
    assert resp.json() == {"stored": 3, "duplicates": 0}

    hosts = server.request("GET", "/api/v1/machines").json()["hosts"]
    assert [h["key"] for h in hosts] == ["h1"]
    assert hosts[0]["metrics"]["cpu_percent"] == 42.5
    assert hosts[0]["status"] == "ok"
    assert hosts[0]["container_counts"]["total"] == 2
    listed = server.request("GET", "/api/v1/machines/h1/containers").json()["containers"]
    containers = {c["key"]: c for c in listed}
    assert set(containers) == {"h1:web", "h1:db"}
    assert containers["h1:web"]["metrics"]["cpu_percent"] == 12.0

    one = server.request("GET", "/api/v1/machines/h1%3Aweb").json()
    assert one["key"] == "h1:web"
    assert one["sample"]["cpu_percent"] == 12.0

    series = server.request(
        "GET",
        f"/api/v1/machines/h1/series?metric=cpu_percent&from={T0.timestamp() - 60:.0f}"
        f"&to={T0.timestamp() + 60:.0f}",
    )
    assert series.status == 200, series.body
    body = series.json()
    assert body["resolution"] == "raw"
    assert body["points"] == [[T0.timestamp(), 42.5, 42.5, 42.5]]


def test_replay_counts_duplicates(server_any_db: RunningServer) -> None:
    """Posting the same batch twice stores nothing the second time (both DBs)."""
    server = server_any_db
    batch = make_batch(containers=(("web", 1.0),))
    assert server.ingest(batch).json() == {"stored": 2, "duplicates": 0}
    assert server.ingest(batch).json() == {"stored": 0, "duplicates": 2}


def test_auth_401_and_403(server: RunningServer) -> None:
    """Ingest needs a write token: none → 401, unknown → 401, read-only → 403; reads open."""
    batch = make_batch()
    assert server.ingest(batch, token=None).status == 401
    assert server.ingest(batch, token="bogus").status == 401
    denied = server.ingest(batch, token=READ)
    assert denied.status == 403
    assert denied.json()["error"]["code"] == "forbidden"
    assert server.request("GET", "/api/v1/machines", token=None).status == 200


def test_read_auth(start_server) -> None:  # type: ignore[no-untyped-def]
    """With read_auth, reads need any valid token; SSE accepts ?token=."""
    server = start_server(read_auth=True)
    assert server.request("GET", "/api/v1/machines", token=None).status == 401
    assert server.request("GET", "/api/v1/machines", token=READ).status == 200
    assert server.request("GET", "/api/v1/alerts", token="nope").status == 401
    assert server.request("GET", "/api/v1/health", token=None).status == 200
    assert server.request("GET", "/api/v1/events", token=None).status == 401
    reader = SseReader(server.port, f"/api/v1/events?token={READ}")
    try:
        assert reader.status == 200
        reader.until(lambda f: f.get("event") == "hello")
    finally:
        reader.close()


def test_errors_are_envelopes(server: RunningServer) -> None:
    """Bad body, bad parameters, unknown ids and routes: 4xx with the envelope naming it."""
    cases = [
        ("POST", "/api/v1/ingest", b"{not json", 400, "invalid_body", "$"),
        ("POST", "/api/v1/ingest", b'{"host_id": "h"}', 400, "invalid_body", None),
        ("GET", "/api/v1/machines/nope", None, 404, "unknown_machine", "key"),
        ("GET", "/api/v1/nothing/here", None, 404, "not_found", None),
        ("GET", "/api/v1/rules/nope", None, 404, "unknown_rule", "id"),
        ("DELETE", "/api/v1/silences/nope", None, 404, "unknown_silence", "id"),
        ("GET", "/api/v1/alerts/history?limit=0", None, 400, "invalid_parameter", "limit"),
        ("GET", "/api/v1/alerts/history?from=yesterday", None, 400, "invalid_parameter", "from"),
        ("GET", "/api/v1/events?topics=bogus", None, 400, "invalid_parameter", "topics"),
        ("PATCH", "/api/v1/machines", None, 405, "method_not_allowed", None),
    ]
    server.ingest(make_batch())
    cases += [
        ("GET", "/api/v1/machines/h1/series?metric=nope", None, 400, "unknown_metric", "metric"),
        (
            "GET",
            "/api/v1/machines/h1/series?metric=cpu_percent&max_points=0",
            None,
            400,
            "invalid_parameter",
            "max_points",
        ),
        (
            "GET",
            "/api/v1/machines/h1/series?metric=cpu_percent&from=x",
            None,
            400,
            "invalid_parameter",
            "from",
        ),
    ]
    for method, path, body, status, code, field in cases:
        resp = server.request(method, path, body)
        assert resp.status == status, (method, path, resp.body)
        assert resp.headers["content-type"].startswith("application/json")
        error = resp.json()["error"]
        assert error["status"] == status and error["code"] == code, (path, error)
        if field is not None:
            assert error["field"] == field, (path, error)
        assert "Traceback" not in resp.body.decode()


def test_body_too_large_413(start_server) -> None:  # type: ignore[no-untyped-def]
    """A body over max_body_bytes gets a 413 envelope, with or without Content-Length."""
    server = start_server(max_body_bytes=1000)
    big = json.dumps({"pad": "x" * 5000}).encode()
    resp = server.request("POST", "/api/v1/ingest", big)
    assert resp.status == 413
    assert resp.json()["error"]["code"] == "body_too_large"
    ok = server.ingest(make_batch())
    assert ok.status == 200


def test_cors(start_server) -> None:  # type: ignore[no-untyped-def]
    """Allowed origins get CORS headers (also on preflight); others get none."""
    server = start_server(cors_allowed_origins={"https://ops.example"})
    allowed = server.request("GET", "/api/v1/machines", headers={"Origin": "https://ops.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://ops.example"
    denied = server.request("GET", "/api/v1/machines", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in denied.headers
    preflight = server.request(
        "OPTIONS",
        "/api/v1/ingest",
        token=None,
        headers={"Origin": "https://ops.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status == 204
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "Authorization" in preflight.headers["access-control-allow-headers"]
    bad_preflight = server.request(
        "OPTIONS", "/api/v1/ingest", token=None, headers={"Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in bad_preflight.headers


def test_health(server: RunningServer) -> None:
    """Health answers ok with a reachable DB."""
    assert server.request("GET", "/api/v1/health").json() == {"status": "ok", "db": "ok"}


def test_legacy_java_document_ingested(server: RunningServer) -> None:
    """A legacy Java collector document is accepted by /ingest and stored as a host."""
    doc = {
        "type": "host",
        "hostId": "legacy-1",
        "name": "web-03",
        "timeStamp": "2026-11-25T10:00:00",
        "cpuUsagePercent": 37.5,
        "memoryUsedBytes": 1024,
        "containers": {
            "abc123": {"name": "nginx", "cpuUsagePercent": 12.25, "memoryUsedBytes": 64}
        },
    }
    resp = server.request("POST", "/api/v1/ingest", json.dumps(doc))
    assert resp.status == 200, resp.body
    assert resp.json() == {"stored": 2, "duplicates": 0}
    host = server.request("GET", "/api/v1/machines/legacy-1").json()
    assert host["hostname"] == "web-03"
    assert host["metrics"]["cpu_percent"] == 37.5
    container = server.request("GET", "/api/v1/machines/legacy-1%3Anginx").json()
    assert container["metrics"]["cpu_percent"] == 12.25


def test_machine_keys_are_percent_decoded_exactly_once(server: RunningServer) -> None:
    """A container key's ``:`` travels as ``%3A`` and is decoded once: the key round-trips,
    and the same key encoded twice (``%253A``) names no machine."""
    assert server.ingest(make_batch(host_id="rack1", containers=(("web.1", 7.0),))).status == 200
    encoded = urllib.parse.quote("rack1:web.1", safe="")
    one = server.request("GET", f"/api/v1/machines/{encoded}")
    assert one.status == 200, one.body
    assert one.json()["key"] == "rack1:web.1"
    assert one.json()["sample"]["cpu_percent"] == 7.0
    twice = server.request("GET", f"/api/v1/machines/{urllib.parse.quote(encoded, safe='')}")
    assert twice.status == 404 and twice.json()["error"]["code"] == "unknown_machine"


def test_a_legacy_host_id_that_is_not_a_valid_id_keeps_reporting(server: RunningServer) -> None:
    """The Java system allowed any hostId ('%', '/', spaces); such a document is stored under
    the stable valid id ``host_id_for`` derives, batch after batch."""
    odd = "rack 1/50%41"
    for second in (0, 1):
        doc = {"type": "host", "hostId": odd, "name": "odd", "cpuUsagePercent": 7.0 + second}
        doc |= {"timeStamp": f"2026-11-25T10:00:0{second}", "memoryUsedBytes": 1}
        assert server.request("POST", "/api/v1/ingest", json.dumps(doc)).json()["stored"] == 1
    key = host_id_for(odd)
    one = server.request("GET", f"/api/v1/machines/{key}")
    assert one.status == 200, one.body
    assert one.json()["sample"]["cpu_percent"] == 8.0


def test_a_machine_detail_waits_behind_the_ingest_once(server: RunningServer) -> None:
    """GET /machines/{key} reads the machine and its newest sample in one job on the DB
    thread, where each job queues behind the running ingest; by name it takes one more,
    and an unknown name is a 404 without a second job."""
    assert server.ingest(make_batch(containers=(("web", 12.0),))).status == 200
    assert server.context is not None
    db = server.context.db
    real = db.run
    jobs: list[str] = []

    async def counting(fn: Any, *args: Any) -> Any:
        jobs.append(fn.__name__)
        return await real(fn, *args)

    db.run = counting  # type: ignore[method-assign]
    try:
        by_key = server.request("GET", "/api/v1/machines/h1%3Aweb")
        assert by_key.status == 200, by_key.body
        assert (by_key.json()["key"], by_key.json()["sample"]["cpu_percent"]) == ("h1:web", 12.0)
        assert by_key.json()["status"] == "ok"
        assert jobs == ["machine_with_sample"]

        jobs.clear()
        name = urllib.parse.quote("h1.example/web", safe="")
        by_name = server.request("GET", f"/api/v1/machines/{name}")
        assert by_name.status == 200, by_name.body
        assert by_name.json()["key"] == "h1:web"
        assert jobs == ["machine_with_sample", "machine_with_sample"]

        jobs.clear()
        unknown = server.request("GET", "/api/v1/machines/nowhere")
        assert unknown.status == 404 and unknown.json()["error"]["code"] == "unknown_machine"
        assert jobs == ["machine_with_sample"]
    finally:
        db.run = real  # type: ignore[method-assign]
