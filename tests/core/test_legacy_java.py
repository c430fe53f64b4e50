"""The legacy document as the Java collector really writes it, from hand-written JSON text.

Every input here is text shaped by Java's serializers, never built by srvmon's encoder:
byte counts that went through Gson/Jackson as doubles (``1.551929344E10``, ``4096.0``),
network keys with the /proc/net/dev line index (``eth0_1``), Docker names with their
leading ``/``, and a ``LocalDateTime`` without a zone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from srvmon_core import DecodeError, container_metrics, host_metrics
from srvmon_core.codec import decode_message, encode_batch
from srvmon_core.legacy import interface_name

pytestmark = pytest.mark.core

# A 5-second loop of a host running mysql and nginx, as Jackson re-serialised it.
JAVA_TEXT = """{"type":"host","hostId":"6f1c2e0a-rack3-u12","name":"db-01",
"timeStamp":"2024-03-01T12:00:05","cpuUsagePercent":37.5,
"memoryUsedBytes":1.551929344E10,"diskReadBytesDelta":4096.0,"diskWriteBytesDelta":1.2288E4,
"networkDelta":{"lo_0":{"rxBytesDelta":9.99E8,"txBytesDelta":9.99E8},
"eth0_1":{"rxBytesDelta":2.5E6,"txBytesDelta":500000.0},
"docker0_2":{"rxBytesDelta":0.0,"txBytesDelta":-1.0E3}},
"temperatures":{"Package id 0":61.0,"Core 0":58.5},
"containers":{
"4f7c2d0e9a1b3c5d7e9f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d":{"name":"/mysql-db",
"cpuUsagePercent":140.25,"memoryUsedBytes":1.073741824E9,"diskReadBytesDelta":2.048E5,
"diskWriteBytesDelta":1024000.0,
"networkDelta":{"lo_0":{"rxBytesDelta":7.0E7,"txBytesDelta":7.0E7},
"eth0_1":{"rxBytesDelta":1.0E6,"txBytesDelta":4.0E6}}},
"9b3e4f0c2d1a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c":{"name":"/nginx",
"cpuUsagePercent":0.0,"memoryUsedBytes":5.24288E7,"diskReadBytesDelta":0.0,
"diskWriteBytesDelta":-5.0E2,"networkDelta":{}}}}"""


def test_java_text_is_stored_with_per_second_values() -> None:
    """Exponent doubles become exact integers and per-second rates; `eth0_1` is eth0;
    `/mysql-db` is mysql-db; a negative delta (counter reset) is an absent rate."""
    batch = decode_message(JAVA_TEXT, legacy_interval_seconds=5.0)
    assert batch.host_id == "6f1c2e0a-rack3-u12"
    assert batch.timestamp == datetime(2024, 3, 1, 12, 0, 5, tzinfo=UTC)
    host = batch.host
    assert host is not None
    assert host.memory_used_bytes == 15_519_293_440
    assert type(host.memory_used_bytes) is int
    assert (host.disk_read_bytes_per_s, host.disk_write_bytes_per_s) == (819.2, 2457.6)
    assert [(n.interface, n.rx_bytes_per_s, n.tx_bytes_per_s) for n in host.net] == [
        ("lo", 199_800_000.0, 199_800_000.0),
        ("eth0", 500_000.0, 100_000.0),
        ("docker0", 0.0, None),
    ]
    flat = host_metrics(host)
    assert flat == {
        "cpu_percent": 37.5,
        "memory_used_bytes": 15_519_293_440.0,
        "disk_read_bytes_per_s": 819.2,
        "disk_write_bytes_per_s": 2457.6,
        "net_rx_bytes_per_s": 500_000.0,  # loopback left out, as for srvmon's collector
        "net_tx_bytes_per_s": 100_000.0,
        "temperature_max_celsius": 61.0,
    }
    mysql, nginx = batch.containers
    assert (mysql.name, nginx.name) == ("mysql-db", "nginx")
    assert mysql.id.startswith("4f7c2d0e9a1b")
    assert container_metrics(mysql) == {
        "cpu_percent": 140.25,
        "memory_working_set_bytes": 1_073_741_824.0,
        "block_read_bytes_per_s": 40_960.0,
        "block_write_bytes_per_s": 204_800.0,
        "net_rx_bytes_per_s": 200_000.0,  # eth0 only: the container's lo is left out
        "net_tx_bytes_per_s": 800_000.0,
    }
    assert container_metrics(nginx) == {
        "cpu_percent": 0.0,
        "memory_working_set_bytes": 52_428_800.0,
        "block_read_bytes_per_s": 0.0,
    }


def test_absent_figures_stay_absent_through_the_wire() -> None:
    """No invented restart count, no 0 for load or memory percent, also after the consumer
    re-encodes the document as a srvmon envelope and the server decodes that."""
    batch = decode_message(JAVA_TEXT, legacy_interval_seconds=5.0)
    assert [c.restart_count for c in batch.containers] == [None, None]
    again = decode_message(encode_batch(batch))
    assert again == batch
    assert b'"restart_count":null' in encode_batch(batch)
    assert "restart_count" not in container_metrics(again.containers[0])
    assert again.host is not None
    assert {"load_1", "memory_percent", "swap_percent"} <= set(again.host.not_collected)
    assert "memory_percent" not in host_metrics(again.host)


def test_local_time_in_the_configured_zone() -> None:
    """The zone-less LocalDateTime is read in the configured zone (Berlin is UTC+1 in March)."""
    batch = decode_message(JAVA_TEXT, legacy_tz=ZoneInfo("Europe/Berlin"))
    assert batch.timestamp == datetime(2024, 3, 1, 11, 0, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("key", "interface"),
    [("eth0_1", "eth0"), ("lo_0", "lo"), ("br_lan_12", "br_lan"), ("eth0", "eth0"), ("_3", "_3")],
)
def test_network_keys_lose_their_line_index(key: str, interface: str) -> None:
    """`<interface>_<line index>`: only the last `_<digits>` is the index."""
    assert interface_name(key) == interface


HALF = "6442450944.5"
NON_NEGATIVE = "a finite number >= 0"
WHOLE = "a whole number of bytes (an integer, or a double such as 4096.0 or 1.551929344E10)"


def _with(field: str, literal: str) -> str:
    """JAVA_TEXT with one top-level field's value replaced by raw JSON text."""
    head, sep, rest = JAVA_TEXT.partition(f'"{field}":')
    assert sep
    _, comma, tail = rest.partition(",")
    return f"{head}{sep}{literal}{comma}{tail}"


