"""The legacy Java collector document: conversion into a Batch and its error paths."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from srvmon_core import ConfigError, DecodeError, host_metrics
from srvmon_core.codec import decode_for_forwarding, decode_legacy, decode_message, encode_batch
from srvmon_core.legacy import (
    LEGACY_CONTAINER_SOURCE,
    LEGACY_NOT_COLLECTED,
    batch_from_legacy_dict,
    is_legacy_document,
)
from srvmon_core.schema import NetIO, Temperature

pytestmark = pytest.mark.core

# Shaped like what the Java collector sent from a two-container web host, 5 s loop.
JAVA_DOC: dict[str, Any] = {
    "type": "host",
    "hostId": "6f1c2e0a-rack3-u12",
    "name": "web-03",
    "timeStamp": "2024-03-01T12:00:05",
    "cpuUsagePercent": 37.5,
    "memoryUsedBytes": 6_442_450_944,
    "diskReadBytesDelta": 1_048_576,
    "diskWriteBytesDelta": 5_242_880,
    "networkDelta": {
        "eth0": {"rxBytesDelta": 2_500_000, "txBytesDelta": 500_000},
        "eth1": {"rxBytesDelta": 0, "txBytesDelta": 10},
    },
    "temperatures": {"Package id 0": 61.0, "Core 0": 58.5},
    "containers": {
        "9b3e4f0c2d1a": {
            "name": "nginx",
            "cpuUsagePercent": 12.25,
            "memoryUsedBytes": 52_428_800,
            "diskReadBytesDelta": 0,
            "diskWriteBytesDelta": 40_960,
            "networkDelta": {"eth0": {"rxBytesDelta": 1_000_000, "txBytesDelta": 4_000_000}},
        },
        "17ac55e9b0f4": {
            "name": "postgres",
            "cpuUsagePercent": 140.0,
            "memoryUsedBytes": 1_073_741_824,
            "diskReadBytesDelta": 204_800,
            "diskWriteBytesDelta": 1_024_000,
            "networkDelta": {},
        },
    },
}


def _doc(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(JAVA_DOC)
    doc.update(changes)
    return doc


def test_full_document_maps_every_field() -> None:
    """Each legacy field lands in its srvmon field; deltas are divided by the loop period."""
    batch = batch_from_legacy_dict(JAVA_DOC, interval_seconds=5.0)
    assert batch.host_id == "6f1c2e0a-rack3-u12"
    assert batch.hostname == "web-03"
    assert batch.timestamp == datetime(2024, 3, 1, 12, 0, 5, tzinfo=UTC)
    assert batch.interval_seconds == 5.0
    assert batch.agent.container_source == LEGACY_CONTAINER_SOURCE == "legacy-java"
    host = batch.host
    assert host is not None
    assert host.cpu_percent == 37.5
    assert host.memory_used_bytes == 6_442_450_944
    assert host.disk_read_bytes_per_s == 209_715.2
    assert host.disk_write_bytes_per_s == 1_048_576.0
    assert host.net == (
        NetIO(interface="eth0", rx_bytes_per_s=500_000.0, tx_bytes_per_s=100_000.0),
        NetIO(interface="eth1", rx_bytes_per_s=0.0, tx_bytes_per_s=2.0),
    )
    assert host.temperatures == (
        Temperature(sensor="Package id 0", celsius=61.0),
        Temperature(sensor="Core 0", celsius=58.5),
    )
    assert host.not_collected == LEGACY_NOT_COLLECTED
    nginx, postgres = batch.containers
    assert (nginx.id, nginx.name, nginx.state) == ("9b3e4f0c2d1a", "nginx", "running")
    assert nginx.cpu_percent == 12.25
    assert nginx.memory_working_set_bytes == 52_428_800
    assert nginx.block_read_bytes_per_s == 0.0
    assert nginx.block_write_bytes_per_s == 8_192.0
    assert (nginx.net_rx_bytes_per_s, nginx.net_tx_bytes_per_s) == (200_000.0, 800_000.0)
    assert postgres.cpu_percent == 140.0
    assert (postgres.net_rx_bytes_per_s, postgres.net_tx_bytes_per_s) == (None, None)
    assert postgres.block_write_bytes_per_s == 204_800.0


def test_figures_the_java_document_lacks_are_absent_not_zero() -> None:
    """Load, memory total/percent, swap, uptime and process count are left out, not shown 0."""
    host = batch_from_legacy_dict(JAVA_DOC).host
    assert host is not None
    flat = host_metrics(host)
    assert set(flat) == {
        "cpu_percent",
        "memory_used_bytes",
        "disk_read_bytes_per_s",
        "disk_write_bytes_per_s",
        "net_rx_bytes_per_s",
        "net_tx_bytes_per_s",
        "temperature_max_celsius",
    }
    assert flat["temperature_max_celsius"] == 61.0
    assert flat["net_rx_bytes_per_s"] == 2_500_000.0


def test_local_timestamp_uses_the_given_zone() -> None:
    """timeStamp has no zone: tz says where the Java host's clock was (DST aware)."""
    berlin = ZoneInfo("Europe/Berlin")
    winter = batch_from_legacy_dict(JAVA_DOC, tz=berlin)
    assert winter.timestamp == datetime(2024, 3, 1, 11, 0, 5, tzinfo=UTC)
    summer = batch_from_legacy_dict(_doc(timeStamp="2024-07-01T12:00:05"), tz=berlin)
    assert summer.timestamp == datetime(2024, 7, 1, 10, 0, 5, tzinfo=UTC)
    fixed = batch_from_legacy_dict(JAVA_DOC, tz=timezone(timedelta(hours=-5)))
    assert fixed.timestamp == datetime(2024, 3, 1, 17, 0, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-01T12:00", datetime(2024, 3, 1, 12, 0, tzinfo=UTC)),
        ("2024-03-01T12:00:05.123", datetime(2024, 3, 1, 12, 0, 5, 123000, tzinfo=UTC)),
        ("2024-03-01T12:00:05.123456789", datetime(2024, 3, 1, 12, 0, 5, 123456, tzinfo=UTC)),
        ("2024-03-01T12:00:05+01:00", datetime(2024, 3, 1, 11, 0, 5, tzinfo=UTC)),
    ],
)
def test_java_local_date_time_spellings(text: str, expected: datetime) -> None:
    """Java's LocalDateTime.toString drops zero seconds and prints nanoseconds; an offset wins."""
    assert batch_from_legacy_dict(_doc(timeStamp=text)).timestamp == expected


