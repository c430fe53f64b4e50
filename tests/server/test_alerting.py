"""Alerting end to end: precedence, SSE + history, webhooks, silences, restart persistence."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web

from tests.server.harness import (
    FakeClock,
    RunningServer,
    SseReader,
    make_batch,
    wait_for,
)


def cpu_rule(
    rule_id: str, warn: float, machine: str | None = None, for_s: float = 0.0
) -> dict[str, Any]:
    selector: dict[str, Any] = {"kind": "host"}
    if machine is not None:
        selector["machine"] = machine
    return {
        "id": rule_id,
        "name": rule_id,
        "metric": "cpu_percent",
        "warn": warn,
        "selector": selector,
        "for_seconds": for_s,
    }


def only_rules(server: RunningServer, *rules: dict[str, Any]) -> None:
    """Replace every rule (including the seeded defaults) through the API."""
    for rule in server.request("GET", "/api/v1/rules").json()["rules"]:
        assert server.request("DELETE", f"/api/v1/rules/{rule['id']}").status == 204
    for rule in rules:
        resp = server.request("POST", "/api/v1/rules", json.dumps(rule))
        assert resp.status == 201, resp.body


def is_alert(frame: dict[str, Any]) -> bool:
    return frame.get("event") == "alert"


def test_defaults_seeded_once(start_server) -> None:  # type: ignore[no-untyped-def]
    """The default rules are seeded on first start, and a deleted default stays deleted."""
    from srvmon_core.defaults import DEFAULT_RULES

    server = start_server()
    ids = [r["id"] for r in server.request("GET", "/api/v1/rules").json()["rules"]]
    assert ids == [r.id for r in DEFAULT_RULES]
    assert server.request("DELETE", f"/api/v1/rules/{ids[0]}").status == 204
    server.stop()
    again = start_server()
    ids2 = [r["id"] for r in again.request("GET", "/api/v1/rules").json()["rules"]]
    assert ids2 == ids[1:]


def test_rule_validation_names_field(server: RunningServer) -> None:
    """An invalid rule is a 400 naming the field; a duplicate id is a 409."""
    bad = server.request(
        "POST", "/api/v1/rules", json.dumps({"id": "x", "metric": "nope", "warn": 1})
    )
    assert bad.status == 400
    assert bad.json()["error"]["field"] == "$.metric"
    assert server.request("POST", "/api/v1/rules", json.dumps(cpu_rule("c", 50))).status == 201
    assert server.request("POST", "/api/v1/rules", json.dumps(cpu_rule("c", 50))).status == 409
    put = server.request("PUT", "/api/v1/rules/c", json.dumps(cpu_rule("c", 60)))
    assert put.status == 200 and put.json()["warn"] == 60.0
    assert server.request("GET", "/api/v1/rules/c").json()["warn"] == 60.0


def test_silence_validation_names_field(server: RunningServer) -> None:
    """An invalid silence is a 400 naming the field; a valid one comes back with its id and
    only the matchers given."""
    cases = [
        ({"matchers": {"rack": "r1"}, "ends_at": "2030-01-01T00:00:00Z"}, "$.matchers.rack"),
        ({"matchers": {}, "ends_at": "2030-01-01T00:00:00Z"}, "$.matchers"),
        ({"matchers": {"host": "h1"}, "ends_at": "2020-01-01T00:00:00Z"}, "$.ends_at"),
        ({"matchers": {"host": "h1"}, "ends_at": "later"}, "$.ends_at"),
    ]
    for body, field in cases:
        bad = server.request("POST", "/api/v1/silences", json.dumps(body))
        assert bad.status == 400, body
        error = bad.json()["error"]
        assert (error["code"], error["field"]) == ("invalid_silence", field), error
    ok = server.request(
        "POST", "/api/v1/silences", json.dumps({"matchers": {"host": "h1"}, "ends_at": 1893456000})
    )
    assert ok.status == 201, ok.body
    created = ok.json()
    assert (created["matchers"], created["ends_at"], created["comment"]) == (
        {"host": "h1"},
        "2030-01-01T00:00:00Z",
        "",
    )
    assert created["starts_at"] == created["created_at"] == "2026-11-25T10:00:00Z"
    listed = server.request("GET", "/api/v1/silences").json()["silences"]
    assert listed == [created]


def test_per_machine_override_precedence(server_any_db: RunningServer) -> None:
    """Global cpu warn 80, override warn 20 for h2: at 50 % only h2 alerts, live after CRUD;
    the alert is on SSE and in /alerts/history (both DBs)."""
    server = server_any_db
    only_rules(server, cpu_rule("global-cpu", 80), cpu_rule("h2-cpu", 20, machine="h2"))
    reader = SseReader(server.port, "/api/v1/events?topics=alerts")
    try:
        reader.until(lambda f: f.get("event") == "hello")
        for host in ("h1", "h2"):
            assert server.ingest(make_batch(host_id=host, cpu=50.0)).status == 200
        frames = reader.until(is_alert)
        alert = frames[-1]["data"]
        assert (alert["machine_key"], alert["rule_id"], alert["to_state"]) == (
            "h2",
            "h2-cpu",
            "firing",
        )
        assert alert["value"] == 50.0 and alert["threshold"] == 20.0
        active = server.request("GET", "/api/v1/alerts").json()["alerts"]
        assert [(a["machine_key"], a["rule_id"]) for a in active] == [("h2", "h2-cpu")]
        rules = server.request("GET", "/api/v1/machines/h2/rules").json()["rules"]
        assert [r["id"] for r in rules] == ["h2-cpu"]
        hosts = {
            h["key"]: h["status"] for h in server.request("GET", "/api/v1/machines").json()["hosts"]
        }
        assert hosts == {"h1": "ok", "h2": "warning"}
        history = server.request("GET", "/api/v1/alerts/history").json()
        assert [(e["machine"], e["to_state"], e["silenced"]) for e in history["events"]] == [
            ("h2", "firing", False)
        ]
        assert history["next_cursor"] is None
    finally:
        reader.close()


class Receiver(tornado.web.RequestHandler):
    def initialize(self, log: list[Any]) -> None:
        self.log = log

    def post(self) -> None:
        self.log.append(json.loads(self.request.body))


def start_receiver(log: list[Any]) -> tuple[str, Any]:
    """A webhook receiver on its own loop thread."""
    import asyncio

    ready = threading.Event()
    box: dict[str, Any] = {}

    def run() -> None:
        async def main() -> None:
            sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
            server = tornado.httpserver.HTTPServer(
                tornado.web.Application([(r"/hook", Receiver, {"log": log})])
            )
            server.add_sockets(sockets)
            box["port"] = sockets[0].getsockname()[1]
            box["loop"] = asyncio.get_running_loop()
            box["stop"] = asyncio.Event()
            ready.set()
            await box["stop"].wait()
            server.stop()

        asyncio.run(main())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(5)

    def stop() -> None:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(5)

    return f"http://127.0.0.1:{box['port']}/hook", stop


def test_webhook_firing_then_resolved(start_server, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    """A real receiver gets a firing then a resolved Alertmanager-v4 webhook."""
    log: list[Any] = []
    url, stop = start_receiver(log)
    try:
        server = start_server(webhook_urls=[url])
        only_rules(server, cpu_rule("cpu", 70))
        server.ingest(make_batch(cpu=90.0, at=clock.now))
        wait_for(lambda: len(log) == 1)
        clock.advance(5)
        server.ingest(make_batch(cpu=10.0, at=clock.now))
        wait_for(lambda: len(log) == 2)
        assert [p["status"] for p in log] == ["firing", "resolved"]
        assert log[0]["version"] == "4"
        assert log[0]["alerts"][0]["labels"]["machine"] == "h1"
        assert log[1]["alerts"][0]["endsAt"] == "2026-11-25T10:00:05Z"
    finally:
        stop()


def test_silenced_alert_recorded_not_notified(start_server, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    """An alert matching an active silence is in history with silenced=true, no webhook."""
    log: list[Any] = []
    url, stop = start_receiver(log)
    try:
        server = start_server(webhook_urls=[url])
        only_rules(server, cpu_rule("cpu", 70))
        silence = {
            "matchers": {"machine": "h1"},
            "ends_at": "2026-11-25T11:00:00Z",
            "comment": "maintenance",
        }
        created = server.request("POST", "/api/v1/silences", json.dumps(silence))
        assert created.status == 201, created.body
        server.ingest(make_batch(host_id="h1", cpu=90.0, at=clock.now))
        server.ingest(make_batch(host_id="h2", cpu=90.0, at=clock.now))
        wait_for(lambda: len(log) == 1)
        events = server.request("GET", "/api/v1/alerts/history").json()["events"]
        assert sorted((e["machine"], e["silenced"]) for e in events) == [
            ("h1", True),
            ("h2", False),
        ]
        assert log[0]["alerts"][0]["labels"]["machine"] == "h2"
        silence_id = created.json()["id"]
        assert server.request("DELETE", f"/api/v1/silences/{silence_id}").status == 204
        assert server.request("GET", "/api/v1/silences").json()["silences"] == []
    finally:
        stop()


def test_pending_timer_survives_restart(start_server_any_db, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    """A pending alert (for 60 s) keeps its start across a restart and fires at t0+60."""
    start_server = start_server_any_db
    server = start_server()
    only_rules(server, cpu_rule("cpu", 70, for_s=60))
    t0 = clock.now
    server.ingest(make_batch(cpu=90.0, at=t0))
    pending = server.request("GET", "/api/v1/alerts").json()["alerts"]
    assert [(a["state"], a["since"]) for a in pending] == [("pending", "2026-11-25T10:00:00Z")]
    server.stop()
    server.storage.close()

    again = start_server()
    clock.advance(30)
    again.ingest(make_batch(cpu=90.0, at=clock.now))
    assert [a["state"] for a in again.request("GET", "/api/v1/alerts").json()["alerts"]] == [
        "pending"
    ]
    clock.advance(30)
    again.ingest(make_batch(cpu=90.0, at=clock.now))
    firing = again.request("GET", "/api/v1/alerts").json()["alerts"]
    assert [(a["state"], a["since"]) for a in firing] == [("firing", "2026-11-25T10:00:00Z")]
    history = again.request("GET", "/api/v1/alerts/history").json()["events"]
    assert [(e["to_state"], e["at"]) for e in history] == [
        ("firing", "2026-11-25T10:01:00Z"),
        ("pending", "2026-11-25T10:00:00Z"),
    ]


def test_a_batch_waiting_inside_the_server_is_not_silence(start_server, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    """The host's next batch reaches the server while its DB thread is busy, and waits 15 s
    there: the silent check (10 s) allows for the ingest the server holds, so no ``silent``
    fires; with nothing held, 11 s of real quiet still fire it, once."""
    server = start_server(silence_check_seconds=0.05)
    only_rules(
        server,
        {"id": "quiet", "name": "quiet", "kind": "silent", "silent_seconds": 10},
    )
    t0 = clock.now
    server.ingest(make_batch(at=t0))
    busy, release = threading.Event(), threading.Event()

    def hold_db_thread() -> None:
        busy.set()
        release.wait(30)

    blocker = threading.Thread(target=lambda: server.context.db.call(hold_db_thread))
    blocker.start()
    assert busy.wait(10)
    answers: list[int] = []
    late = make_batch(at=t0 + timedelta(seconds=1))
    poster = threading.Thread(target=lambda: answers.append(server.ingest(late).status))
    poster.start()
    backlog = server.context.backlog
    wait_for(lambda: backlog.held_now >= 1)
    clock.advance(15)
    time.sleep(0.5)  # ten periodic checks come due meanwhile
    held, behind = backlog.held_now, backlog.behind_seconds(clock.now)
    release.set()
    blocker.join(10)
    poster.join(10)
    assert held >= 1 and behind >= 15.0  # the batch was still inside the server at +15 s
    assert answers == [200]
    wait_for(lambda: backlog.held_now == 0)
    time.sleep(0.3)
    assert server.request("GET", "/api/v1/alerts/history").json()["events"] == []
    clock.advance(11)  # nothing held: 11 s since the host's last batch was stored
    wait_for(
        lambda: (
            [a["rule_id"] for a in server.request("GET", "/api/v1/alerts").json()["alerts"]]
            == ["quiet"]
        )
    )
    history = server.request("GET", "/api/v1/alerts/history").json()["events"]
    assert [(e["to_state"], e["at"]) for e in history] == [("firing", "2026-11-25T10:00:26Z")]


def test_silent_machine_check_runs_periodically(start_server, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    """The periodic check fires a silent rule without any ingest."""
    server = start_server(silence_check_seconds=0.05)
    only_rules(
        server,
        {
            "id": "quiet",
            "name": "quiet",
            "kind": "silent",
            "silent_seconds": 10,
            "level": "critical",
        },
    )
    server.ingest(make_batch(at=clock.now))
    clock.advance(11)
    wait_for(
        lambda: (
            [a["rule_id"] for a in server.request("GET", "/api/v1/alerts").json()["alerts"]]
            == ["quiet"]
        )
    )
    hosts = server.request("GET", "/api/v1/machines").json()["hosts"]
    assert hosts[0]["status"] == "critical"
