"""Three ``srvmon server`` replicas on one MariaDB and one Kafka broker, a browser on one of
them, and a replica killed with SIGKILL while it holds a pending ``for`` timer
(docs/server.md, "Replica mode"; docs/operations.md, "Failover").

One test, because every check needs the same slow setting (three processes in one
consumer group, a 30 s ``for`` window); it prints what it measured.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from srvmon_core.schema import host_key
from tests.fixtures.kafka import KafkaBroker
from tests.helpers import free_port
from tests.pipeline.processes import AlertStream, SampleCounter, expected_rows
from tests.pipeline.replicas import (
    Fleet,
    Replica,
    host_on_partition,
    kill_with_stored_uncommitted,
    librdkafka_partition,
    request,
)
from tests.pipeline.streams import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

PARTITIONS = 6
FOR_SECONDS = 30
NOW_RULE = {
    "id": "mem-now",
    "name": "memory now",
    "kind": "threshold",
    "selector": {"kind": "host"},
    "metric": "memory_percent",
    "direction": "above",
    "warn": 90.0,
}
"""Fires on the first breaching sample: what a browser on another replica must see."""
FOR_RULE = {
    "id": "cpu-30s",
    "name": "cpu for 30 s",
    "kind": "threshold",
    "selector": {"kind": "host"},
    "metric": "cpu_percent",
    "direction": "above",
    "warn": 90.0,
    "for_seconds": FOR_SECONDS,
}


class Webhooks:
    """A webhook receiver: every notification body the replicas post."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.port}/hook"

    def firing(self, host_id: str) -> list[dict[str, Any]]:
        return [
            alert
            for body in list(self.bodies)
            for alert in body["alerts"]
            if alert["labels"].get("host_id") == host_id and alert["status"] == "firing"
        ]

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def replicas_setting(
    tmp_path: Path, kafka_broker: KafkaBroker, mariadb_url: str
) -> Iterator[dict[str, Any]]:
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    suffix = str(int(time.time() * 1000))
    topic, events = f"replicas.metrics.{suffix}", f"replicas.events.{suffix}"
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap})
    for future in admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS)]).values():
        future.result(15)
    hooks = Webhooks()
    made = {
        name: Replica(
            name,
            db_url=mariadb_url,
            bootstrap=kafka_broker.bootstrap,
            topic=topic,
            events_topic=events,
            group=f"replicas-{suffix}",
            workdir=tmp_path,
            webhook_url=hooks.url,
        )
        for name in ("A", "B", "C")
    }
    try:
        yield {"replicas": made, "topic": topic, "hooks": hooks, "db_url": mariadb_url}
    finally:
        for replica in made.values():
            replica.stop()
        hooks.close()
        for replica in made.values():
            print(f"--- replica {replica.name} log tail ---\n{replica.log()[-1500:]}")


def holder(replicas: dict[str, Replica], partition: int) -> str | None:
    found = [name for name, r in replicas.items() if partition in r.partitions()]
    return found[0] if len(found) == 1 else None


def when(events: list[dict[str, Any]], host: str, state: str) -> list[dict[str, Any]]:
    return [e for e in list(events) if e["host_id"] == host and e["to_state"] == state]


def utc(text: object) -> datetime:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


def start_replicas(replicas: dict[str, Replica]) -> dict[str, list[int]]:
    """A first (it creates the schema; only the two test rules), then B and C; returns
    the partitions each holds once the three split them."""
    a = replicas["A"].start()
    for rule in request(a.url, "/api/v1/rules")["rules"]:
        request(a.url, f"/api/v1/rules/{rule['id']}", "DELETE")
    for rule in (NOW_RULE, FOR_RULE):
        request(a.url, f"/api/v1/rules/{rule['id']}", "PUT", rule)
    replicas["B"].start()
    replicas["C"].start()
    wait_until(
        lambda: (
            all(r.partitions() for r in replicas.values())
            and sum(len(r.partitions()) for r in replicas.values()) == PARTITIONS
        ),
        60,
        "the three replicas to split the partitions",
    )
    return {name: sorted(r.partitions()) for name, r in replicas.items()}


