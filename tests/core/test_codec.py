"""The JSON wire codec: round trips, strict types, and error paths for untrusted input."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from srvmon_core import Batch, DecodeError
from srvmon_core.codec import (
    CONVERTER,
    batch_from_dict,
    decode_batch,
    decode_for_forwarding,
    decode_message,
    encode_batch,
    make_wire_converter,
    unstructure,
)
from srvmon_core.schema import SCHEMA_VERSION
from srvmon_core.testing import batches, make_batch, make_container_sample

pytestmark = pytest.mark.core


def _valid() -> dict[str, Any]:
    """A valid envelope as plain data, to be broken one field at a time."""
    return json.loads(encode_batch(make_batch(containers=(make_container_sample(),) * 4)))


@given(batches())
@settings(max_examples=150, deadline=None)
def test_encode_then_decode_is_identity(batch: Batch) -> None:
    """Every valid Batch survives encode -> decode unchanged (floats, zones, unicode, None)."""
    assert decode_batch(encode_batch(batch)) == batch
    assert decode_message(encode_batch(batch)) == batch
    every_field = json.dumps(unstructure(batch)).encode()  # as collectors before 2026-12-03
    assert decode_batch(every_field) == batch


def test_encoded_form_is_documented_json() -> None:
    """Timestamps are UTC ISO 8601 with Z; tuples are arrays; the version is in the envelope."""
    batch = make_batch(timestamp=datetime(2026, 3, 1, 12, 0, 5, 250000, tzinfo=UTC))
    data = json.loads(encode_batch(batch))
    assert data["schema_version"] == SCHEMA_VERSION == 1
    assert data["timestamp"] == "2026-03-01T12:00:05.250000Z"
    assert data["containers"][0]["name"] == "web"
    assert data["host"]["net"] == [
        {"interface": "eth0", "rx_bytes_per_s": 1000.0, "tx_bytes_per_s": 500.0}
    ]
    assert data == _without_null_defaults(unstructure(batch))


def _without_null_defaults(data: Any) -> Any:
    """``data`` without the ``None`` values whose default is ``None`` (at any depth), as
    docs/wire-format.md says the encoder writes; ``restart_count`` (default 0) keeps its
    ``None``."""
    if isinstance(data, list):
        return [_without_null_defaults(item) for item in data]
    if not isinstance(data, dict):
        return data
    return {
        key: _without_null_defaults(value)
        for key, value in data.items()
        if value is not None or key == "restart_count"
    }


def test_nulls_with_a_null_default_are_left_out_and_decode_back() -> None:
    """An absent figure is not written; a ``None`` that differs from its default (a restart
    count the source does not report) is written as ``null``; both decode back."""
    container = make_container_sample(
        restart_count=None, health=None, cpu_percent=None, started_at=None
    )
    batch = make_batch(containers=(container,))
    text = encode_batch(batch)
    (written,) = json.loads(text)["containers"]
    assert written["restart_count"] is None
    assert "health" not in written and "cpu_percent" not in written
    assert "exit_code" not in written and "started_at" not in written
    assert decode_batch(text) == batch
    assert len(text) < len(json.dumps(unstructure(batch), separators=(",", ":")))


def test_str_and_bytes_decode_alike() -> None:
    """The consumer hands bytes, HTTP handlers may hand str: both decode the same."""
    raw = encode_batch(make_batch())
    assert decode_batch(raw) == decode_batch(raw.decode()) == make_batch()


def test_unknown_fields_are_tolerated() -> None:
    """A newer collector may add fields at any level; an older server ignores them."""
    data = _valid()
    data["future_field"] = {"deep": [1, 2, 3]}
    data["host"]["gpu_percent"] = 50
    data["containers"][1]["oom_kills"] = 3
    assert batch_from_dict(data) == batch_from_dict(_valid())


def test_missing_schema_version_means_version_1() -> None:
    """Envelopes written before schema_version existed are read as version 1."""
    data = _valid()
    del data["schema_version"]
    assert batch_from_dict(data).schema_version == 1


def test_timestamps_with_offsets_are_normalised_to_utc() -> None:
    """+02:00 on the wire is the same instant, stored as UTC."""
    data = _valid()
    data["timestamp"] = "2026-03-01T14:00:00+02:00"
    assert batch_from_dict(data).timestamp == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert batch_from_dict(data).timestamp.tzinfo is UTC


def _set(path: list[Any], value: Any) -> dict[str, Any]:
    data = _valid()
    target: Any = data
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return data


def _delete(path: list[Any]) -> dict[str, Any]:
    data = _valid()
    target: Any = data
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return data


INVALID: list[tuple[str, dict[str, Any] | Any, str, str]] = [
    (
        "negative rate",
        _set(["containers", 3, "cpu_percent"], -3),
        "$.containers[3].cpu_percent",
        "must be a finite number >= 0, got -3.0",
    ),
    (
        "string for a number",
        _set(["host", "cpu_percent"], "12"),
        "$.host.cpu_percent",
        'must be a number, got string "12"',
    ),
    (
        "boolean for a number",
        _set(["host", "load_1"], True),
        "$.host.load_1",
        "must be a number, got true",
    ),
    (
        "fraction for an integer",
        _set(["containers", 0, "pids"], 1.5),
        "$.containers[0].pids",
        "must be an integer, got 1.5",
    ),
    (
        "integer beyond 64 bits",
        _set(["host", "memory_total_bytes"], 2**64),
        "$.host.memory_total_bytes",
        "must fit in 64 bits, got 18446744073709551616",
    ),
    (
        "huge integer for a float",
        _set(["host", "uptime_seconds"], 10**400),
        "$.host.uptime_seconds",
        "must be a finite number, got a number with 401 digits",
    ),
    (
        "missing required field",
        _delete(["host", "load_15"]),
        "$.host.load_15",
        "is required but missing",
    ),
    (
        "missing host id",
        _delete(["host_id"]),
        "$.host_id",
        "is required but missing",
    ),
    (
        "empty container name",
        _set(["containers", 2, "name"], ""),
        "$.containers[2].name",
        "must not be empty",
    ),
    (
        "naive timestamp",
        _set(["timestamp"], "2026-03-01T12:00:00"),
        "$.timestamp",
        'must carry a time zone, e.g. a trailing Z, got string "2026-03-01T12:00:00"',
    ),
    (
        "not a timestamp",
        _set(["containers", 1, "started_at"], "yesterday"),
        "$.containers[1].started_at",
        'must be an ISO 8601 timestamp, got string "yesterday"',
    ),
    (
        "number for a timestamp",
        _set(["timestamp"], 1700000000),
        "$.timestamp",
        "must be an ISO 8601 string, got 1700000000",
    ),
    (
        "object for an array",
        _set(["containers"], {"0": {}}),
        "$.containers",
        "must be an array, got an object",
    ),
    (
        "string for an array",
        _set(["host", "cpu_per_core_percent"], "12"),
        "$.host.cpu_per_core_percent",
        'must be an array, got string "12"',
    ),
    (
        "bad item inside a nested array",
        _set(["host", "net", 0, "rx_bytes_per_s"], -1),
        "$.host.net[0].rx_bytes_per_s",
        "must be a finite number >= 0, got -1.0",
    ),
    (
        "array for an object",
        _set(["host"], [1, 2]),
        "$.host",
        "must be an object, got an array",
    ),
    (
        "non-string label value",
        _set(["containers", 0, "labels", "tier"], 1),
        '$.containers[0].labels["tier"]',
        "must be a string, got 1",
    ),
    (
        "infinite float (1e400)",
        _set(["interval_seconds"], float("inf")),
        "$.interval_seconds",
        "must be a finite number, got inf",
    ),
    (
        "wrong schema_version type",
        _set(["schema_version"], "1"),
        "$.schema_version",
        'must be an integer, got string "1"',
    ),
    (
        "schema_version 0",
        _set(["schema_version"], 0),
        "$.schema_version",
        "must be >= 1, got 0",
    ),
    (
        "unknown field in not_collected",
        _set(["host", "not_collected"], ["load_1", "bogus"]),
        "$.host.not_collected",
        "names an unknown HostSample field 'bogus'",
    ),
    (
        "non-object root",
        [1, 2],
        "$",
        "the envelope must be a JSON object, got an array",
    ),
    (
        "null root",
        None,
        "$",
        "the envelope must be a JSON object, got null",
    ),
]


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [pytest.param(d, p, m, id=name) for name, d, p, m in INVALID],
)
def test_invalid_envelopes_name_the_field(data: Any, path: str, message: str) -> None:
    """Each broken field is reported with its exact path and a human message."""
    with pytest.raises(DecodeError) as info:
        batch_from_dict(data)
    assert (info.value.path, info.value.message) == (path, message)
    if data is not None and not isinstance(data, list):
        raw = json.dumps(data).replace("Infinity", "1e400")
        with pytest.raises(DecodeError) as again:
            decode_message(raw.encode())
        assert again.value.path == path


def test_newer_schema_version_is_refused_with_advice() -> None:
    """A collector newer than the server gets a message saying to upgrade, not a type error."""
    with pytest.raises(DecodeError) as info:
        batch_from_dict(_set(["schema_version"], SCHEMA_VERSION + 1))
    assert info.value.path == "$.schema_version"
    assert info.value.message == (
        "schema_version 2 is newer than this srvmon understands (up to 1); "
        "upgrade srvmon on the receiving side"
    )


RAW_INVALID: list[tuple[str, bytes, str]] = [
    ("NaN literal", b'{"host_id": "h", "x": NaN}', "not valid JSON: NaN is not a JSON number"),
    ("Infinity literal", b'{"a": -Infinity}', "not valid JSON: -Infinity is not a JSON number"),
    ("invalid UTF-8", b'{"host_id": "\xff\xfe\xfd"}', "not valid UTF-8: invalid start byte"),
    ("truncated", b'{"host_id": "h"', "not valid JSON: Expecting ',' delimiter"),
    ("empty", b"", "not valid JSON: Expecting value"),
    ("deep nesting", b"[" * 100_000 + b"]" * 100_000, "not valid JSON: nested too deeply"),
    ("too many digits", b'{"a": ' + b"9" * 5000 + b"}", "not valid JSON: Exceeds the limit"),
]


@pytest.mark.parametrize(
    ("raw", "start"), [pytest.param(r, s, id=name) for name, r, s in RAW_INVALID]
)
def test_invalid_bytes_are_decode_errors(raw: bytes, start: str) -> None:
    """Bytes that are not JSON at all fail at the root with a reason."""
    with pytest.raises(DecodeError) as info:
        decode_message(raw)
    assert info.value.path == "$"
    assert info.value.message.startswith(start)


def test_nan_in_a_field_is_refused() -> None:
    """A NaN sent as a literal never reaches a validator or the database."""
    raw = encode_batch(make_batch()).replace(b'"cpu_percent":12.5', b'"cpu_percent":NaN')
    assert b"NaN" in raw
    with pytest.raises(DecodeError, match="NaN is not a JSON number"):
        decode_batch(raw)


def test_lone_surrogate_in_a_string_is_refused() -> None:
    """Strings must be real Unicode so storage and SSE can encode them."""
    data = _set(["containers", 0, "name"], "web\ud800")
    with pytest.raises(DecodeError) as info:
        decode_batch(json.dumps(data))
    assert info.value.path == "$.containers[0].name"


def test_deeply_nested_unknown_field_does_not_crash() -> None:
    """Junk nested just under the parser's limit in an unknown field is ignored safely."""
    data = _valid()
    raw = json.dumps(data)[:-1] + ', "junk": ' + "[" * 500 + "]" * 500 + "}"
    assert decode_batch(raw) == batch_from_dict(data)


