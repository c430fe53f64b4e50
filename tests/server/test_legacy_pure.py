"""The legacy package's pure parts, table-driven: Java formats, limits ⟷ rules, alert
messages, the compact document, the bounded fan-out and the options."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import click
import pytest

from srvmon_core.alert_state import AlertEvent
from srvmon_core.defaults import DEFAULT_RULES
from srvmon_core.legacy import LEGACY_NOT_COLLECTED
from srvmon_core.rules import Rule, Selector
from srvmon_core.schema import Batch, ContainerSample, HostSample, NetIO
from srvmon_server.legacy.compact import compact_document
from srvmon_server.legacy.config import LegacyConfig, parse_networks, parse_zone
from srvmon_server.legacy.java import java_double, local_time
from srvmon_server.legacy.live import Fanout, sse_frame
from srvmon_server.legacy.messages import Machine, alert_message, message_type
from srvmon_server.legacy.options import legacy_config
from srvmon_server.legacy.thresholds import (
    FIELDS,
    InvalidLimits,
    apply_limits,
    conflicts,
    limits,
    parse_limits,
)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (85.0, "85.0"),
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (0.001, "0.001"),
        (0.0001, "1.0E-4"),
        (9_999_999.0, "9999999.0"),
        (10_000_000.0, "1.0E7"),
        (15_519_293_440.0, "1.551929344E10"),
        (6_442_450_944.5, "6.4424509445E9"),
        (123.456, "123.456"),
        (-2.5e-7, "-2.5E-7"),
        (1 / 3, "0.3333333333333333"),
    ],
)
def test_java_double_prints_like_string_value_of(value: float, text: str) -> None:
    """Java's Double.toString: plain from 1e-3 to 1e7, else d.dddE<n>, shortest digits."""
    assert java_double(value) == text


def test_local_time_is_a_zoneless_java_local_date_time() -> None:
    instant = datetime(2026, 7, 1, 10, 0, 5, 987_000, tzinfo=UTC)
    assert local_time(instant, ZoneInfo("Europe/Berlin")) == "2026-07-01T12:00:05"


def _full(value: str) -> dict[str, str]:
    return dict.fromkeys(FIELDS, value)


def test_limits_read_the_fleet_rules_and_ignore_overrides_and_disabled_ones() -> None:
    """Host rules first; a machine-specific rule is not a fleet limit; disabled is none."""
    rules = [
        *DEFAULT_RULES,
        Rule(id="one", name="one", selector=Selector(kind="host", machine="web-1"),
             metric="memory_used_bytes", warn=1.0),
        Rule(id="off", name="off", selector=Selector(kind="container"),
             metric="net_rx_bytes_per_s", warn=100.0, enabled=False),
        Rule(id="crit-only", name="c", selector=Selector(kind="any"), metric="net_tx_bytes_per_s",
             crit=200.0),
    ]  # fmt: skip
    assert limits(rules, "over", interval_seconds=2.0) == {
        "cpuPercent": "85.0",
        "memoryUsage": None,
        "diskReadDelta": None,
        "diskWriteDelta": None,
        "networkRx": None,
        "networkTx": "400.0",  # 200 bytes/s over a 2 s loop
        "temperature": "80.0",
    }


def test_under_limits_write_below_rules_and_keep_their_hysteresis_consistent() -> None:
    """A below rule's recovery sits above its warn: a new warn above the recovery moves the
    recovery with it; a crit above the new warn moves down to it."""
    existing = Rule(
        id="low-cpu", name="low", selector=Selector(kind="host"), metric="cpu_percent",
        direction="below", warn=10.0, warn_recovery=12.0, crit=5.0, crit_recovery=6.0,
    )  # fmt: skip
    posted = {**dict.fromkeys(FIELDS, 0.0), "cpuPercent": 20.0}
    stored = {r.id: r for r in apply_limits([existing], "under", posted, interval_seconds=1.0)}
    low = stored["low-cpu"]
    assert (low.warn, low.warn_recovery, low.crit, low.crit_recovery) == (20.0, 20.0, 5.0, 6.0)
    assert stored["legacy.under.container.cpu_percent"].direction == "below"
    assert len(stored) == 13  # 7 fields: 6 for both kinds, temperature for hosts


