"""srvmon's alerts in a real ``prometheus-alertmanager`` (Debian 0.25), as Prometheus's own.

Each test starts its Alertmanager(s) with a scratch storage path on a free 127.0.0.1 port,
clustering off, and an in-process srvmon server on a real port with the real clock.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from srvmon_server.amalerts import label_fingerprint
from srvmon_server.app import utc_now
from srvmon_server.config import ServerConfig
from srvmon_server.storage import Storage
from tests.fixtures.prometheus import Alertmanager
from tests.prometheus.blocks import doc_blocks
from tests.prometheus.recorder import Recorder
from tests.server.harness import READ, WRITE, RunningServer, make_batch

pytestmark = pytest.mark.prometheus

StartAlertmanager = Callable[[str], Alertmanager]
CPU_RULE = {
    "id": "cpu",
    "name": "CPU busy",
    "metric": "cpu_percent",
    "warn": 80,
    "crit": 90,
    "selector": {"kind": "host"},
}
LABELS = {
    "alertname": "CPU busy",
    "source": "srvmon",
    "rule_id": "cpu",
    "machine": "h1",
    "kind": "host",
    "host_id": "h1",
    "hostname": "h1.example",
    "metric": "cpu_percent",
}


def plain_config(receiver_url: str, resolve_timeout: str = "5m") -> str:
    """One webhook receiver named like srvmon's, grouping as srvmon's webhooks do."""
    return f"""\
global:
  resolve_timeout: {resolve_timeout}
route:
  receiver: srvmon
  group_by: [alertname, machine]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: srvmon
    webhook_configs:
      - url: {receiver_url}
        send_resolved: true
"""


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    hooks = Recorder()
    yield hooks
    hooks.close()


@pytest.fixture
def srvmon(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Start in-process servers (real clock) on one SQLite file; stopped at teardown."""
    running: list[RunningServer] = []

    def start(**config: Any) -> RunningServer:
        storage = Storage.open(f"sqlite:///{tmp_path / 'srvmon.db'}")
        options: dict[str, Any] = {"write_tokens": {WRITE}, "read_tokens": {READ}, **config}
        server = RunningServer(storage, ServerConfig(**options), utc_now)
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop()
        server.storage.close()


def only_cpu_rule(server: RunningServer) -> None:
    for rule in server.request("GET", "/api/v1/rules").json()["rules"]:
        assert server.request("DELETE", f"/api/v1/rules/{rule['id']}").status == 204
    assert server.request("POST", "/api/v1/rules", json.dumps(CPU_RULE)).status == 201


def report(server: RunningServer, cpu: float) -> None:
    assert server.ingest(make_batch(cpu=cpu, at=datetime.now(UTC))).status == 200


def wait(condition: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"not within {seconds} s: {what}")


def severities(manager: Alertmanager) -> list[str]:
    return sorted(a["labels"].get("severity", "?") for a in manager.alerts())


def parse(stamp: str) -> datetime:
    """RFC 3339 with up to nanoseconds (Alertmanager) or microseconds (srvmon)."""
    stamp = re.sub(r"(\.\d{6})\d+", r"\1", stamp)
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_warning_critical_resolved_in_an_ha_pair_with_the_documented_route(
    start_alertmanager: StartAlertmanager, srvmon: Callable[..., RunningServer], recorder: Recorder
) -> None:
    """firing(warning) → firing(critical) → resolved. At each step each Alertmanager of the
    pair holds exactly the one matching active alert (the documented route sends it to
    team-chat, then to the pager); after the resolve none, within seconds although
    resolve_timeout is 5 min. Fingerprints are Alertmanager's own."""
    route = re.sub(
        r"http://[a-z-]+:9000/alert", f"{recorder.url}/route", doc_blocks()["alertmanager.yml"]
    )
    pair = [start_alertmanager(route), start_alertmanager(route)]
    server = srvmon(alertmanager_urls=[m.url for m in pair], external_url="http://srvmon:8004")
    only_cpu_rule(server)

    steps = [
        (85.0, "warning", "team-chat", "cpu_percent on h1.example is 85 (warning above 80)"),
        (95.0, "critical", "pager", "cpu_percent on h1.example is 95 (critical above 90)"),
    ]
    for cpu, severity, receiver, summary in steps:
        report(server, cpu)
        for manager in pair:
            wait(
                lambda m=manager, s=severity: severities(m) == [s],
                10,
                f"{severity} in {manager.url}",
            )
            (alert,) = manager.alerts()  # exactly one: the old severity is resolved
            assert alert["labels"] == {**LABELS, "severity": severity}
            assert alert["fingerprint"] == label_fingerprint(alert["labels"])
            assert alert["status"]["state"] == "active"
            assert [r["name"] for r in alert["receivers"]] == [receiver]
            assert alert["annotations"]["summary"] == summary
            assert alert["generatorURL"] == "http://srvmon:8004/#/host/h1"
            ahead = (parse(alert["endsAt"]) - datetime.now(UTC)).total_seconds()
            assert 200 < ahead <= 240  # 4 resend intervals (60 s) past the push

    resolved_at = time.monotonic()
    report(server, 10.0)
    for manager in pair:
        wait(lambda m=manager: m.alerts() == [], 10, f"no alert left in {manager.url}")
    assert time.monotonic() - resolved_at < 5  # resolve_timeout is 5 min: srvmon resolved it


