"""Notifications: alert identity towards Alertmanager, wording, webhook bodies, and the
retrying, ordered, fanned-out sender against real local HTTP receivers.

The real Alertmanager is in tests/prometheus/; here the shapes are pinned from
Alertmanager's documented API (``POST /api/v2/alerts`` items, the v4 webhook body).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import tornado.httpserver
import tornado.netutil
import tornado.web
from attrs import evolve

from srvmon_core.alert_state import AlertEvent
from srvmon_core.rules import Rule
from srvmon_server.amalerts import Announced, Lookups, label_fingerprint, summary, webhook_body
from srvmon_server.notify import Notifier
from tests.helpers import run_async

T0 = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)
CPU_RULE = Rule(id="cpu-high", name="CPU high", metric="cpu_percent", warn=80, crit=90)
SILENT_RULE = Rule(id="silent", name="Host silent", kind="silent", silent_seconds=30)
RULES = {r.id: r for r in (CPU_RULE, SILENT_RULE)}
LOOKUPS = Lookups(rule=RULES.get, hostname={"h1": "node-a", "h1:web": "node-a"}.get)

WARNING = AlertEvent(
    fingerprint="abc123",
    kind="firing",
    rule_id="cpu-high",
    rule_name="CPU high",
    machine_key="h1",
    machine_kind="host",
    machine_name="node-a",
    host_id="h1",
    metric="cpu_percent",
    level="warning",
    from_state="pending",
    to_state="firing",
    value=85.0,
    threshold=80.0,
    started_at=T0,
    at=T0 + timedelta(seconds=30),
)
CRITICAL = evolve(
    WARNING,
    kind="escalated",
    from_state="firing",
    level="critical",
    value=97.5,
    threshold=90.0,
    at=T0 + timedelta(seconds=60),
)
RESOLVED = evolve(
    CRITICAL,
    kind="resolved",
    to_state="resolved",
    level="none",
    value=12.0,
    threshold=85.0,
    at=T0 + timedelta(seconds=90),
)
PENDING = evolve(WARNING, kind="pending", from_state="ok", to_state="pending")
SILENT = evolve(
    WARNING,
    fingerprint="def456",
    rule_id="silent",
    rule_name="Host silent",
    metric=None,
    value=62.3,
    threshold=30.0,
)
WARNING_LABELS = {
    "alertname": "CPU high",
    "severity": "warning",
    "source": "srvmon",
    "rule_id": "cpu-high",
    "machine": "h1",
    "kind": "host",
    "host_id": "h1",
    "hostname": "node-a",
    "metric": "cpu_percent",
}


def statuses(notices: list[Any]) -> list[tuple[str, str]]:
    return [(n.status, n.labels["severity"]) for n in notices]


def test_escalation_resolves_the_old_severity_and_fires_the_new() -> None:
    """warning → critical → resolved: each alert keeps one label set for its life; the
    escalation resolves the warning (endsAt = the escalation) and fires the critical; the
    resolve repeats the critical's labels (never ``severity="none"``) with an endsAt."""
    announced = Announced("http://srv:8004/", LOOKUPS)
    first = announced.apply(WARNING)
    assert statuses(first) == [("firing", "warning")]
    assert first[0].labels == WARNING_LABELS
    assert first[0].starts_at == T0  # the alert's start, as the dashboard shows it
    assert first[0].generator_url == "http://srv:8004/#/host/h1"

    second = announced.apply(CRITICAL)
    assert statuses(second) == [("resolved", "warning"), ("firing", "critical")]
    assert second[0].labels == WARNING_LABELS
    assert second[0].ends_at == CRITICAL.at
    assert second[1].labels == {**WARNING_LABELS, "severity": "critical"}
    assert second[1].starts_at == CRITICAL.at
    assert [n.labels["severity"] for n in announced.firing()] == ["critical"]

    third = announced.apply(RESOLVED)
    assert statuses(third) == [("resolved", "critical")]
    assert third[0].labels == second[1].labels
    assert third[0].ends_at == RESOLVED.at
    assert announced.firing() == []