def test_a_shared_any_rule_is_written_once() -> None:
    shared = Rule(id="cpu-all", name="cpu", selector=Selector(kind="any"), metric="cpu_percent",
                  warn=50.0)  # fmt: skip
    out = apply_limits([shared], "over", dict.fromkeys(FIELDS, 70.0), interval_seconds=1.0)
    assert [r.warn for r in out if r.metric == "cpu_percent"] == [70.0]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "$"),
        ({k: "1" for k in FIELDS if k != "temperature"}, "$.temperature"),
        ({**_full("1"), "networkRx": "1,5"}, "$.networkRx"),
        ({**_full("1"), "networkRx": "Infinity"}, "$.networkRx"),
        ({**_full("1"), "networkRx": False}, "$.networkRx"),
        ({**_full("1"), "networkRx": ["1"]}, "$.networkRx"),
    ],
)
def test_parse_limits_names_the_bad_field(body: object, field: str) -> None:
    with pytest.raises(InvalidLimits) as info:
        parse_limits(body)
    assert info.value.path == field


def test_parse_limits_takes_strings_and_numbers() -> None:
    assert parse_limits({**_full(" 7.5 "), "cpuPercent": 90}) == {**dict.fromkeys(FIELDS, 7.5),
                                                                  "cpuPercent": 90.0}  # fmt: skip


def test_conflicts_compare_with_the_other_side() -> None:
    under = {**dict.fromkeys(FIELDS, None), "cpuPercent": "10.0", "temperature": "20.0"}
    posted = {**dict.fromkeys(FIELDS, 50.0), "cpuPercent": 10.0, "temperature": 19.0}
    assert conflicts("over", posted, under) == ["temperature"]  # equal is allowed
    over = {**dict.fromkeys(FIELDS, None), "memoryUsage": "100.0"}
    assert conflicts("under", {**posted, "memoryUsage": 101.0}, over) == ["memoryUsage"]


def _event(**changes: Any) -> AlertEvent:
    """A firing event of a host's network threshold, as the engine types it."""
    fields: dict[str, Any] = {
        "fingerprint": "f", "kind": "firing", "rule_id": "r", "rule_name": "r",
        "machine_key": "h1", "machine_kind": "host", "machine_name": "web-1", "host_id": "h1",
        "metric": "net_rx_bytes_per_s", "level": "warning", "from_state": "pending",
        "to_state": "firing", "value": 1500.0, "threshold": 1000.0, "started_at": None,
        "at": datetime(2026, 1, 15, 11, 0, tzinfo=UTC),
    }  # fmt: skip
    fields.update(changes)
    return AlertEvent(**fields)


def _rule(kind: str, direction: str = "above") -> Rule:
    if kind == "threshold":
        return Rule(id="r", name="r", metric="cpu_percent", direction=direction, warn=1.0)  # type: ignore[arg-type]
    extra = {"silent_seconds": 30.0} if kind == "silent" else {}
    return Rule(id="r", name="r", kind=kind, **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("event", "rule", "expected"),
    [
        (_event(), _rule("threshold"), "thresholdExceeded"),
        (_event(kind="escalated"), _rule("threshold", "below"), "thresholdDeceeded"),
        (_event(kind="repeat"), _rule("silent"), "timeout"),
        (_event(kind="deescalated"), _rule("container_restarted"), "containerIdChanged"),
        (_event(), _rule("container_stopped"), "zerovalue"),
        (_event(), _rule("container_unhealthy"), None),
        (_event(kind="pending"), _rule("threshold"), None),
        (_event(kind="resolved"), _rule("threshold"), None),
        (_event(kind="cancelled"), _rule("silent"), None),
        (_event(kind="unsilenced"), _rule("threshold"), "thresholdExceeded"),  # fires again
        (
            _event(kind="unsilenced", from_state="pending", to_state="pending"),
            _rule("threshold"),
            None,
        ),
        (_event(kind="silenced", silenced=True), _rule("threshold"), None),
        (_event(value=10.0), None, "thresholdDeceeded"),  # rule deleted: value vs threshold
        (_event(metric=None), None, "timeout"),
        (_event(metric=None, machine_kind="container"), None, None),
    ],
)
def test_message_types(event: AlertEvent, rule: Rule | None, expected: str | None) -> None:
    assert message_type(event, rule) == expected


def test_threshold_message_turns_rates_back_into_per_loop_deltas() -> None:
    message = alert_message(
        _event(), "thresholdExceeded", Machine(id="h1", host_name="web-1"),
        ZoneInfo("Europe/Berlin"), interval_seconds=5.0,
    )  # fmt: skip
    assert message == {
        "messageType": "thresholdExceeded",
        "machineId": "h1",
        "machineName": "web-1",
        "metricName": "networkRx",
        "threshold": "5000.0",
        "value": "7500.0",
        "timestamp": "2026-01-15T12:00:00",
    }
    assert sse_frame(message).startswith(b'data: {"messageType":"thresholdExceeded"')
    assert sse_frame(message).endswith(b"}\n\n")


