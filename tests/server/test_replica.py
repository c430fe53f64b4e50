"""Replica mode inside the server, without Kafka: two real servers on one database, their
shared buses joined back to back (what the events topic does), partitions assigned and
revoked by calling the hooks the Kafka consumer calls (docs/server.md, "Replica mode")."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from srvmon_core.codec import encode_batch
from srvmon_core.schema import Batch
from srvmon_server.config import ReplicaSettings
from srvmon_server.replica import Replica
from srvmon_server.shared_bus import MAX_MESSAGE_BYTES, decode_events, encode_events
from srvmon_server.storage import IngestResult
from srvmon_server.storage.settle import raw_rows
from tests.server.conftest import StartServer
from tests.server.harness import FakeClock, RunningServer, SseReader, make_batch, wait_for
from tests.server.test_delete_machine import deleted_events

TOPIC = "srvmon.metrics"
NOW_RULE = {
    "id": "cpu-now",
    "name": "cpu now",
    "kind": "threshold",
    "selector": {"kind": "host"},
    "metric": "cpu_percent",
    "direction": "above",
    "warn": 90.0,
}
FOR_RULE = {**NOW_RULE, "id": "cpu-30s", "name": "cpu 30 s", "warn": 80.0, "for_seconds": 30}


def replica_of(server: RunningServer) -> Replica:
    assert server.context is not None and server.context.replica is not None
    return server.context.replica


def loop_of(server: RunningServer) -> asyncio.AbstractEventLoop:
    loop = server._loop
    assert loop is not None
    return loop


def join(*servers: RunningServer) -> None:
    """Each server's events reach every other one, as through the events topic."""
    for sender in servers:
        others = [s for s in servers if s is not sender]

        def send(payload: bytes, others: list[RunningServer] = others) -> None:
            _origin, items = decode_events(payload)
            for other in others:
                loop_of(other).call_soon_threadsafe(replica_of(other).receive, items)

        server_loop = loop_of(sender)
        server_loop.call_soon_threadsafe(replica_of(sender).connect, send, server_loop)


def ingest(server: RunningServer, batch: Batch, partition: int) -> IngestResult:
    """What the replica's Kafka lane does with a batch taken from ``partition``."""
    from srvmon_server.ingest import ingest_partitioned

    assert server.context is not None
    future = asyncio.run_coroutine_threadsafe(
        ingest_partitioned(server.context, [(batch, partition)]), loop_of(server)
    )
    return future.result(10)[0]


def settle(*servers: RunningServer) -> None:
    """Let queued loop callbacks, bus deliveries and DB work run (several loop turns)."""
    for _ in range(3):
        for server in servers:
            server.call(lambda: None)
            assert server.context is not None
            server.context.db.call(lambda: None)


@pytest.fixture
def pair(start_server_any_db: StartServer, clock: FakeClock) -> Iterator[list[RunningServer]]:
    """Replicas a and b on one database, with only the two rules above."""
    first = start_server_any_db(replica=ReplicaSettings(topic=TOPIC, replica_id="a"))
    for rule in first.request("GET", "/api/v1/rules").json()["rules"]:
        assert first.request("DELETE", f"/api/v1/rules/{rule['id']}").status == 204
    for rule in (NOW_RULE, FOR_RULE):
        assert first.request("PUT", f"/api/v1/rules/{rule['id']}", json.dumps(rule)).status == 200
    second = start_server_any_db(replica=ReplicaSettings(topic=TOPIC, replica_id="b"))
    join(first, second)
    settle(first, second)
    yield [first, second]


def alerts(server: RunningServer, rule: str | None = None) -> list[tuple[str, str, str]]:
    body = server.request("GET", "/api/v1/alerts").json()
    found = [(a["machine_key"], a["rule_id"], a["state"]) for a in body["alerts"]]
    return sorted(x for x in found if rule in (None, x[1]))


def history(server: RunningServer, rule: str | None = None) -> list[tuple[str, str, str]]:
    body = server.request("GET", "/api/v1/alerts/history").json()
    found = [(e["machine"], e["rule_id"], e["to_state"]) for e in body["events"]]
    return sorted(x for x in found if rule in (None, x[1]))