def test_repeat_keeps_labels_and_start_and_refreshes_annotations() -> None:
    announced = Announced("http://srv", LOOKUPS)
    announced.apply(WARNING)
    again = announced.apply(
        evolve(WARNING, kind="repeat", from_state="firing", value=88.0, at=T0 + timedelta(600))
    )
    assert statuses(again) == [("firing", "warning")]
    assert again[0].starts_at == T0
    assert again[0].annotations["value"] == "88"


def test_silences_announce_nothing_new_but_close_what_was_announced() -> None:
    """A silenced firing is not announced; a silenced repeat stays held (resends keep it)
    without a post; a silenced resolve of an announced alert is still sent."""
    announced = Announced("http://srv", LOOKUPS)
    assert announced.apply(evolve(WARNING, silenced=True)) == []
    assert len(announced) == 0
    announced.apply(WARNING)
    repeat = evolve(WARNING, kind="repeat", from_state="firing", silenced=True)
    assert announced.apply(repeat) == []
    assert len(announced) == 1
    resolved = announced.apply(evolve(RESOLVED, silenced=True))
    assert statuses(resolved) == [("resolved", "warning")]
    assert announced.apply(RESOLVED) == []  # nothing held any more
    assert announced.apply(PENDING) == []
    cancelled = evolve(PENDING, kind="cancelled", from_state="pending", to_state="ok")
    assert announced.apply(cancelled) == []


@pytest.mark.parametrize(
    ("event", "rule", "expected"),
    [
        (WARNING, CPU_RULE, "cpu_percent on node-a is 85 (warning above 80)"),
        (CRITICAL, CPU_RULE, "cpu_percent on node-a is 97.5 (critical above 90)"),
        (SILENT, SILENT_RULE, "node-a silent for 62 s"),
        (
            evolve(SILENT, machine_kind="container", machine_key="h1:web", machine_name="web"),
            SILENT_RULE,
            "container web on node-a silent for 62 s",
        ),
        (
            evolve(SILENT, metric=None, value=137.0, machine_kind="container", machine_name="db"),
            Rule(id="s", name="Stopped", kind="container_stopped"),
            "container db on node-a stopped (exit code 137)",
        ),
        (
            evolve(SILENT, metric=None, value=None, machine_kind="container", machine_name="db"),
            Rule(id="s", name="Stopped", kind="container_stopped"),
            "container db on node-a stopped",
        ),
        (
            evolve(SILENT, metric=None, value=3.0, machine_kind="container", machine_name="db"),
            Rule(id="r", name="Restarted", kind="container_restarted"),
            "container db on node-a restarted (3 restarts in all)",
        ),
        (
            evolve(SILENT, metric=None, value=None, machine_kind="container", machine_name="db"),
            Rule(id="u", name="Unhealthy", kind="container_unhealthy"),
            "container db on node-a is unhealthy",
        ),
        (SILENT, None, "Host silent on node-a"),  # the rule was deleted meanwhile
    ],
)
def test_summaries_are_worded_per_rule_kind(
    event: AlertEvent, rule: Rule | None, expected: str
) -> None:
    assert summary(event, rule, "node-a") == expected


def test_no_text_reads_none() -> None:
    """A silent rule has no metric; a container-unhealthy rule no value and no threshold;
    an unknown hostname none: each is left out, never written as None."""
    unhealthy = evolve(
        SILENT,
        fingerprint="u-h9-web",
        rule_id="u",
        rule_name="Unhealthy",
        machine_kind="container",
        machine_key="h9:web",
        machine_name="web",
        host_id="h9",
        value=None,
        threshold=None,
    )
    lookups = Lookups(rule={"u": Rule(id="u", name="U", kind="container_unhealthy")}.get)
    announced = Announced("http://srv", lookups)
    notices = announced.apply(SILENT) + announced.apply(unhealthy)
    silent, sick = notices
    assert "metric" not in silent.labels
    assert sick.labels == {
        "alertname": "Unhealthy",
        "severity": "warning",
        "source": "srvmon",
        "rule_id": "u",
        "machine": "h9:web",
        "kind": "container",
        "host_id": "h9",
        "container": "web",
    }
    assert sick.annotations == {"summary": "container web on h9 is unhealthy"}
    text = json.dumps([webhook_body(notices, "http://srv")] + [n.api_json(T0) for n in notices])
    assert "None" not in text and "null" not in text