def test_decode_error_str_carries_path_and_message() -> None:
    """str(DecodeError) is what the server's error envelope and the CLI print."""
    with pytest.raises(DecodeError) as info:
        batch_from_dict(_set(["containers", 3, "cpu_percent"], -3))
    assert str(info.value) == "$.containers[3].cpu_percent: must be a finite number >= 0, got -3.0"


def test_factory_builds_independent_converters() -> None:
    """The factory returns fresh converters; the module constant is one of them."""
    first, second = make_wire_converter(), make_wire_converter(detailed_validation=True)
    assert first is not second is not CONVERTER
    assert first.structure(_valid(), Batch) == CONVERTER.structure(_valid(), Batch)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["2026-01-01T00:00:00Z", "", "eth0", "1"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "host_id",
                    "hostname",
                    "timestamp",
                    "host",
                    "containers",
                    "id",
                    "name",
                    "cpu_percent",
                    "labels",
                    "schema_version",
                    "net",
                    "load_1",
                    "hostId",
                    "timeStamp",
                    "type",
                    "cpuUsagePercent",
                    "memoryUsedBytes",
                    "networkDelta",
                ]
            )
            | st.text(max_size=5),
            children,
            max_size=6,
        )
    ),
    max_leaves=30,
)


@given(json_values)
@settings(max_examples=400, deadline=None)
def test_arbitrary_json_values_decode_or_raise_decode_error(value: Any) -> None:
    """Any JSON-ish value gives a Batch or a DecodeError with a $-rooted path, never else."""
    try:
        result = batch_from_dict(value)
    except DecodeError as exc:
        assert exc.path.startswith("$")
        assert exc.message
    else:
        assert isinstance(result, Batch)


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=8))
@settings(max_examples=300, deadline=None)
def test_arbitrary_objects_with_valid_keys_decode_or_raise(extra: dict[str, Any]) -> None:
    """A valid envelope with arbitrary fields mixed in decodes or fails with DecodeError."""
    data = {**_valid(), **extra}
    try:
        result = decode_message(json.dumps(data, allow_nan=True))
    except DecodeError as exc:
        assert exc.path.startswith("$")
    else:
        assert isinstance(result, Batch)


