"""``Live.listen``: in-process listeners get every stored batch's view and every alert event,
typed, in publish order; a listener's bug never reaches the ingest path or other listeners."""

from __future__ import annotations

import json
from datetime import timedelta

from srvmon_core.alert_state import AlertEvent
from srvmon_core.view import BatchView
from tests.server.harness import WRITE, RunningServer, make_batch


class Recorder:
    def __init__(self) -> None:
        self.views: list[BatchView] = []
        self.events: list[AlertEvent] = []
        self.closed = 0

    def stored(self, view: BatchView) -> None:
        self.views.append(view)

    def alert(self, event: AlertEvent) -> None:
        self.events.append(event)

    def close(self) -> None:
        self.closed += 1


class Broken(Recorder):
    def stored(self, view: BatchView) -> None:
        raise RuntimeError("listener bug on a batch")

    def alert(self, event: AlertEvent) -> None:
        raise RuntimeError("listener bug on an alert")

    def close(self) -> None:
        raise RuntimeError("listener bug on close")


def test_listeners_get_typed_views_and_events_and_a_broken_one_harms_nothing(
    server: RunningServer,
) -> None:
    rule = {"id": "cpu-hot", "name": "cpu hot", "metric": "cpu_percent", "warn": 50.0}
    assert server.request("POST", "/api/v1/rules", json.dumps(rule), token=WRITE).status == 201
    context = server.context
    assert context is not None
    broken, recorder = Broken(), Recorder()
    server.call(lambda: context.live.listen(broken))  # first: its errors must not stop the next
    server.call(lambda: context.live.listen(recorder))

    answer = server.ingest(make_batch(cpu=90.0, containers=(("web", 1.0),)))
    assert answer.status == 200, answer.body
    assert answer.json() == {"stored": 2, "duplicates": 0}  # the host and one container
    assert [[m.key for m in v.machines] for v in recorder.views] == [["h1", "h1:web"]]
    assert recorder.views[0].host is not None
    assert recorder.views[0].host.metrics["cpu_percent"] == 90.0
    seen = [(e.rule_id, e.machine_key, e.kind, e.value) for e in recorder.events]
    assert seen == [
        ("default.host.cpu", "h1", "pending", 90.0),  # the seeded rule waits its 60 s
        ("cpu-hot", "h1", "firing", 90.0),
    ]
    history = server.request("GET", "/api/v1/alerts/history", token=WRITE).json()
    assert sorted((i["rule_id"], i["kind"]) for i in history["events"]) == sorted(
        (rule_id, kind) for rule_id, _, kind, _ in seen
    )

    server.ingest(make_batch(cpu=90.0, containers=(("web", 1.0),)))  # a replay: not stored
    assert len(recorder.views) == 1

    server.call(context.live.close)
    server.call(context.live.close)  # idempotent: each listener is closed once
    assert recorder.closed == 1
    server.ingest(make_batch(at=make_batch().timestamp + timedelta(seconds=5), cpu=10.0))
    assert len(recorder.views) == 1  # a closed listener gets nothing more
