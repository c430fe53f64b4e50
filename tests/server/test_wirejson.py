"""orjson on the server's hot paths changes speed, never results.

Bodies are written as senders write them (plain JSON text, JSON as a Java library or a
hand-written script produces it), not by srvmon's encoder; each outcome is compared with
what the standard library's parse (``srvmon_core.codec.parse_json``) gives.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from srvmon_cli.replica import message_decoder
from srvmon_core import codec
from srvmon_core.codec import decode_for_forwarding
from srvmon_core.errors import DecodeError
from srvmon_server import wirejson
from srvmon_server.ingest import decode_message, decode_request
from srvmon_server.legacy.config import LegacyConfig

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


def _same(a: Any, b: Any) -> bool:
    """Equal, and floats equal bit for bit (-0.0 is not 0.0)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.copysign(1.0, a) == math.copysign(1.0, b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@given(json_values, st.booleans())
def test_parse_equals_the_standard_library(value: Any, ascii_only: bool) -> None:
    """Whatever orjson accepts, it reads as the standard library does."""
    text = json.dumps(value, ensure_ascii=ascii_only).encode()
    parsed = wirejson.parse(text)
    if parsed is not wirejson.REFUSED:
        assert _same(parsed, json.loads(text))


@pytest.mark.parametrize(
    "body",
    [
        b'{"cpu": NaN}',  # a Java document's non-finite double
        b'{"name": "\\ud800"}',  # a lone surrogate escape
        b'\xef\xbb\xbf{"a": 1}',  # a UTF-8 byte order mark
        b'{"a": 1e400}',
        b'{"a": "\xff"}',
        b"",
    ],
)
def test_what_orjson_refuses_goes_to_the_standard_library(body: bytes) -> None:
    assert wirejson.parse(body) is wirejson.REFUSED


def _outcome(body: bytes) -> Any:
    """The decoded batches, with each error as its (message, field path)."""
    try:
        decoded = decode_request(body)
    except DecodeError as exc:
        return (exc.message, exc.path)
    if isinstance(decoded, list):
        return [(d.message, d.path) if isinstance(d, DecodeError) else d for d in decoded]
    return decoded


def _envelope(**container: Any) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "host_id": "web-01",
        "hostname": "web-01.example",
        "timestamp": "2026-11-25T10:00:00Z",
        "host": {
            "cpu_percent": 12.5,
            "load_1": 0.5,
            "load_5": 0.25,
            "load_15": 0.125,
            "memory_total_bytes": 8_000_000_000,
            "memory_used_bytes": 2_000_000_000,
            "memory_available_bytes": 6_000_000_000,
            "memory_percent": 25.0,
        },
        "containers": [{"id": "c0ffee", "name": "api", **container}],
    }