def test_webhook_body_is_alertmanager_v4() -> None:
    """Exactly the keys of Alertmanager's v4 webhook, ``truncatedAlerts`` included; an
    escalation carries the resolved warning and the firing critical, severity not common."""
    announced = Announced("http://srv:8004", LOOKUPS)
    first = webhook_body(announced.apply(WARNING), "http://srv:8004")
    assert set(first) == {
        "version",
        "groupKey",
        "truncatedAlerts",
        "status",
        "receiver",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "alerts",
    }
    assert (first["version"], first["truncatedAlerts"], first["status"]) == ("4", 0, "firing")
    assert first["groupLabels"] == {"alertname": "CPU high", "machine": "h1"}
    assert first["groupKey"] == '{}:{alertname="CPU high", machine="h1"}'
    assert first["commonLabels"] == WARNING_LABELS
    assert first["commonAnnotations"] == {
        "summary": "cpu_percent on node-a is 85 (warning above 80)",
        "value": "85",
        "threshold": "80",
    }
    (alert,) = first["alerts"]
    assert set(alert) == {
        "status",
        "labels",
        "annotations",
        "startsAt",
        "endsAt",
        "generatorURL",
        "fingerprint",
    }
    assert (alert["startsAt"], alert["endsAt"]) == ("2026-11-25T10:00:00Z", "0001-01-01T00:00:00Z")
    assert alert["fingerprint"] == label_fingerprint(WARNING_LABELS)

    second = webhook_body(announced.apply(CRITICAL), "http://srv:8004")
    assert second["status"] == "firing"
    assert [(a["status"], a["labels"]["severity"]) for a in second["alerts"]] == [
        ("resolved", "warning"),
        ("firing", "critical"),
    ]
    assert second["alerts"][0]["endsAt"] == "2026-11-25T10:01:00Z"
    assert "severity" not in second["commonLabels"]
    assert second["alerts"][0]["fingerprint"] != second["alerts"][1]["fingerprint"]
    third = webhook_body(announced.apply(RESOLVED), "http://srv:8004")
    assert third["status"] == "resolved"
    assert third["alerts"][0]["endsAt"] == "2026-11-25T10:01:30Z"


def test_label_fingerprint_is_alertmanagers() -> None:
    """FNV-1a 64 over sorted names and values: Alertmanager's fingerprints of these label
    sets, as its /api/v2/alerts reported them (tests/prometheus checks it live too)."""
    assert label_fingerprint({}) == "cbf29ce484222325"  # the FNV-64 offset basis
    assert label_fingerprint({"alertname": "x"}) == "d240efc3896bf266"
    labels = {"alertname": "CPU high", "severity": "warning", "machine": "h1"}
    assert label_fingerprint(labels) == "8a97a0c2e85fea49"


# --- the sender, against real local receivers ---------------------------------------------


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


def notifier(**options: Any) -> Notifier:
    defaults: dict[str, Any] = {
        "webhook_urls": [],
        "alertmanager_urls": [],
        "external_url": "http://srv",
        "clock": lambda: T0 + timedelta(seconds=100),
        "lookups": LOOKUPS,
    }
    return Notifier(**{**defaults, **options})


def test_webhook_retries_until_delivered() -> None:
    """Two failures (503) then success: three POSTs, delays double, delivered once."""

    async def scenario() -> None:
        url, log, server = await start_receiver(fail_first=2)
        delays: list[float] = []

        async def fake_sleep(seconds: float) -> None:
            delays.append(seconds)

        sender = notifier(webhook_urls=[url + "/hook"], backoff_seconds=0.1, sleep=fake_sleep)
        await sender.notify([WARNING])
        server.stop()
        assert [path for path, _ in log] == ["/hook", "/hook", "/hook"]
        assert all(body["status"] == "firing" for _, body in log)
        assert delays == [0.1, 0.2]
        assert sender.sent == 1 and sender.failed == 0

    run_async(scenario())