def test_negative_delta_is_a_counter_reset_and_absent() -> None:
    """A negative per-loop delta means the Java counter reset: no rate, never negative."""
    batch = batch_from_legacy_dict(_doc(diskReadBytesDelta=-4096))
    assert batch.host is not None
    assert batch.host.disk_read_bytes_per_s is None
    assert batch.host.disk_write_bytes_per_s == 5_242_880.0


def test_minimal_document() -> None:
    """Only type, hostId, name, timeStamp, cpuUsagePercent and memoryUsedBytes are required."""
    doc = {k: JAVA_DOC[k] for k in ("type", "hostId", "name", "timeStamp")}
    doc |= {"cpuUsagePercent": 0, "memoryUsedBytes": 0}
    batch = batch_from_legacy_dict(doc)
    assert batch.containers == ()
    assert batch.host is not None
    assert batch.host.net == ()
    assert batch.host.disk_read_bytes_per_s is None


def test_decode_message_detects_legacy_and_srvmon() -> None:
    """decode_message tells the two formats apart by hostId vs host_id."""
    legacy = decode_message(json.dumps(JAVA_DOC).encode(), legacy_interval_seconds=5.0)
    assert legacy == batch_from_legacy_dict(JAVA_DOC, interval_seconds=5.0)
    assert decode_message(encode_batch(legacy)) == legacy
    assert decode_legacy(json.dumps(JAVA_DOC)) == batch_from_legacy_dict(JAVA_DOC)
    assert is_legacy_document(JAVA_DOC)
    assert not is_legacy_document({"host_id": "h", "hostId": "h"})
    assert not is_legacy_document([JAVA_DOC])