@given(st.binary(max_size=200))
@settings(max_examples=300, deadline=None)
def test_arbitrary_bytes_decode_or_raise_decode_error(raw: bytes) -> None:
    """Random bytes from the network never raise anything but DecodeError."""
    try:
        result = decode_message(raw)
    except DecodeError as exc:
        assert exc.path.startswith("$")
    else:
        assert isinstance(result, Batch)


@given(st.binary(max_size=40), st.integers(min_value=0, max_value=400))
@settings(max_examples=300, deadline=None)
def test_corrupted_valid_messages_decode_or_raise(junk: bytes, at: int) -> None:
    """A valid message with bytes spliced in decodes or fails with DecodeError only."""
    raw = encode_batch(make_batch())
    at = min(at, len(raw))
    try:
        result = decode_message(raw[:at] + junk + raw[at + len(junk) :])
    except DecodeError as exc:
        assert exc.path.startswith("$")
    else:
        assert isinstance(result, Batch)


def test_forwarding_sends_a_utf8_envelope_on_as_it_came() -> None:
    """A valid srvmon envelope is posted as its own bytes (not re-encoded), even when it
    is spaced out and carries fields this version does not know; it decodes the same."""
    data = _valid()
    data["from_a_newer_agent"] = {"x": [1, 2]}
    raw = json.dumps(data, indent=2, ensure_ascii=False).encode()
    batch, envelope = decode_for_forwarding(raw)
    assert envelope == raw
    assert batch == decode_message(raw) == decode_message(envelope)
    assert len(batch.containers) == 4


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-32", "utf-8-sig"])
def test_forwarding_re_encodes_an_envelope_in_another_encoding(codec: str) -> None:
    """JSON in UTF-16/32 or with a byte-order mark decodes, but is posted re-encoded as
    UTF-8 (its bytes could not be spliced into a UTF-8 request body)."""
    batch = make_batch(containers=(make_container_sample(),))
    raw = encode_batch(batch).decode().encode(codec)
    decoded, envelope = decode_for_forwarding(raw)
    assert decoded == batch
    assert envelope == encode_batch(batch)
    assert envelope != raw


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"host_id": 3}', "must be a string"),
        (b"\xff\xfe\xfd", "not valid"),
    ],
)
def test_forwarding_refuses_what_decode_message_refuses(raw: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message) as forwarded:
        decode_for_forwarding(raw)
    with pytest.raises(DecodeError) as decoded:
        decode_message(raw)
    assert (forwarded.value.message, forwarded.value.path) == (
        decoded.value.message,
        decoded.value.path,
    )
