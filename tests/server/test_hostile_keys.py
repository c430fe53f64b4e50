"""Hostile ids over HTTP, on SQLite and MariaDB: refused with a 400 envelope the consumer
dead-letters (never a 5xx it would retry forever), and no collector can write into another
machine's key."""

from __future__ import annotations

import json

import pytest

from srvmon_agents.consumer.delivery import Verdict, classify, classify_many
from srvmon_core.codec import encode_batch
from tests.server.harness import RunningServer, make_batch


def envelope(host_id: str, containers: list[dict[str, object]] | None = None) -> bytes:
    """An envelope written from docs/wire-format.md, not by srvmon's encoder (the encoder
    cannot build an invalid Batch); its timestamp is the harness clock's ``T0``."""
    return json.dumps(
        {
            "schema_version": 1,
            "host_id": host_id,
            "hostname": "x",
            "timestamp": "2026-11-25T10:00:00Z",
            "host": {
                "cpu_percent": 77.0,
                "load_1": 0.1,
                "load_5": 0.1,
                "load_15": 0.1,
                "memory_total_bytes": 10,
                "memory_used_bytes": 1,
                "memory_available_bytes": 9,
                "memory_percent": 10.0,
            },
            "containers": containers or [],
        }
    ).encode()


def test_a_host_cannot_take_a_containers_key(server_any_db: RunningServer) -> None:
    """Host ``coll`` runs container ``web`` (key ``coll:web``). A batch claiming host id
    ``coll:web`` is a 400 at ``$.host_id``; the container's figures are untouched."""
    server = server_any_db
    assert server.ingest(make_batch("coll", containers=(("web", 3.0),))).status == 200
    resp = server.request("POST", "/api/v1/ingest", envelope("coll:web"))
    assert resp.status == 400
    assert resp.json()["error"]["field"] == "$.host_id"
    assert classify(resp.status, resp.body).verdict is Verdict.REJECTED
    web = server.request("GET", "/api/v1/machines/coll%3Aweb").json()
    assert (web["kind"], web["host_id"], web["metrics"]["cpu_percent"]) == (
        "container",
        "coll",
        3.0,
    )


def test_keys_past_the_column_width_are_a_clean_400(server_any_db: RunningServer) -> None:
    """A 300-character host id, or a 255-character container name (a 260-character key),
    would raise a DataError on MariaDB's VARCHAR(255); they are refused before storage,
    with a 400 the consumer dead-letters, and nothing is stored."""
    server = server_any_db
    long_host = server.request("POST", "/api/v1/ingest", envelope("h" * 300))
    assert long_host.status == 400
    assert "at most 128 characters" in long_host.json()["error"]["message"]
    long_name = server.request(
        "POST", "/api/v1/ingest", envelope("h1", [{"id": "c1", "name": "n" * 255}])
    )
    assert long_name.status == 400
    assert long_name.json()["error"]["field"] == "$.containers[0].name"
    for hostile in ("a\r\nb", "x\u2028y", "../../etc", "<script>", "h\x00", ""):
        resp = server.request("POST", "/api/v1/ingest", envelope(hostile))
        assert resp.status == 400, (hostile, resp.body)
        assert resp.json()["error"]["field"] == "$.host_id"
    batched = b'{"batches":[' + envelope("h" * 300) + b"," + encode_batch(make_batch("ok")) + b"]}"
    resp = server.request("POST", "/api/v1/ingest", batched)
    assert resp.status == 200
    answers = classify_many(resp.status, resp.body, 2)
    assert isinstance(answers, list)
    assert [a.verdict for a in answers] == [Verdict.REJECTED, Verdict.ACCEPTED]
    keys = [h["key"] for h in server.request("GET", "/api/v1/machines").json()["hosts"]]
    assert keys == ["ok"]


def test_the_widest_valid_key_is_stored(server_any_db: RunningServer) -> None:
    """128 + 1 + 126 = 255 characters: stored and served back on both backends."""
    server = server_any_db
    body = envelope("h" * 128, [{"id": "c1", "name": "n" * 126, "cpu_percent": 1.5}])
    assert server.request("POST", "/api/v1/ingest", body).status == 200
    key = "h" * 128 + "%3A" + "n" * 126
    got = server.request("GET", f"/api/v1/machines/{key}").json()
    assert len(got["key"]) == 255 and got["metrics"]["cpu_percent"] == 1.5


@pytest.mark.parametrize(
    ("query", "limit", "field"),
    [
        ("/api/v1/machines?cursor=", 1000, "cursor"),
        ("/api/v1/alerts/history?machine=", 200, "machine"),
        ("/api/v1/resolve?machine=", 200, "machine"),
        ("/api/v1/events?machines=", 200, "machines"),
        ("/api/v1/events?view=host&host=", 200, "host"),
    ],
)
def test_a_bounded_parameter_past_its_limit_is_a_400_even_when_padded(
    server_any_db: RunningServer, query: str, limit: int, field: str
) -> None:
    """openapi.json bounds these query parameters' lengths. A value padded with whitespace
    past the bound was stripped to a short one and answered 200 (found by schemathesis: a
    schema-violating request accepted); the bound holds on the value as sent."""
    server = server_any_db
    server.request("POST", "/api/v1/ingest", encode_batch(make_batch("ok")))
    resp = server.request("GET", query + "a" + "%0D" * limit)
    assert resp.status == 400, resp.body
    assert resp.json()["error"]["field"] == field
    if field == "cursor":  # within the bound the page is served
        assert server.request("GET", query + "a" + "%0D" * (limit - 1)).status == 200