BIG = 2**64  # orjson reads this as a float; the standard library as an int


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(_envelope(cpu_percent=3.25)).encode(),
        json.dumps({"batches": [_envelope(), _envelope(pids=-1), _envelope()]}).encode(),
        json.dumps(_envelope(pids=BIG)).encode(),  # int field: refused either way, same text
        json.dumps(_envelope(memory_working_set_bytes=BIG)).encode(),
        json.dumps(_envelope(cpu_percent=BIG)).encode(),  # float field: the same float
        json.dumps({"batches": [_envelope(pids=BIG)]}).encode(),
        json.dumps(_envelope(image="caf\u00e9"), ensure_ascii=False).encode(),
        b'{"host_id": "x", "cpu_percent": NaN}',  # not JSON for orjson; the stdlib explains
        b'{"batches": []}',
        b'{"batches": [1], "more": 2}',
        b"[" * 1010 + b"]" * 1010,  # deeper than the standard library goes
        b"{",
    ],
)
def test_decode_request_gives_the_standard_librarys_outcome(
    body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Results and errors (message and field path) are those of the stdlib parse."""
    fast = _outcome(body)
    monkeypatch.setattr(wirejson, "parse", lambda _body: wirejson.REFUSED)
    assert fast == _outcome(body)


@given(json_values)
def test_dumps_reads_back_and_stays_ascii(value: Any) -> None:
    if not isinstance(value, dict):
        value = {"v": value}
    if any(isinstance(v, int) and not -(2**63) <= v < 2**64 for v in _leaves(value)):
        return
    text = wirejson.dumps(value)
    assert text.isascii()
    assert _same(json.loads(text), value)


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


JAVA_DOCUMENT = json.dumps(  # as the Java collector writes one (docs/legacy.md)
    {
        "type": "host",
        "hostId": "java-7",
        "name": "java-7",
        "timeStamp": "2026-01-15T12:00:05",
        "cpuUsagePercent": 12.5,
        "memoryUsedBytes": 1024,
        "containers": {"a1b2": {"name": "web", "cpuUsagePercent": 3.0}},
    }
).encode()


def _message_outcome(data: bytes, **legacy: Any) -> Any:
    try:
        return decode_message(data, **legacy)
    except DecodeError as exc:
        return (exc.message, exc.path)


@pytest.mark.parametrize(
    "data",
    [
        json.dumps(_envelope(cpu_percent=3.25)).encode(),
        json.dumps(_envelope(pids=BIG)).encode(),
        json.dumps(_envelope(cpu_percent=BIG)).encode(),
        json.dumps(_envelope(image="caf\u00e9"), ensure_ascii=False).encode(),
        json.dumps(_envelope()).encode("utf-16"),  # another encoding: encoded anew
        json.dumps({"batches": [_envelope()]}).encode(),  # not a message
        JAVA_DOCUMENT,
        JAVA_DOCUMENT.replace(b"12.5", b"NaN"),
        b'{"host_id": 5}',
        b"not json",
    ],
)
def test_decode_message_gives_decode_for_forwardings_outcome(
    data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica's relay decodes each message as the consumer's does: the same batch, the
    same bytes to post, the same error (message and field path)."""
    berlin = {"legacy_tz": ZoneInfo("Europe/Berlin"), "legacy_interval_seconds": 5.0}
    fast = _message_outcome(data, **berlin)
    try:
        slow: Any = decode_for_forwarding(data, **berlin)
    except DecodeError as exc:
        slow = (exc.message, exc.path)
    assert fast == slow
    monkeypatch.setattr(wirejson, "parse", lambda _body: wirejson.REFUSED)
    assert _message_outcome(data, **berlin) == slow


def test_decode_message_reads_an_envelope_without_the_standard_librarys_parse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = json.dumps(_envelope(cpu_percent=3.25)).encode()

    def refuse(_data: bytes) -> None:
        raise AssertionError("the standard library's parse was used")

    monkeypatch.setattr(codec, "parse_json", refuse)
    batch, body = decode_message(data)
    assert (batch.host_id, batch.containers[0].cpu_percent, body) == ("web-01", 3.25, data)


def test_a_replica_reads_java_documents_in_the_servers_zone() -> None:
    """``--legacy-tz Europe/Berlin``: a January local 12:00:05 is 11:00:05 UTC, as the
    server's HTTP ingest and the consumer read it."""
    decode = message_decoder(LegacyConfig(tz=ZoneInfo("Europe/Berlin"), interval_seconds=5.0))
    batch, body = decode(JAVA_DOCUMENT)
    assert batch.timestamp == datetime(2026, 1, 15, 11, 0, 5, tzinfo=UTC)
    assert json.loads(body)["timestamp"] == "2026-01-15T11:00:05Z"


@given(json_values)
def test_dumps_utf8_reads_back_as_the_value(value: Any) -> None:
    """The events topic's encoding: what orjson cannot write, the standard library does."""
    assert _same(json.loads(wirejson.dumps_utf8(value)), value)


def test_dumps_utf8_writes_what_orjson_refuses_with_the_standard_library() -> None:
    value = {"big": 2**70, "nested": {1: "int key"}, "text": "caf\u00e9"}
    assert json.loads(wirejson.dumps_utf8(value)) == {
        "big": 2**70,
        "nested": {"1": "int key"},
        "text": "caf\u00e9",
    }