def browser_on_a_sees_c_alert(page: Any, a: Replica, c: Replica, fleet: Fleet, x: str) -> float:
    """(a): x (evaluated by C) breaches the memory rule; seconds from its batch's produce
    to the toast in a browser on A."""
    page.goto(f"{a.url}/#/")
    page.wait_for_function(
        "() => document.getElementById('conn').textContent === 'live'", timeout=15000
    )
    page.evaluate(
        """() => { window.__toasts = [];
          new MutationObserver((changes) => { for (const change of changes)
            for (const node of change.addedNodes)
              window.__toasts.push([Date.now(), node.textContent]); })
          .observe(document.getElementById("toasts"), { childList: true }); }"""
    )
    fleet.memory[x] = 95.0
    page.wait_for_function("h => window.__toasts.some(t => t[1].includes(h))", arg=x, timeout=15000)
    seen_ms = next(t for t, text in page.evaluate("window.__toasts") if x in text)
    assert fleet.partition_of[x] in c.partitions()  # C evaluated it, A showed it
    return float(seen_ms / 1000 - fleet.sent_at[(x, fleet.cpu[x], 95.0)])


def rule_through_b_applies(replicas: dict[str, Replica], x: str) -> dict[str, float]:
    """(c): the memory rule's threshold changed through B; seconds from the PUT until A's
    and C's engines apply it (``/machines/{key}/rules`` reads the live engine's rules)."""
    changed = {**NOW_RULE, "warn": 99.0}
    started = time.monotonic()
    request(replicas["B"].url, f"/api/v1/rules/{NOW_RULE['id']}", "PUT", changed)

    def applied(replica: Replica) -> bool:
        rules = request(replica.url, f"/api/v1/machines/{host_key(x)}/rules")["rules"]
        return any(r["id"] == "mem-now" and r["warn"] == 99.0 for r in rules)

    applied_at: dict[str, float] = {}
    while len(applied_at) < 2 and time.monotonic() < started + 5:
        for name in ("A", "C"):
            if name not in applied_at and applied(replicas[name]):
                applied_at[name] = time.monotonic() - started
        time.sleep(0.02)
    return applied_at


def kill_c_while_y_is_pending(
    replicas: dict[str, Replica], fleet: Fleet, stream: AlertStream, y: str, db_url: str
) -> list[tuple[str, int]]:
    """(b): y (evaluated by C) goes pending on the 30 s rule; C is killed 8 s into the
    window, at a moment it has stored batches it has not committed; another replica takes
    y over and fires it at the original deadline +- 2 s. Returns the batches in flight."""
    a, c = replicas["A"], replicas["C"]
    fleet.cpu[y] = 97.0
    wait_until(lambda: bool(when(stream.events, y, "pending")), 10, "y pending")
    pending = when(stream.events, y, "pending")[0]
    deadline = utc(pending["started_at"]).timestamp() + FOR_SECONDS
    time.sleep(max(0.0, deadline - FOR_SECONDS + 8 - time.time()))
    assert fleet.partition_of[y] in c.partitions()  # C holds y's timer at the kill
    killed_at = time.time()
    in_flight = kill_with_stored_uncommitted(c, fleet, fleet.bootstrap, db_url)
    wait_until(lambda: bool(when(stream.events, y, "firing")), FOR_SECONDS + 30, "y firing", 0.05)
    arrived = time.time()
    firing = when(stream.events, y, "firing")[0]
    taker = holder({"A": a, "B": replicas["B"]}, fleet.partition_of[y])
    print(
        f"(b) killed C {killed_at - deadline + FOR_SECONDS:.1f} s into the pending window; "
        f"{taker} took y over; fired {utc(firing['at']).timestamp() - deadline:+.2f} s "
        f"from the deadline (seen on A {arrived - deadline:+.2f} s)"
    )
    assert taker in ("A", "B")
    assert firing["started_at"] == pending["started_at"]
    assert abs(utc(firing["at"]).timestamp() - deadline) <= 2.0
    assert abs(arrived - deadline) <= 2.0
    return in_flight