def test_each_replica_evaluates_its_partitions_and_shows_the_whole_fleet(
    pair: list[RunningServer], clock: FakeClock
) -> None:
    """h1 (partition 0, a) and h2 (partition 1, b) both breach: each alert is evaluated once,
    by its holder, stored once, and both replicas list both alerts and stream both events."""
    a, b = pair
    replica_of(a).assigned({0})
    replica_of(b).assigned({1})
    stream = SseReader(a.port, "/api/v1/events?topics=alerts")
    assert ingest(a, make_batch("h1", clock.now, cpu=95.0), 0).stored == 1
    assert ingest(b, make_batch("h2", clock.now, cpu=97.0), 1).stored == 1
    settle(a, b)
    both = [("h1", "cpu-now", "firing"), ("h2", "cpu-now", "firing")]
    assert alerts(a, "cpu-now") == both
    assert alerts(b, "cpu-now") == both
    pending = [("h1", "cpu-30s", "pending"), ("h2", "cpu-30s", "pending")]
    assert alerts(a, "cpu-30s") == alerts(b, "cpu-30s") == pending
    assert history(a) == sorted(both + pending)  # once each: h2 not by a, nor h1 by b
    machines: list[str] = []
    stream.until(
        lambda f: (
            f.get("event") == "alert"
            and machines.append(f["data"]["machine"]) is None
            and len(machines) == 4
        )
    )
    stream.close()
    assert sorted(machines) == ["h1", "h1", "h2", "h2"]
    assert replica_of(a).ownership.hosts == {"h1"}
    assert replica_of(b).ownership.hosts == {"h2"}
    # a batch of h2 reaching a (e.g. in flight across a rebalance) is stored, not evaluated
    later = clock.advance(1)
    assert ingest(a, make_batch("h2", later, cpu=10.0), 1).stored == 1
    settle(a, b)
    assert alerts(a, "cpu-now") == both
    assert history(a) == sorted(both + pending)


def test_a_revoked_partition_moves_its_pending_timer_and_its_silent_hosts(
    pair: list[RunningServer], clock: FakeClock
) -> None:
    """a holds partition 0: h1 goes pending on the 30 s rule; h3 reported once. a gives the
    partition up at t=12 and b takes it: b adopts both hosts from the recorded partitions,
    fires h1 at t=30 with the original start, and fires h3's silent rule with no batch."""
    a, b = pair
    silent_rule = {
        "id": "quiet",
        "name": "quiet",
        "kind": "silent",
        "selector": {"kind": "host"},
        "silent_seconds": 20,
    }
    assert a.request("PUT", "/api/v1/rules/quiet", json.dumps(silent_rule)).status == 200
    settle(a, b)
    replica_of(a).assigned({0})
    t0 = clock.now
    ingest(a, make_batch("h3", t0, cpu=5.0), 0)
    ingest(a, make_batch("h1", t0, cpu=85.0), 0)
    clock.advance(12)
    ingest(a, make_batch("h1", clock.now, cpu=86.0), 0)
    replica_of(a).revoked({0})
    replica_of(b).assigned({0})
    settle(a, b)
    assert replica_of(a).ownership.hosts == set()
    assert replica_of(b).ownership.hosts == {"h1", "h3"}
    clock.advance(18)  # t = 30
    ingest(b, make_batch("h1", clock.now, cpu=87.0), 0)
    settle(a, b)
    events = b.request("GET", "/api/v1/alerts/history").json()["events"]
    fired = [e for e in events if e["machine"] == "h1" and e["to_state"] == "firing"]
    assert [(e["started_at"], e["at"]) for e in fired] == [
        (t0.isoformat().replace("+00:00", "Z"), clock.now.isoformat().replace("+00:00", "Z"))
    ]
    # h3's silence counts from its adoption at t=12 at the latest (restore never fires a
    # false "silent" for a machine whose last batch was not saved): due at t=32, fired by
    # b's periodic check without any batch, and shown by a.
    clock.advance(3)
    wait_for(lambda: ("h3", "quiet", "firing") in alerts(a))
    assert history(b, "quiet") == [("h3", "quiet", "firing")]