def test_every_alertmanager_gets_every_alert_and_resends_keep_them_valid() -> None:
    """An HA pair: each gets the escalation (resolved warning + firing critical, firing
    valid 4 resend intervals past now), each gets the resend of the firing set, and each
    gets the resolve. A pending event posts nothing."""

    async def scenario() -> None:
        url_a, log_a, server_a = await start_receiver(fail_first=0)
        url_b, log_b, server_b = await start_receiver(fail_first=0)
        sender = notifier(alertmanager_urls=[url_a, url_b + "/"], resend_seconds=15)
        await sender.notify([PENDING])
        assert log_a == log_b == []
        await sender.notify([WARNING, CRITICAL])
        assert sender.alertmanager_active == 1
        await sender.resend()
        await sender.notify([RESOLVED])
        await sender.resend()  # nothing firing: nothing sent
        server_a.stop()
        server_b.stop()
        assert log_a == log_b
        assert [path for path, _ in log_a] == ["/api/v2/alerts"] * 3
        escalation, resend, resolve = (body for _, body in log_a)
        valid_until = "2026-11-25T10:02:40Z"  # now (10:01:40) + 4 x 15 s
        # one post per call: the warning's firing and resolve collapse into its resolve
        assert [(a["labels"]["severity"], a["startsAt"], a["endsAt"]) for a in escalation] == [
            ("warning", "2026-11-25T10:00:00Z", "2026-11-25T10:01:00Z"),
            ("critical", "2026-11-25T10:01:00Z", valid_until),
        ]
        assert set(escalation[0]) == {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}
        assert [(a["labels"]["severity"], a["endsAt"]) for a in resend] == [
            ("critical", valid_until)
        ]
        assert [(a["labels"], a["endsAt"]) for a in resolve] == [
            (escalation[1]["labels"], "2026-11-25T10:01:30Z")
        ]
        assert sender.alertmanager_active == 0

    run_async(scenario())


def test_restore_announces_the_active_set_on_the_first_resend() -> None:
    """After a start, the firing alerts (not the silenced ones) go out at once."""

    async def scenario() -> None:
        url, log, server = await start_receiver(fail_first=0)
        sender = notifier(alertmanager_urls=[url])
        sender.restore([WARNING, evolve(SILENT, silenced=True)])
        await sender.resend()
        server.stop()
        ((_, body),) = log
        assert [(a["labels"]["alertname"], a["startsAt"]) for a in body] == [
            ("CPU high", "2026-11-25T10:00:00Z")
        ]

    run_async(scenario())


def test_posts_to_one_url_keep_their_order_through_retries() -> None:
    """The firing post fails twice; the resolve asked for meanwhile waits for it, so the
    receiver sees firing, firing, firing, resolved: a resolve never overtakes."""

    async def scenario() -> None:
        import asyncio

        url, log, server = await start_receiver(fail_first=2)

        async def short_sleep(seconds: float) -> None:
            await asyncio.sleep(0.01)

        sender = notifier(alertmanager_urls=[url], sleep=short_sleep)
        await asyncio.gather(
            sender.notify([WARNING]), sender.notify([evolve(RESOLVED, level="none")])
        )
        server.stop()
        ends = [body[0]["endsAt"] for _, body in log]
        assert ends[:3] == [ends[0]] * 3 and ends[3] == "2026-11-25T10:01:30Z"
        assert len(log) == 4

    run_async(scenario())


def test_webhook_gives_up_after_retries() -> None:
    """A receiver that always fails gets 1 + retries attempts with exponential backoff."""

    async def scenario() -> None:
        url, log, server = await start_receiver(fail_first=100)
        delays: list[float] = []

        async def fake_sleep(seconds: float) -> None:
            delays.append(seconds)

        sender = notifier(webhook_urls=[url], backoff_seconds=0.5, sleep=fake_sleep)
        await sender.notify([WARNING])
        server.stop()
        assert len(log) == 4
        assert delays == [0.5, 1.0, 2.0]
        assert sender.sent == 0 and sender.failed == 1

    run_async(scenario())


