"""Webhook and Alertmanager notifications against a real local HTTP receiver."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web
from attrs import evolve

from srvmon_core.alert_state import AlertEvent
from srvmon_server.notify import Notifier, alertmanager_alerts, webhook_payloads
from tests.helpers import run_async

FIRING = AlertEvent(
    fingerprint="abc123",
    kind="firing",
    rule_id="cpu-high",
    rule_name="CPU high",
    machine_key="h1",
    machine_kind="host",
    machine_name="h1.example",
    host_id="h1",
    metric="cpu_percent",
    level="critical",
    from_state="pending",
    to_state="firing",
    value=97.0,
    threshold=90.0,
    started_at=datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC),
    at=datetime(2026, 11, 25, 10, 0, 30, tzinfo=UTC),
)
RESOLVED = evolve(
    FIRING,
    kind="resolved",
    from_state="firing",
    to_state="resolved",
    at=datetime(2026, 11, 25, 10, 5, 0, tzinfo=UTC),
)
PENDING = evolve(FIRING, kind="pending", from_state="ok", to_state="pending")


class Recorder(tornado.web.RequestHandler):
    def initialize(self, log: list[tuple[str, Any]], fail_first: list[int]) -> None:
        self.log = log
        self.fail_first = fail_first

    def post(self, *_: str) -> None:
        self.log.append((self.request.path, json.loads(self.request.body)))
        if self.fail_first[0] > 0:
            self.fail_first[0] -= 1
            self.set_status(503)
        self.finish()


async def start_receiver(fail_first: int) -> tuple[str, list[tuple[str, Any]], Any]:
    log: list[tuple[str, Any]] = []
    app = tornado.web.Application([(r"(.*)", Recorder, {"log": log, "fail_first": [fail_first]})])
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}", log, server


def test_payload_shapes() -> None:
    """Firing and resolved become Alertmanager v4 webhook bodies; pending notifies nothing."""
    payloads = webhook_payloads([FIRING, PENDING, RESOLVED], "http://srv:8004")
    assert [p["status"] for p in payloads] == ["firing", "resolved"]
    first = payloads[0]
    assert set(first) == {
        "version",
        "groupKey",
        "status",
        "receiver",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "alerts",
    }
    assert first["version"] == "4"
    assert first["groupKey"] == '{}:{alertname="CPU high"}:abc123'
    alert = first["alerts"][0]
    assert set(alert) == {
        "status",
        "labels",
        "annotations",
        "startsAt",
        "endsAt",
        "generatorURL",
        "fingerprint",
    }
    assert alert["labels"]["alertname"] == "CPU high"
    assert alert["labels"]["severity"] == "critical"
    assert alert["startsAt"] == "2026-11-25T10:00:00Z"
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert payloads[1]["alerts"][0]["endsAt"] == "2026-11-25T10:05:00Z"
    am = alertmanager_alerts([FIRING, RESOLVED], "http://srv:8004")
    assert "endsAt" not in am[0] and am[1]["endsAt"] == "2026-11-25T10:05:00Z"


def test_webhook_retries_until_delivered() -> None:
    """Two failures (503) then success: three POSTs, delays double, delivered once."""

    async def scenario() -> None:
        url, log, server = await start_receiver(fail_first=2)
        delays: list[float] = []

        async def fake_sleep(seconds: float) -> None:
            delays.append(seconds)

        notifier = Notifier(
            webhook_urls=[url + "/hook"],
            alertmanager_url=None,
            external_url="http://srv",
            retries=3,
            backoff_seconds=0.1,
            sleep=fake_sleep,
        )
        await notifier.notify([FIRING])
        server.stop()
        assert [path for path, _ in log] == ["/hook", "/hook", "/hook"]
        assert all(body["status"] == "firing" for _, body in log)
        assert delays == [0.1, 0.2]
        assert notifier.sent == 1 and notifier.failed == 0

    run_async(scenario())


def test_alertmanager_push() -> None:
    """With an Alertmanager URL, firing alerts are POSTed to /api/v2/alerts as a list."""

    async def scenario() -> None:
        url, log, server = await start_receiver(fail_first=0)
        notifier = Notifier(webhook_urls=[], alertmanager_url=url, external_url="http://srv")
        await notifier.notify([FIRING, PENDING])
        server.stop()
        assert len(log) == 1
        path, body = log[0]
        assert path == "/api/v2/alerts"
        assert len(body) == 1 and body[0]["labels"]["machine"] == "h1"

    run_async(scenario())


def test_webhook_gives_up_after_retries() -> None:
    """A receiver that always fails gets 1 + retries attempts with exponential backoff."""

    async def scenario() -> None:
        url, log, server = await start_receiver(fail_first=100)
        delays: list[float] = []

        async def fake_sleep(seconds: float) -> None:
            delays.append(seconds)

        notifier = Notifier(
            webhook_urls=[url],
            alertmanager_url=None,
            external_url="http://srv",
            retries=3,
            backoff_seconds=0.5,
            sleep=fake_sleep,
        )
        await notifier.notify([RESOLVED])
        server.stop()
        assert len(log) == 4
        assert delays == [0.5, 1.0, 2.0]
        assert notifier.sent == 0 and notifier.failed == 1
        assert log[0][1]["status"] == "resolved"

    run_async(scenario())