def test_a_lost_partition_is_released_without_saving(
    pair: list[RunningServer], clock: FakeClock
) -> None:
    """A lost partition may already be another replica's: its hosts are forgotten without
    overwriting their saved state (b's newer pending alert stays, a's stale ok is dropped)."""
    a, b = pair
    replica_of(a).assigned({0})
    ingest(a, make_batch("h1", clock.now, cpu=10.0), 0)
    replica_of(b).assigned({0})  # the group moved it while a was unreachable
    clock.advance(1)
    ingest(b, make_batch("h1", clock.now, cpu=85.0), 0)
    replica_of(a).revoked({0}, lost=True)
    assert b.storage is not None
    saved = {s.key: s.document for s in b.storage.alert_states.load(["h1"])}
    assert [x["state"] for x in saved["h1"]["alerts"]] == ["pending"]


def test_rule_and_silence_changes_apply_on_every_replica(pair: list[RunningServer]) -> None:
    """A rule changed through b is what a applies at once (its live engine's rules); a
    silence created through a is in b's engine."""
    a, b = pair
    changed = {**NOW_RULE, "warn": 99.0}
    assert b.request("PUT", "/api/v1/rules/cpu-now", json.dumps(changed)).status == 200
    silence = {"matchers": {"machine": "h*"}, "ends_at": "2099-01-01T00:00:00Z"}
    assert a.request("POST", "/api/v1/silences", json.dumps(silence)).status == 201
    settle(a, b)
    assert a.context is not None and b.context is not None
    assert [r.warn for r in a.context.alerting.rules if r.id == "cpu-now"] == [99.0]
    assert [s.matchers.machine for s in b.context.alerting.silences] == ["h*"]


def test_a_machine_deleted_through_one_replica_leaves_every_other(
    pair: list[RunningServer], clock: FakeClock
) -> None:
    """h1 is b's (partition 0) and fires; deleted through a, it leaves b's alerts, b's
    fleet and b's engine (its next periodic save writes nothing of it back), and b's
    browsers hear of it."""
    a, b = pair
    replica_of(a).assigned({1})
    replica_of(b).assigned({0})
    h1 = make_batch("h1", clock.now, cpu=95.0, containers=(("web", 1.0),))
    assert ingest(b, h1, 0).stored == 2
    assert ingest(a, make_batch("h2", clock.now, cpu=10.0), 1).stored == 1
    settle(a, b)
    assert ("h1", "cpu-now", "firing") in alerts(b)
    stream = SseReader(b.port, "/api/v1/events?view=fleet")
    try:
        assert a.request("DELETE", "/api/v1/machines/h1").status == 204
        assert deleted_events(stream, 2) == [
            {"key": "h1", "host_key": "h1"},
            {"key": "h1:web", "host_key": "h1"},
        ]
    finally:
        stream.close()
    wait_for(lambda: alerts(b) == [])
    assert alerts(a) == []
    for server in (a, b):
        hosts = server.request("GET", "/api/v1/machines").json()["hosts"]
        assert [h["key"] for h in hosts] == ["h2"]
    assert b.context is not None
    b.context.db.call(lambda: b.context.alerting.save_periodic(None))  # type: ignore[union-attr]
    with b.storage.engine.connect() as conn:
        saved = set(conn.execute(sa.text("SELECT `key` FROM alert_machines")).scalars())
    assert not saved & {"h1", "h1:web"}, saved


def test_a_replica_refuses_http_ingest(pair: list[RunningServer], clock: FakeClock) -> None:
    """Its batches come from its partitions: HTTP ingest answers 403 replica_mode (the
    consumer retries that, with a warning, instead of dead-lettering)."""
    answer = pair[0].request("POST", "/api/v1/ingest", encode_batch(make_batch("h1", clock.now)))
    assert answer.status == 403
    assert answer.json()["error"]["code"] == "replica_mode"


