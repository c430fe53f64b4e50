"""Silences act at once on alerts that already fire: REST `silenced`, SSE events, machine
status, notifications (none while silenced, again when the silence ends), and an active
alert's value that keeps up with the samples."""

from __future__ import annotations

import json
from typing import Any

from tests.server.harness import FakeClock, SseReader, make_batch, wait_for
from tests.server.test_alerting import only_rules, start_receiver

CPU = {
    "id": "cpu",
    "name": "CPU high",
    "metric": "cpu_percent",
    "warn": 70,
    "crit": 90,
    "selector": {"kind": "host"},
}


def active(server: Any) -> list[tuple[str, str, bool, float]]:
    alerts = server.request("GET", "/api/v1/alerts").json()["alerts"]
    return [(a["machine_key"], a["level"], a["silenced"], a["value"]) for a in alerts]


def status(server: Any, key: str) -> str:
    hosts = server.request("GET", "/api/v1/machines").json()["hosts"]
    return next(h["status"] for h in hosts if h["key"] == key)


def test_a_silence_on_a_firing_alert_takes_effect_at_once(start_server, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    """firing (notified) → silence by hostname → REST silenced, SSE `silenced`, status ok,
    an escalation meanwhile fires nothing new (the warning announced before is resolved, as
    the notifier's label rules say) → expire → `unsilenced`, announced firing (critical) at
    once, status critical. History holds the whole story in order."""
    log: list[Any] = []
    url, stop = start_receiver(log)
    reader = None
    try:
        server = start_server(webhook_urls=[url])
        only_rules(server, CPU)
        reader = SseReader(server.port, "/api/v1/events?topics=alerts")
        reader.until(lambda f: f.get("event") == "hello")
        server.ingest(make_batch(host_id="h1", cpu=80.0, at=clock.now))
        wait_for(lambda: len(log) == 1)
        assert active(server) == [("h1", "warning", False, 80.0)]
        assert status(server, "h1") == "warning"
        reader.until(lambda f: f.get("data", {}).get("kind") == "firing")

        body = {"matchers": {"machine": "h1.example"}, "ends_at": "2026-11-25T11:00:00Z"}
        created = server.request("POST", "/api/v1/silences", json.dumps(body))
        assert created.status == 201, created.body
        # no waiting: the answer came after the flag flipped
        assert active(server) == [("h1", "warning", True, 80.0)]
        assert status(server, "h1") == "ok"  # a silenced alert colours nothing
        frame = reader.until(lambda f: f.get("event") == "alert")[-1]["data"]
        assert (frame["kind"], frame["to_state"], frame["silenced"], frame["hostname"]) == (
            "silenced",
            "firing",
            True,
            "h1.example",
        )

        clock.advance(5)
        server.ingest(make_batch(host_id="h1", cpu=95.0, at=clock.now))
        frame = reader.until(lambda f: f.get("event") == "alert")[-1]["data"]
        assert (frame["kind"], frame["silenced"]) == ("escalated", True)
        # no new firing while silenced; the warning announced before is closed (amalerts)
        wait_for(lambda: len(log) == 2)
        assert [(p["status"], p["alerts"][-1]["labels"]["severity"]) for p in log] == [
            ("firing", "warning"),
            ("resolved", "warning"),
        ]

        clock.advance(5)
        gone = server.request("DELETE", f"/api/v1/silences/{created.json()['id']}")
        assert gone.status == 204
        assert active(server) == [("h1", "critical", False, 95.0)]
        assert status(server, "h1") == "critical"
        frame = reader.until(lambda f: f.get("event") == "alert")[-1]["data"]
        assert (frame["kind"], frame["from_state"], frame["to_state"], frame["silenced"]) == (
            "unsilenced",
            "firing",
            "firing",
            False,
        )
        wait_for(lambda: len(log) == 3)
        renotified = log[2]["alerts"][0]
        assert (log[2]["status"], renotified["labels"]["severity"]) == ("firing", "critical")
        assert renotified["labels"]["hostname"] == "h1.example"
        assert renotified["startsAt"] == "2026-11-25T10:00:00Z"  # the same episode

        history = server.request("GET", "/api/v1/alerts/history").json()["events"]
        assert [(e["kind"], e["silenced"]) for e in reversed(history)] == [
            ("firing", False),
            ("silenced", True),
            ("escalated", True),
            ("unsilenced", False),
        ]
    finally:
        if reader is not None:
            reader.close()
        stop()


def test_a_silence_ending_by_its_clock_renotifies(start_server, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    """A silence that ends by itself while the alert fires is applied by the periodic
    check: `unsilenced` and a new firing notification, without any API call."""
    log: list[Any] = []
    url, stop = start_receiver(log)
    try:
        server = start_server(webhook_urls=[url], silence_check_seconds=0.05)
        only_rules(server, CPU)
        server.ingest(make_batch(host_id="h1", cpu=80.0, at=clock.now))
        wait_for(lambda: len(log) == 1)
        body = {"matchers": {"rule": "CPU*"}, "ends_at": "2026-11-25T10:00:30Z"}
        assert server.request("POST", "/api/v1/silences", json.dumps(body)).status == 201
        assert active(server) == [("h1", "warning", True, 80.0)]
        clock.advance(31)
        server.ingest(make_batch(host_id="h1", cpu=80.0, at=clock.now))  # keep h1 alive
        wait_for(lambda: active(server) == [("h1", "warning", False, 80.0)])
        wait_for(lambda: len(log) >= 2)
        # one label set all along: the firing, then the same alert announced again
        assert [(p["status"], [(a["status"], a["labels"]) for a in p["alerts"]]) for p in log] == [
            ("firing", [("firing", log[0]["alerts"][0]["labels"])])
        ] * 2
        assert log[0]["alerts"][0]["labels"]["hostname"] == "h1.example"
    finally:
        stop()


def test_an_active_alert_value_follows_the_samples(start_server, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    """No transition, new values: /api/v1/alerts shows the latest value within a tick."""
    server = start_server(silence_check_seconds=0.05)
    only_rules(server, CPU)
    server.ingest(make_batch(host_id="h1", cpu=75.0, at=clock.now))
    assert active(server) == [("h1", "warning", False, 75.0)]
    for value in (78.0, 84.5):
        clock.advance(1)
        server.ingest(make_batch(host_id="h1", cpu=value, at=clock.now))
        wait_for(lambda v=value: active(server) == [("h1", "warning", False, v)])  # type: ignore[misc]