def test_alertmanager_options_one_url_several_urls_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The option keeps its old single-URL form, repeats for an HA pair, and its variable
    takes several whitespace-separated URLs; the resend interval has a 60 s default."""
    from srvmon_server.command import server

    def params(*args: str) -> dict[str, Any]:
        return server.make_context("server", list(args)).params

    monkeypatch.delenv("SRVMON_ALERTMANAGER_URL", raising=False)
    monkeypatch.delenv("SRVMON_ALERTMANAGER_RESEND_SECONDS", raising=False)
    one = params("--alertmanager-url", "http://am:9093")
    assert (one["alertmanager_urls"], one["alertmanager_resend_seconds"]) == (
        ("http://am:9093",),
        60.0,
    )
    pair = params(
        "--alertmanager-url", "http://am-a:9093", "--alertmanager-url", "http://am-b:9093"
    )
    assert pair["alertmanager_urls"] == ("http://am-a:9093", "http://am-b:9093")
    monkeypatch.setenv("SRVMON_ALERTMANAGER_URL", "http://am-a:9093 http://am-b:9093")
    monkeypatch.setenv("SRVMON_ALERTMANAGER_RESEND_SECONDS", "15")
    env = params()
    assert (env["alertmanager_urls"], env["alertmanager_resend_seconds"]) == (
        ("http://am-a:9093", "http://am-b:9093"),
        15.0,
    )


def test_the_old_single_url_setting_still_reaches_alertmanager() -> None:
    """Embedders that set ServerConfig.alertmanager_url keep working, merged with the list."""
    from srvmon_server.config import ServerConfig

    config = ServerConfig(
        write_tokens={"t"},
        alertmanager_url="http://old:9093",
        alertmanager_urls=["http://new:9093", "http://old:9093"],
    )
    assert config.alertmanagers == ("http://new:9093", "http://old:9093")


def test_an_alert_fired_under_a_silence_is_announced_when_the_silence_ends() -> None:
    """Fired while silenced: nothing. While the silence lasts the reconcile (every tick)
    announces nothing; once it has ended, the still-firing alert is announced once, with
    its original start, and a late ``firing`` event for it adds no second post."""
    sender = notifier(webhook_urls=["http://hooks/a"], alertmanager_urls=["http://am"])
    assert sender.announce([evolve(WARNING, silenced=True)]) == []
    assert sender.reconcile([evolve(WARNING, silenced=True)]) == []
    outbox = sender.reconcile([WARNING])
    assert [url for url, _ in outbox] == ["http://hooks/a", "http://am/api/v2/alerts"]
    webhook = outbox[0][1]
    assert isinstance(webhook, dict)
    assert webhook["alerts"][0]["startsAt"] == "2026-11-25T10:00:00Z"
    assert sender.reconcile([WARNING]) == []
    assert sender.announce([WARNING]) == []


def test_an_alert_announced_before_its_sample_is_published_keeps_one_label_set() -> None:
    """The periodic reconcile can announce a firing alert between the engine firing it
    and the ingest publishing the sample that fired it, when no lookup knows the machine
    yet. The labels come from the event (its hostname), so the ingest's own ``firing``
    adds nothing: no resolve of a label set without ``hostname`` and no second firing,
    and the silence that ends later re-announces the same alert."""
    unknown = Lookups(rule=RULES.get, hostname=lambda _key: None)
    sender = Notifier(
        webhook_urls=["http://hooks/a"],
        alertmanager_urls=[],
        external_url="http://srvmon",
        clock=lambda: T0,
        lookups=unknown,
    )
    fired = evolve(WARNING, hostname="node-a")
    outbox = sender.reconcile([fired])
    assert len(outbox) == 1
    body = outbox[0][1]
    assert isinstance(body, dict)
    assert [a["labels"] for a in body["alerts"]] == [WARNING_LABELS]
    assert sender.announce([fired]) == []
    assert sender.announce([evolve(fired, kind="silenced", silenced=True)]) == []
    again = sender.announce([evolve(fired, kind="unsilenced", from_state="firing")])
    body = again[0][1]
    assert isinstance(body, dict)
    assert [(a["status"], a["labels"]) for a in body["alerts"]] == [("firing", WARNING_LABELS)]