def test_srvmons_webhook_body_is_the_one_alertmanager_sends(
    start_alertmanager: StartAlertmanager, srvmon: Callable[..., RunningServer], recorder: Recorder
) -> None:
    """Alertmanager, fed srvmon's alert, notifies a webhook; srvmon notifies its own webhook
    for the same alert. Both bodies are equal, key for key, but for ``externalURL`` (each
    names itself) and the timestamps' precision; for the firing and for the resolve."""
    manager = start_alertmanager(plain_config(f"{recorder.url}/am"))
    server = srvmon(
        alertmanager_urls=[manager.url],
        webhook_urls=[f"{recorder.url}/srvmon"],
        external_url="http://srvmon:8004",
    )
    only_cpu_rule(server)
    report(server, 85.0)
    wait(lambda: recorder.bodies("/am") and recorder.bodies("/srvmon"), 10, "both firing webhooks")
    report(server, 10.0)
    wait(
        lambda: len(recorder.bodies("/am")) == 2 and len(recorder.bodies("/srvmon")) == 2,
        10,
        "both resolves",
    )

    for ours, theirs in zip(recorder.bodies("/srvmon"), recorder.bodies("/am"), strict=True):
        assert set(ours) == set(theirs)
        assert (ours["externalURL"], theirs["externalURL"]) == (
            "http://srvmon:8004",
            manager_url(theirs),
        )
        for body in (ours, theirs):
            del body["externalURL"]
            for alert in body["alerts"]:
                for key in ("startsAt", "endsAt"):
                    if alert[key] != "0001-01-01T00:00:00Z":
                        alert[key] = parse(alert[key]).replace(microsecond=0).isoformat()
        assert ours == theirs
    assert [b["status"] for b in recorder.bodies("/srvmon")] == ["firing", "resolved"]
    assert recorder.bodies("/srvmon")[0]["truncatedAlerts"] == 0


def manager_url(body: dict[str, Any]) -> str:
    url = body["externalURL"]
    assert url.startswith("http://"), url
    return str(url)


def test_a_firing_alert_outlives_three_resolve_timeouts(
    start_alertmanager: StartAlertmanager, srvmon: Callable[..., RunningServer], recorder: Recorder
) -> None:
    """resolve_timeout 2 s, srvmon's resend every 0.5 s: the alert, fired once, stays
    active for 3 x 2 s (polled every 0.1 s). A control alert posted once without endsAt,
    as srvmon did before, is resolved by Alertmanager within that time."""
    manager = start_alertmanager(plain_config(f"{recorder.url}/am", resolve_timeout="2s"))
    server = srvmon(alertmanager_urls=[manager.url], alertmanager_resend_seconds=0.5)
    only_cpu_rule(server)
    report(server, 85.0)
    wait(lambda: severities(manager) == ["warning"], 10, "the warning in Alertmanager")
    control = [{"labels": {"alertname": "control", "source": "test"}}]
    import urllib.request

    request = urllib.request.Request(
        f"{manager.url}/api/v2/alerts",
        json.dumps(control).encode(),
        {"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=5).close()
    seen_control = False
    control_gone_after: float | None = None
    start = time.monotonic()
    polls = 0
    while (elapsed := time.monotonic() - start) < 6.5:
        names = sorted(a["labels"]["alertname"] for a in manager.alerts())
        assert "CPU busy" in names, f"srvmon's alert expired after {elapsed:.1f} s"
        assert names.count("CPU busy") == 1
        if "control" in names:
            seen_control = True
        elif seen_control and control_gone_after is None:
            control_gone_after = elapsed
        polls += 1
        time.sleep(0.1)
    assert seen_control and control_gone_after is not None and control_gone_after < 4.5
    assert polls > 30


def test_a_restarted_server_sends_its_active_set_at_once(
    start_alertmanager: StartAlertmanager, srvmon: Callable[..., RunningServer], recorder: Recorder
) -> None:
    """A server fires an alert, stops; a fresh Alertmanager starts (it knows nothing); the
    server starts again on the same database with a 60 s resend: within seconds, with no
    new sample, the alert is there with its original start."""
    first = srvmon()
    only_cpu_rule(first)
    report(first, 95.0)
    (active,) = first.request("GET", "/api/v1/alerts").json()["alerts"]
    first.stop()
    first.storage.close()

    manager = start_alertmanager(plain_config(f"{recorder.url}/am"))
    srvmon(alertmanager_urls=[manager.url], alertmanager_resend_seconds=60)
    wait(lambda: severities(manager) == ["critical"], 5, "the active set after the restart")
    (alert,) = manager.alerts()
    assert alert["labels"] == {**LABELS, "severity": "critical"}
    # the saved state keeps milliseconds
    assert abs((parse(alert["startsAt"]) - parse(active["since"])).total_seconds()) < 0.001


def test_a_deleted_machines_alert_is_resolved_in_alertmanager_at_once(
    start_alertmanager: StartAlertmanager, srvmon: Callable[..., RunningServer], recorder: Recorder
) -> None:
    """h1 fires in Alertmanager (valid 4 minutes ahead); h1 is deleted: Alertmanager holds
    no alert within seconds (it would have for 4 minutes), and the next resend (the active
    set, every minute) does not bring it back."""
    manager = start_alertmanager(plain_config(f"{recorder.url}/hook"))
    server = srvmon(alertmanager_urls=[manager.url])
    only_cpu_rule(server)
    report(server, 95.0)
    wait(lambda: severities(manager) == ["critical"], 10, "the alert in Alertmanager")
    (alert,) = manager.alerts()
    assert (parse(alert["endsAt"]) - datetime.now(UTC)).total_seconds() > 200

    deleted_at = time.monotonic()
    assert server.request("DELETE", "/api/v1/machines/h1").status == 204
    wait(lambda: manager.alerts() == [], 10, "no alert left in Alertmanager")
    assert time.monotonic() - deleted_at < 5
    assert server.context is not None
    assert server.context.notifier.announced.firing() == []  # no resend brings it back