def test_three_replicas_share_alerts_rules_and_a_killed_ones_hosts(
    replicas_setting: dict[str, Any], kafka_broker: KafkaBroker, page: Any
) -> None:
    """(a) A browser on A sees, within 1 s of its batch, an alert of a host C evaluates;
    (c) a rule changed through B applies on A and C within 1 s; (b) C is killed while a
    host it evaluates is pending on a 30 s rule: another replica takes the host over and
    the alert fires once, at the original deadline +- 2 s, stored once and notified once;
    (d) every produced sample is stored exactly once after the kill, which hit batches C
    had stored and not committed (the takers got them again: redelivered > 0)."""
    replicas: dict[str, Replica] = replicas_setting["replicas"]
    hooks: Webhooks = replicas_setting["hooks"]
    a, c = replicas["A"], replicas["C"]
    held = start_replicas(replicas)
    print("partitions held:", held)

    # One host per partition, placed by the producer's own partitioner.
    hosts = [host_on_partition(p, PARTITIONS, "rep") for p in range(PARTITIONS)]
    fleet = Fleet(kafka_broker.bootstrap, replicas_setting["topic"], hosts).start()
    stream = AlertStream(a.url)
    try:
        wait_until(lambda: len(fleet.partition_of) == len(hosts), 20, "every host produced")
        assert fleet.partition_of == {h: librdkafka_partition(h, PARTITIONS) for h in hosts}
        wait_until(
            lambda: (
                sum(r.figure("srvmon_server_replica_hosts") for r in replicas.values())
                == len(hosts)
            ),
            20,
            "every host adopted by exactly one replica",
        )
        wait_until(  # the fleet view's first load on A lists the hosts B and C hold too
            lambda: (
                sorted(h["key"] for h in request(a.url, "/api/v1/machines")["hosts"])
                == sorted(host_key(h) for h in hosts)
            ),
            10,
            "replica A's /api/v1/machines lists every replica's hosts",
        )
        x, y = [h for h in hosts if fleet.partition_of[h] in held["C"]][:2]

        latency = browser_on_a_sees_c_alert(page, a, c, fleet, x)
        print(f"(a) produce -> toast on replica A: {latency * 1000:.0f} ms")
        assert latency < 1.0

        applied_at = rule_through_b_applies(replicas, x)
        print(f"(c) rule PUT on B -> applied on A, C: {applied_at} s")
        assert set(applied_at) == {"A", "C"} and max(applied_at.values()) < 1.0
        wait_until(  # C, which evaluates x, resolves its memory alert under the new rule
            lambda: any(e["rule_id"] == "mem-now" for e in when(stream.events, x, "resolved")),
            10,
            "the memory alert resolved under the changed rule",
        )

        duplicates_before = sum(
            replicas[n].figure("srvmon_server_ingest_duplicates_total") for n in ("A", "B")
        )
        in_flight = kill_c_while_y_is_pending(
            replicas, fleet, stream, y, replicas_setting["db_url"]
        )
        time.sleep(3)  # a second firing (or notification) would come within this
    finally:
        fleet.stop()
        stream.close()

    # exactly one firing event stored, sent on SSE, and notified
    engine = sa.create_engine(replicas_setting["db_url"], poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT COUNT(*) FROM alert_events WHERE host_id = :h AND to_state = 'firing'"),
            {"h": y},
        ).scalar_one()
    engine.dispose()
    assert (stored, len(when(stream.events, y, "firing")), len(hooks.firing(y))) == (1, 1, 1)

    # (d) the samples are exact after the kill: every produced one, once
    counter = SampleCounter(replicas_setting["db_url"])
    try:
        expected = expected_rows(fleet.produced)
        wait_until(lambda: counter() >= sum(expected.values()), 30, "every sample stored")
        assert counter.rows() == expected
        redelivered = (
            sum(replicas[n].figure("srvmon_server_ingest_duplicates_total") for n in ("A", "B"))
            - duplicates_before
        )
        per_batch = 1 + fleet.containers
        print(
            f"(d) {sum(expected.values())} samples produced, stored exactly once each; "
            f"the kill hit {len(in_flight)} stored, uncommitted batch(es) "
            f"({len(in_flight) * per_batch} samples), the takers got {redelivered:.0f} "
            "samples again and stored none twice"
        )
        assert in_flight
        assert redelivered >= len(in_flight) * per_batch
    finally:
        counter.close()
