"""Silences: structured from API bodies by cattrs (errors name the field), matched by globs
while active, and applied by the engine when it creates an event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from attrs import evolve

from srvmon_core.alert_state import AlertEvent
from srvmon_core.engine import EngineState, evaluate_batch
from srvmon_core.errors import ConfigError
from srvmon_core.rules import Rule, Selector
from srvmon_core.schema import Batch, HostSample
from srvmon_core.silences import (
    Silence,
    SilenceMatchers,
    SilenceRequest,
    silence_from_dict,
    silence_request,
    silence_to_dict,
)

pytestmark = pytest.mark.core

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def alert_event(machine_key: str, machine_name: str, host_id: str = "h9") -> AlertEvent:
    """A firing event of rule cpu-high ("CPU high") on one machine."""
    return AlertEvent(
        fingerprint="fp",
        kind="firing",
        rule_id="cpu-high",
        rule_name="CPU high",
        machine_key=machine_key,
        machine_kind="container",
        machine_name=machine_name,
        host_id=host_id,
        metric="cpu_percent",
        level="warning",
        from_state="ok",
        to_state="firing",
        value=90.0,
        threshold=80.0,
        started_at=T0,
        at=T0,
    )


def test_a_body_becomes_a_request() -> None:
    """ISO 8601 with Z, a naive time (UTC) and epoch seconds all become aware datetimes."""
    request = silence_request(
        {
            "matchers": {"machine": "web-*", "rule": "cpu"},
            "starts_at": "2026-05-01T12:00:00Z",
            "ends_at": 1777644000,
            "comment": "kernel upgrade",
        }
    )
    assert request == SilenceRequest(
        matchers=SilenceMatchers(machine="web-*", rule="cpu"),
        starts_at=T0,
        ends_at=datetime(2026, 5, 1, 14, 0, tzinfo=UTC),
        comment="kernel upgrade",
    )
    naive = silence_request({"matchers": {"host": "h1"}, "ends_at": "2026-05-01T13:00:00"})
    assert (naive.starts_at, naive.ends_at, naive.comment) == (None, T0 + timedelta(hours=1), "")


@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        ("no", "$", "must be an object"),
        ({"ends_at": "2026-05-01T13:00:00Z"}, "$.matchers", "is required"),
        ({"matchers": {}, "ends_at": "2026-05-01T13:00:00Z"}, "$.matchers", "at least one"),
        ({"matchers": [], "ends_at": "2026-05-01T13:00:00Z"}, "$.matchers", "must be an object"),
        (
            {"matchers": {"rack": "r1"}, "ends_at": "2026-05-01T13:00:00Z"},
            "$.matchers.rack",
            "unknown field",
        ),
        (
            {"matchers": {"machine": ""}, "ends_at": "2026-05-01T13:00:00Z"},
            "$.matchers.machine",
            "1 to 200",
        ),
        (
            {"matchers": {"machine": "x" * 201}, "ends_at": "2026-05-01T13:00:00Z"},
            "$.matchers.machine",
            "1 to 200",
        ),
        (
            {"matchers": {"machine": 3}, "ends_at": "2026-05-01T13:00:00Z"},
            "$.matchers.machine",
            "must be a string",
        ),
        ({"matchers": {"host": "h"}}, "$.ends_at", "is required"),
        ({"matchers": {"host": "h"}, "ends_at": "soon"}, "$.ends_at", "ISO 8601"),
        ({"matchers": {"host": "h"}, "ends_at": True}, "$.ends_at", "ISO 8601"),
        (
            {
                "matchers": {"host": "h"},
                "starts_at": "2026-05-01T13:00:00Z",
                "ends_at": "2026-05-01T13:00:00Z",
            },
            "$.ends_at",
            "after starts_at",
        ),
        (
            {"matchers": {"host": "h"}, "ends_at": "2026-05-01T13:00:00Z", "comment": 5},
            "$.comment",
            "must be a string",
        ),
        (
            {"matchers": {"host": "h"}, "ends_at": "2026-05-01T13:00:00Z", "until": "x"},
            "$.until",
            "unknown field",
        ),
    ],
)
def test_a_bad_body_names_its_field(body: object, path: str, message: str) -> None:
    """Every invalid silence body is one ConfigError with the path of the bad field."""
    with pytest.raises(ConfigError) as info:
        silence_request(body)
    assert (info.value.path, message in info.value.message) == (path, True), info.value


SILENCE = Silence(
    id="s1",
    matchers=SilenceMatchers(machine="web-*"),
    starts_at=T0,
    ends_at=T0 + timedelta(hours=1),
    comment="",
    created_at=T0,
)


def test_matching_while_active() -> None:
    """Globs match the machine key or name, the rule id or name, the host id; only during
    [starts_at, ends_at)."""
    web = alert_event("h9:web-1", "web-1")
    db = alert_event("h9:db", "db")
    assert SILENCE.matches(web, T0) and not SILENCE.matches(db, T0)
    assert not SILENCE.matches(web, T0 - timedelta(seconds=1))
    assert not SILENCE.matches(web, T0 + timedelta(hours=1))
    by_rule = evolve(SILENCE, matchers=SilenceMatchers(rule="CPU*", host="h9"))
    assert by_rule.matches(db, T0)  # rule_name "CPU high", host h9
    assert not evolve(SILENCE, matchers=SilenceMatchers(rule="CPU*", host="h1")).matches(db, T0)


def test_stored_form_round_trips() -> None:
    """silence_to_dict leaves out matchers not given; silence_from_dict reads it back."""
    data = silence_to_dict(SILENCE)
    assert data["matchers"] == {"machine": "web-*"}
    assert data["starts_at"] == "2026-05-01T12:00:00Z"
    assert silence_from_dict(data) == SILENCE


def test_the_engine_creates_events_silenced() -> None:
    """With a silence on web-*, the engine's events for web-1 are silenced from creation;
    db-1's are not; after the silence ends web-1's next event is not silenced."""
    rules = [
        Rule(id="cpu", name="cpu", selector=Selector(kind="host"), metric="cpu_percent", warn=50.0)
    ]

    def batch(host: str, cpu: float, at: datetime) -> Batch:
        sample = HostSample(
            cpu_percent=cpu,
            load_1=0.1,
            load_5=0.1,
            load_15=0.1,
            memory_total_bytes=10,
            memory_used_bytes=5,
            memory_available_bytes=5,
            memory_percent=50.0,
        )
        return Batch(host_id=host, hostname=host, timestamp=at, host=sample)

    state = EngineState()
    fired = []
    for host in ("web-1", "db-1"):
        _, events = evaluate_batch(rules, state, batch(host, 90.0, T0), T0, [SILENCE])
        fired += events
    assert [(e.machine_key, e.to_state, e.silenced) for e in fired] == [
        ("web-1", "firing", True),
        ("db-1", "firing", False),
    ]
    later = T0 + timedelta(hours=2)
    _, events = evaluate_batch(rules, state, batch("web-1", 10.0, later), later, [SILENCE])
    assert [(e.to_state, e.silenced) for e in events] == [("resolved", False)]