WHOLE = "a whole number of bytes (an integer, or a double such as 4096.0 or 1.551929344E10)"


def _without(key: str) -> dict[str, Any]:
    doc = _doc()
    del doc[key]
    return doc


def _container_change(**changes: Any) -> dict[str, Any]:
    doc = _doc()
    doc["containers"]["17ac55e9b0f4"].update(changes)
    return doc


INVALID: list[tuple[str, Any, str, str]] = [
    ("missing hostId uses srvmon path", _without("hostId"), "$.host_id", "is required but missing"),
    ("missing name", _without("name"), "$.name", "is required but missing"),
    ("missing type", _without("type"), "$.type", "is required but missing"),
    ("missing timeStamp", _without("timeStamp"), "$.timeStamp", "is required but missing"),
    ("missing cpu", _without("cpuUsagePercent"), "$.cpuUsagePercent", "is required but missing"),
    (
        "empty hostId",
        _doc(hostId=""),
        "$.hostId",
        'must be a non-empty string, got string ""',
    ),
    (
        "epoch millis timestamp",
        _doc(timeStamp=1709294405000),
        "$.timeStamp",
        "must be a non-empty string, got 1709294405000",
    ),
    (
        "garbled timestamp",
        _doc(timeStamp="01.03.2024 12:00"),
        "$.timeStamp",
        'must be an ISO 8601 local time like 2024-03-01T12:00:05, got string "01.03.2024 12:00"',
    ),
    (
        "negative cpu",
        _doc(cpuUsagePercent=-1.5),
        "$.cpuUsagePercent",
        "must be a finite number >= 0, got -1.5",
    ),
    (
        "string memory",
        _doc(memoryUsedBytes="6GB"),
        "$.memoryUsedBytes",
        f'must be {WHOLE}, got string "6GB"',
    ),
    (
        "fractional memory",
        _doc(memoryUsedBytes=1.5),
        "$.memoryUsedBytes",
        f"must be {WHOLE}, got 1.5",
    ),
    (
        "boolean delta",
        _doc(diskWriteBytesDelta=True),
        "$.diskWriteBytesDelta",
        f"must be {WHOLE}, got true",
    ),
    (
        "network not an object",
        _doc(networkDelta=[1]),
        "$.networkDelta",
        "must be an object, got an array",
    ),
    (
        "bad interface delta",
        _doc(networkDelta={"eth0": {"rxBytesDelta": "x"}}),
        '$.networkDelta["eth0"].rxBytesDelta',
        f'must be {WHOLE}, got string "x"',
    ),
    (
        "bad temperature",
        _doc(temperatures={"Core 0": None}),
        '$.temperatures["Core 0"]',
        "must be a finite number, got null",
    ),
    (
        "huge temperature",
        _doc(temperatures={"Core 0": 10**400}),
        '$.temperatures["Core 0"]',
        "must be a finite number, got a number with 401 digits",
    ),
    (
        "container not an object",
        _doc(containers={"abc": "nginx"}),
        '$.containers["abc"]',
        'must be an object, got string "nginx"',
    ),
    (
        "container without name",
        _container_change(name=None),
        '$.containers["17ac55e9b0f4"].name',
        "must be a non-empty string, got null",
    ),
    (
        "container negative cpu",
        _container_change(cpuUsagePercent=-3),
        '$.containers["17ac55e9b0f4"].cpuUsagePercent',
        "must be a finite number >= 0, got -3",
    ),
    (
        "container memory too big",
        _container_change(memoryUsedBytes=2**64),
        '$.containers["17ac55e9b0f4"].memoryUsedBytes',
        "must fit in 64 bits, got 18446744073709551616",
    ),
    (
        "container net entry not an object",
        _container_change(networkDelta={"eth0": 5}),
        '$.containers["17ac55e9b0f4"].networkDelta["eth0"]',
        "must be an object, got 5",
    ),
    (
        "empty container id",
        _doc(containers={"": {"name": "x"}}),
        '$.containers[""]',
        "container id must not be empty",
    ),
]