def test_a_replica_refuses_legacy_http_ingest_too(
    start_server: StartServer, clock: FakeClock
) -> None:
    """With the Java routes on, ``POST /api/metrics`` (an original collector's document) is
    refused the same way: nothing is stored that no partition owner would evaluate."""
    from srvmon_server.legacy.config import LegacyConfig
    from tests.server.legacy_client import java_document

    replica = start_server(
        replica=ReplicaSettings(topic=TOPIC, replica_id="a"), legacy=LegacyConfig(enabled=True)
    )
    local = clock.now.strftime("%Y-%m-%dT%H:%M:%S")
    answer = replica.request("POST", "/api/metrics", java_document(local))
    assert answer.status == 403, answer.body
    assert answer.json()["error"]["code"] == "replica_mode"
    stored = sa.select(sa.func.count()).select_from(raw_rows(replica.storage.dialect))
    with replica.storage.engine.connect() as conn:
        assert conn.execute(stored).scalar_one() == 0


def test_events_travel_in_few_messages_under_the_size_limit() -> None:
    """One message per publish turn; a large turn is split, in order, each message under
    MAX_MESSAGE_BYTES; decoding gives the items back exactly."""
    items: list[Any] = [
        ("sample", f"h{i}", {"metrics": {"x": i}, "pad": "p" * 500}) for i in range(5000)
    ]
    messages = encode_events("a", items)
    assert len(messages) > 1
    assert all(len(m) <= MAX_MESSAGE_BYTES for m in messages)
    decoded = [item for m in messages for item in decode_events(m)[1]]
    assert decoded == [(n, k, d) for n, k, d in items]
    assert encode_events("a", items[:3]) == [
        b'{"v":1,"origin":"a","events":['
        + b",".join(json.dumps(list(i), separators=(",", ":")).encode() for i in items[:3])
        + b"]}"
    ]


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        (b"not json", "$"),
        (b'{"v": 2, "origin": "a", "events": []}', "$.v"),
        (b'{"v": 1, "origin": 3, "events": []}', "$.origin"),
        (b'{"v": 1, "origin": "a", "events": {}}', "$.events"),
        (b'{"v": 1, "origin": "a", "events": [["sample", 1, {}]]}', "$.events[0]"),
    ],
)
def test_a_bad_events_message_names_its_field(payload: bytes, path: str) -> None:
    from srvmon_core.errors import DecodeError

    with pytest.raises(DecodeError) as caught:
        decode_events(payload)
    assert caught.value.path == path


def test_the_recorded_partition_wins(pair: list[RunningServer], clock: FakeClock) -> None:
    """A host seen on another partition (the topic grew) is recorded there: the holder of
    that partition adopts it, and a replica that evaluated it releases it when one of its
    batches reaches it from the new partition (in flight across the rebalance)."""
    a, b = pair
    replica_of(a).assigned({0})
    replica_of(b).assigned({1})
    ingest(a, make_batch("h1", clock.now), 0)
    clock.advance(1)
    ingest(b, make_batch("h1", clock.now), 1)  # e.g. after the partition count grew
    assert replica_of(b).ownership.hosts == {"h1"}
    assert b.storage is not None
    assert b.storage.partitions.hosts(TOPIC) == {"h1": 1}
    clock.advance(1)
    ingest(a, make_batch("h1", clock.now - timedelta(seconds=5)), 1)  # a late one, on 1
    assert replica_of(a).ownership.hosts == set()


def test_events_orjson_refuses_still_decode() -> None:
    """What orjson refuses to parse goes to the standard library: an integer beyond 64 bits
    (which the encoder writes through the standard library too) and ``Infinity``."""
    items: list[Any] = [("sample", "h1", {"big": 2**70})]
    [message] = encode_events("a", items)
    assert decode_events(message) == ("a", items)
    written = b'{"v":1,"origin":"b","events":[["sample","h2",{"x":Infinity}]]}'
    assert decode_events(written) == ("b", [("sample", "h2", {"x": float("inf")})])
