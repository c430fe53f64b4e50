"""POST /api/v1/ingest with {"batches": [...]}: per-envelope answers over real HTTP."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from srvmon_core.codec import unstructure
from srvmon_server.ingest import MAX_BATCHES_PER_REQUEST
from tests.server.conftest import StartServer
from tests.server.harness import T0, RunningServer, SseReader, make_batch
from tests.server.test_fuzz import Relay


def body_of(*items: Any) -> str:
    return json.dumps({"batches": list(items)})


def machine_keys(server: RunningServer) -> list[str]:
    hosts = server.request("GET", "/api/v1/machines").json()["hosts"]
    return sorted([h["key"] for h in hosts] + [c["key"] for h in hosts for c in h["containers"]])


def envelope(host_id: str, seconds: float, cpu: float = 10.0, **kw: Any) -> dict[str, Any]:
    data: dict[str, Any] = unstructure(
        make_batch(host_id=host_id, at=T0 + timedelta(seconds=seconds), cpu=cpu, **kw)
    )
    return data


def test_mixed_good_and_bad_envelopes_are_answered_one_by_one(
    server_any_db: RunningServer,
) -> None:
    """A bad envelope gets its own error (field path under $.batches[i]); the others are
    stored with exact counts; replaying the body stores nothing (both DBs)."""
    bad = envelope("h9", 0, containers=(("web", 1.0),))
    bad["containers"][0]["cpu_percent"] = "hot"
    body = body_of(
        envelope("h1", 0, containers=(("web", 1.0), ("db", 2.0))),
        bad,
        envelope("h2", 0),
        envelope("h1", 1, cpu=77.0),
    )
    resp = server_any_db.request("POST", "/api/v1/ingest", body)
    assert resp.status == 200, resp.body
    results = resp.json()["results"]
    assert results[0] == {"stored": 3, "duplicates": 0}
    assert results[1]["error"]["status"] == 400
    assert results[1]["error"]["code"] == "invalid_body"
    assert results[1]["error"]["field"] == "$.batches[1].containers[0].cpu_percent"
    assert results[2:] == [{"stored": 1, "duplicates": 0}, {"stored": 1, "duplicates": 0}]
    assert machine_keys(server_any_db) == ["h1", "h1:db", "h1:web", "h2"]
    h1 = server_any_db.request("GET", "/api/v1/machines/h1").json()
    assert h1["metrics"]["cpu_percent"] == 77.0
    again = server_any_db.request("POST", "/api/v1/ingest", body).json()["results"]
    assert [r.get("duplicates") for r in again] == [3, None, 1, 1]
    assert [r.get("stored") for r in again] == [0, None, 0, 0]


def test_a_single_envelope_body_is_answered_as_before(server: RunningServer) -> None:
    """Without ``batches`` the body is one envelope and the answer has no ``results``."""
    resp = server.request("POST", "/api/v1/ingest", json.dumps(envelope("h1", 0)))
    assert resp.json() == {"stored": 1, "duplicates": 0}


def test_a_malformed_batches_body_is_rejected_as_a_whole(server: RunningServer) -> None:
    """``batches`` not a list, empty, too long, or with a sibling field: one 400 naming it;
    nothing is stored."""
    too_many = [envelope("h1", i) for i in range(MAX_BATCHES_PER_REQUEST + 1)]
    cases = [
        (json.dumps({"batches": {}}), "$.batches"),
        (json.dumps({"batches": []}), "$.batches"),
        (body_of(*too_many), "$.batches"),
        (json.dumps({"batches": [envelope("h1", 0)], "extra": 1}), "$.extra"),
    ]
    for body, field in cases:
        resp = server.request("POST", "/api/v1/ingest", body)
        assert resp.status == 400, body[:80]
        assert resp.json()["error"]["code"] == "invalid_body"
        assert resp.json()["error"]["field"] == field
    assert machine_keys(server) == []


def test_sample_events_follow_envelope_order(server: RunningServer) -> None:
    """Every stored envelope publishes its sample events, in envelope order; a replayed or
    bad envelope publishes none."""
    server.ingest(make_batch(host_id="h0"))
    reader = SseReader(server.port, "/api/v1/events?topics=metrics")
    try:
        reader.until(lambda f: f.get("event") == "hello")
        bad = envelope("hx", 0)
        bad["timestamp"] = "yesterday"
        body = body_of(
            envelope("h0", 0),  # replay: stored 0
            envelope("h1", 0, cpu=1.0),
            bad,
            envelope("h2", 0, cpu=2.0),
            envelope("h1", 1, cpu=3.0),
        )
        resp = server.request("POST", "/api/v1/ingest", body)
        assert [r.get("stored") for r in resp.json()["results"]] == [0, 1, None, 1, 1]
        frames = reader.until(
            lambda f: f.get("event") == "sample" and f["data"]["metrics"]["cpu_percent"] == 3.0
        )
        samples = [f["data"] for f in frames if f.get("event") == "sample"]
        assert [(s["key"], s["metrics"]["cpu_percent"]) for s in samples] == [
            ("h1", 1.0),
            ("h2", 2.0),
            ("h1", 3.0),
        ]
    finally:
        reader.close()


def test_database_down_answers_503_for_the_whole_request(
    start_server: StartServer,
    mariadb_server: Any,
) -> None:
    """MariaDB unreachable: a batches body is answered 503 as a whole."""
    url = mariadb_server.create_database("srvmon_batches_dead")
    try:
        relay = Relay(mariadb_server.port)
        relayed = url.replace(f":{mariadb_server.port}/", f":{relay.port}/")
        server = start_server(url=relayed)
        assert server.ingest(make_batch()).status == 200
        relay.cut()
        resp = server.request("POST", "/api/v1/ingest", body_of(envelope("h1", 1)))
        assert resp.status == 503, resp.body
        assert resp.json()["error"]["code"] == "db_unavailable"
    finally:
        mariadb_server.drop_database("srvmon_batches_dead")


def test_sse_storage_and_metrics_agree_on_each_machine(server: RunningServer) -> None:
    """One view per machine: the `sample` event, the stored inventory and /metrics show the
    same state and the same flat metrics (a host is `running` everywhere, not `up`)."""
    reader = SseReader(server.port, "/api/v1/events?topics=metrics")
    try:
        reader.until(lambda f: f.get("event") == "hello")
        batch = make_batch(host_id="h7", cpu=42.0, containers=(("web", 3.5),))
        assert server.ingest(batch).status == 200
        frames = reader.until(lambda f: f.get("event") == "sample" and f["data"]["key"] == "h7:web")
    finally:
        reader.close()
    events = {f["data"]["key"]: f["data"] for f in frames if f.get("event") == "sample"}
    assert set(events) == {"h7", "h7:web"}
    for key, event in events.items():
        record = server.storage.samples.machine(key)
        assert record is not None
        assert (record.state, record.metrics) == (event["state"], event["metrics"]), key
    assert events["h7"]["state"] == "running"
    assert events["h7"]["metrics"]["cpu_percent"] == 42.0
    assert events["h7:web"]["metrics"] == {"cpu_percent": 3.5, "restart_count": 0.0}
    text = server.request("GET", "/metrics").body.decode()
    assert 'srvmon_host_cpu_ratio{host_id="h7",hostname="h7.example"} 0.42' in text
    assert (
        'srvmon_container_cpu_ratio{container="web",host_id="h7",hostname="h7.example"} 0.035'
        in text
    )