@pytest.mark.parametrize(
    ("doc", "path", "message"),
    [pytest.param(d, p, m, id=name) for name, d, p, m in INVALID],
)
def test_malformed_legacy_documents_name_the_field(doc: Any, path: str, message: str) -> None:
    """Every malformed legacy field is a DecodeError with its legacy path."""
    with pytest.raises(DecodeError) as info:
        decode_message(json.dumps(doc))
    assert (info.value.path, info.value.message) == (path, message)


def test_direct_legacy_decoding_of_a_non_object() -> None:
    """batch_from_legacy_dict refuses non-objects with a root path."""
    with pytest.raises(DecodeError) as info:
        batch_from_legacy_dict([JAVA_DOC])
    assert (info.value.path, info.value.message) == (
        "$",
        "a legacy document must be a JSON object, got an array",
    )


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), float("nan")])
def test_interval_must_be_positive(bad: float) -> None:
    """interval_seconds is local configuration: a bad one is a ConfigError, not a DecodeError."""
    with pytest.raises(ConfigError) as info:
        batch_from_legacy_dict(JAVA_DOC, interval_seconds=bad)
    assert info.value.path == "interval_seconds"


_json_leaf = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["2024-03-01T12:00:05", "", "eth0"])
)
_json = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
_LEGACY_SLOTS = [
    ("type",),
    ("hostId",),
    ("name",),
    ("timeStamp",),
    ("cpuUsagePercent",),
    ("memoryUsedBytes",),
    ("diskReadBytesDelta",),
    ("networkDelta",),
    ("networkDelta", "eth0"),
    ("networkDelta", "eth0", "txBytesDelta"),
    ("temperatures",),
    ("temperatures", "Core 0"),
    ("containers",),
    ("containers", "9b3e4f0c2d1a"),
    ("containers", "9b3e4f0c2d1a", "name"),
    ("containers", "9b3e4f0c2d1a", "cpuUsagePercent"),
    ("containers", "9b3e4f0c2d1a", "memoryUsedBytes"),
    ("containers", "9b3e4f0c2d1a", "networkDelta"),
    ("containers", "9b3e4f0c2d1a", "networkDelta", "eth0", "rxBytesDelta"),
]


@given(st.sampled_from(_LEGACY_SLOTS), _json)
@settings(max_examples=400, deadline=None)
def test_any_value_in_any_legacy_field_decodes_or_raises(slot: tuple[str, ...], value: Any) -> None:
    """Whatever a broken Java collector puts in a field: a Batch or a DecodeError, never else."""
    doc = _doc()
    target = doc
    for step in slot[:-1]:
        target = target[step]
    target[slot[-1]] = value
    try:
        batch = decode_message(json.dumps(doc, allow_nan=True))
    except DecodeError as exc:
        assert exc.path.startswith("$")
        assert exc.message
    else:
        assert batch.host_id
        assert decode_message(encode_batch(batch)) == batch


def test_forwarding_re_encodes_a_legacy_document_with_its_zone_and_loop() -> None:
    """The consumer's decoder turns a legacy document into a srvmon envelope to post,
    with the zone and loop period it was given (the server could not know them)."""
    raw = json.dumps(JAVA_DOC).encode()
    zone = timezone(timedelta(hours=2))
    batch, envelope = decode_for_forwarding(raw, legacy_tz=zone, legacy_interval_seconds=5.0)
    assert batch == batch_from_legacy_dict(JAVA_DOC, tz=zone, interval_seconds=5.0)
    assert envelope == encode_batch(batch)
    assert decode_message(envelope) == batch
    assert batch.timestamp == datetime(2024, 3, 1, 10, 0, 5, tzinfo=UTC)