def test_the_compact_document_leaves_out_what_srvmon_does_not_have() -> None:
    """not_collected host figures, absent rates and stopped containers are left out."""
    host = HostSample(
        cpu_percent=5.0, load_1=0.0, load_5=0.0, load_15=0.0, memory_total_bytes=0,
        memory_used_bytes=100, memory_available_bytes=0, memory_percent=0.0,
        net=(NetIO(interface="eth0", rx_bytes_per_s=2.5),), not_collected=LEGACY_NOT_COLLECTED,
    )  # fmt: skip
    batch = Batch(
        host_id="h", hostname="web", timestamp=datetime(2026, 1, 1, tzinfo=UTC),
        interval_seconds=2.0, host=host,
        containers=(
            ContainerSample(id="a1", name="api", cpu_percent=1.0, restart_count=None),
            ContainerSample(id="b2", name="gone", state="exited", exit_code=0),
        ),
    )  # fmt: skip
    assert compact_document(batch, UTC) == {
        "type": "host",
        "hostId": "h",
        "name": "web",
        "timeStamp": "2026-01-01T00:00:00",
        "cpuUsagePercent": 5.0,
        "memoryUsedBytes": 100,
        "networkDelta": {"eth0_0": {"rxBytesDelta": 5}},
        "temperatures": {},
        "containers": {"a1": {"name": "api", "cpuUsagePercent": 1.0, "networkDelta": {}}},
    }


def test_fanout_drops_a_client_whose_queue_is_full() -> None:
    fanout = Fanout(queue_size=2)
    woken: list[str] = []
    dropped: list[str] = []
    _, slow = fanout.subscribe(lambda: woken.append("slow"), lambda: dropped.append("slow"))
    _, quick = fanout.subscribe(lambda: woken.append("quick"), lambda: dropped.append("quick"))
    for n in range(3):
        fanout.publish(b"%d" % n)
        quick.take_all()
    assert dropped == ["slow"]
    assert (fanout.dropped, len(fanout), slow.dropped, quick.dropped) == (1, 1, True, False)
    assert woken.count("quick") == 3


@pytest.mark.parametrize(
    ("networks", "address", "allowed"),
    [
        ("127.0.0.1", "127.0.0.1", True),
        ("10.0.0.0/8 192.168.1.0/24", "192.168.1.77", True),
        ("10.0.0.0/8", "::ffff:10.1.2.3", True),  # an IPv4 client on a dual-stack socket
        ("10.0.0.0/8", "11.0.0.1", False),
        ("fd00::/8", "fd12::1", True),
        ("fd00::/8", "10.0.0.1", False),
        ("", "127.0.0.1", False),
        ("127.0.0.1", "not an address", False),
        ("127.0.0.1", None, False),
    ],
)
def test_tokenless_networks(networks: str, address: str | None, allowed: bool) -> None:
    assert LegacyConfig(tokenless_networks=networks).tokenless(address) is allowed


def test_bad_options_are_click_errors_naming_the_option() -> None:
    with pytest.raises(click.BadParameter, match="is not a CIDR network") as info:
        legacy_config(legacy_api=True, legacy_tokenless_networks="10.0.0.0/33",
                      legacy_timezone="UTC", legacy_interval_seconds=1.0)  # fmt: skip
    assert info.value.param_hint == "--legacy-tokenless-networks"
    with pytest.raises(click.BadParameter, match="unknown time zone"):
        legacy_config(legacy_api=True, legacy_tokenless_networks="",
                      legacy_timezone="Mars/Olympus", legacy_interval_seconds=1.0)  # fmt: skip
    assert parse_zone("utc") is UTC
    assert parse_networks("10.0.0.1, ::1") == parse_networks(["10.0.0.1/32", "::1/128"])


def test_a_posted_delta_reads_back_unchanged_for_any_loop() -> None:
    """limit / interval, then * interval: 15 significant digits hide the float round trip."""
    for value, interval, text in [(2048.0, 9.1, "2048.0"), (99.9, 1.3, "99.9"), (0.7, 0.3, "0.7")]:
        assert value / interval * interval != value  # the float round trip is not exact
        posted = dict.fromkeys(FIELDS, value)
        rules = apply_limits([], "over", posted, interval_seconds=interval)
        assert set(limits(rules, "over", interval_seconds=interval).values()) == {text}