REFUSED = [
    ("memoryUsedBytes", "6.4424509445E9", "$.memoryUsedBytes", f"must be {WHOLE}, got {HALF}"),
    ("memoryUsedBytes", "NaN", "$.memoryUsedBytes", f"must be {WHOLE}, got NaN"),
    ("memoryUsedBytes", '"NaN"', "$.memoryUsedBytes", f'must be {WHOLE}, got string "NaN"'),
    ("memoryUsedBytes", '"1024"', "$.memoryUsedBytes", f'must be {WHOLE}, got string "1024"'),
    ("memoryUsedBytes", "-1.0", "$.memoryUsedBytes", "must be a byte count >= 0, got -1.0"),
    ("memoryUsedBytes", "1.0E19", "$.memoryUsedBytes", "must fit in 64 bits, got 1e+19"),
    ("diskReadBytesDelta", "Infinity", "$.diskReadBytesDelta", f"must be {WHOLE}, got Infinity"),
    ("diskReadBytesDelta", "4096.5", "$.diskReadBytesDelta", f"must be {WHOLE}, got 4096.5"),
    ("cpuUsagePercent", "NaN", "$.cpuUsagePercent", "must be a finite number >= 0, got NaN"),
    ("cpuUsagePercent", "-Infinity", "$.cpuUsagePercent", f"must be {NON_NEGATIVE}, got -Infinity"),
    ("cpuUsagePercent", "true", "$.cpuUsagePercent", "must be a finite number >= 0, got true"),
]  # fmt: skip


@pytest.mark.parametrize(("field", "literal", "path", "message"), REFUSED)
def test_refused_with_the_field_path_and_what_was_expected(
    field: str, literal: str, path: str, message: str
) -> None:
    """A fraction, NaN, Infinity or a wrong type: DecodeError naming the legacy field."""
    with pytest.raises(DecodeError) as info:
        decode_message(_with(field, literal))
    assert (info.value.path, info.value.message) == (path, message)


def test_nan_in_a_map_names_the_key() -> None:
    with pytest.raises(DecodeError) as info:
        decode_message(JAVA_TEXT.replace('"Core 0":58.5', '"Core 0":-Infinity'))
    assert (info.value.path, info.value.message) == (
        '$.temperatures["Core 0"]',
        "must be a finite number, got -Infinity",
    )


def test_nan_and_broken_json_report_the_broken_json() -> None:
    """A NaN literal does not hide a syntax error further on."""
    with pytest.raises(DecodeError) as info:
        decode_message(JAVA_TEXT.replace('"cpuUsagePercent":37.5', '"cpuUsagePercent":NaN')[:-1])
    assert info.value.path == "$"
    assert info.value.message.startswith("not valid JSON: Expecting")


def test_nan_in_a_container_names_the_container_field() -> None:
    text = JAVA_TEXT.replace('"memoryUsedBytes":5.24288E7', '"memoryUsedBytes":NaN')
    with pytest.raises(DecodeError) as info:
        decode_message(text)
    assert info.value.path == (
        '$.containers["9b3e4f0c2d1a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c"]'
        ".memoryUsedBytes"
    )
    assert info.value.message == f"must be {WHOLE}, got NaN"


def test_a_srvmon_envelope_with_nan_is_still_refused_at_the_parser() -> None:
    """Only legacy documents keep NaN literals for a field path; envelopes are unchanged."""
    with pytest.raises(DecodeError) as info:
        decode_message('{"host_id": "h", "hostname": "h", "timestamp": NaN}')
    assert (info.value.path, info.value.message) == (
        "$",
        "not valid JSON: NaN is not a JSON number; send finite numbers only",
    )


def test_a_name_that_is_only_a_slash_is_mapped_to_a_stable_valid_name() -> None:
    """The Java system chose the name: ``/`` is not refused but mapped (container_name_for),
    the same way every time, and never to an empty name."""
    first = decode_message(JAVA_TEXT.replace('"/nginx"', '"/"'))
    again = decode_message(JAVA_TEXT.replace('"/nginx"', '"/"'))
    names = sorted(c.name for c in first.containers)
    assert names == sorted(c.name for c in again.containers)
    assert "mysql-db" in names and all(names) and "/" not in names


def test_the_example_in_docs_wire_format_decodes_as_documented() -> None:
    """docs/wire-format.md's legacy example is Java-shaped and decodes as its table says."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "wire-format.md").read_text()
    section = doc.split("## Legacy Java collector document", 1)[1]
    example = re.findall(r"```json\n(.*?)```", section, re.S)[0]
    batch = decode_message(example, legacy_interval_seconds=1.0)
    assert batch.host is not None
    assert batch.host.memory_used_bytes == 6_442_450_944
    assert [n.interface for n in batch.host.net] == ["lo", "eth0"]
    assert host_metrics(batch.host)["net_rx_bytes_per_s"] == 2_500_000.0
    (nginx,) = batch.containers
    assert (nginx.name, nginx.restart_count, nginx.memory_working_set_bytes) == (
        "nginx",
        None,
        52_428_800,
    )
