"""Machine keys cannot collide: host ids and container names are validated on the way in.

Docker allows container names matching ``[a-zA-Z0-9][a-zA-Z0-9_.-]+`` (its daemon's own
rule), so a container name never holds ``:``; a host id may not either. The part of a key
before the first ``:`` is therefore always the host id, and no host's key can equal a
container's (the collision of issue 17: host ``coll:web`` overwrote container ``web`` on
host ``coll``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from srvmon_core import DecodeError
from srvmon_core.codec import batch_from_dict, decode_message
from srvmon_core.schema import (
    CONTAINER_NAME_MAX,
    CONTAINER_NAME_PATTERN,
    HOST_ID_MAX,
    HOST_ID_PATTERN,
    KEY_MAX,
    LABEL_KEY_MAX,
    LABEL_VALUE_MAX,
    LABELS_JSON_MAX,
    LABELS_MAX,
    Batch,
    ContainerSample,
    container_key,
    container_name_for,
    container_name_problem,
    fit_labels,
    host_id_for,
    host_id_problem,
    host_key,
    labels_problem,
)

pytestmark = pytest.mark.core


def envelope(host_id: str = "coll", containers: list[dict[str, Any]] | None = None) -> dict:
    """A srvmon envelope as docs/wire-format.md spells it (plain JSON data)."""
    return {
        "schema_version": 1,
        "host_id": host_id,
        "hostname": "coll.example",
        "timestamp": "2026-11-25T10:00:00Z",
        "containers": containers or [],
    }


def container(name: str, **extra: Any) -> dict[str, Any]:
    return {"id": "c0ffee", "name": name, **extra}


@pytest.mark.parametrize(
    "host_id",
    [
        "coll",
        "0123456789abcdef0123456789abcdef",  # /etc/machine-id
        "6f1c2e0a-rack3-u12",
        "web-01.example.org",
        "rack_1",
        "a" * HOST_ID_MAX,
    ],
)
def test_valid_host_ids(host_id: str) -> None:
    """machine-ids, UUIDs, hostnames and the longest allowed id decode."""
    assert batch_from_dict(envelope(host_id)).host_id == host_id


@pytest.mark.parametrize(
    ("host_id", "reason"),
    [
        ("coll:web", "no ':'"),
        ("", "must not be empty"),
        ("a" * (HOST_ID_MAX + 1), f"at most {HOST_ID_MAX} characters"),
        ("-lead", "starting with a letter or digit"),
        ("../etc", "starting with a letter or digit"),
        ("two words", "letters, digits"),
        ("line\nbreak", "letters, digits"),
        ("sep\u2028arator", "letters, digits"),
        ("h\x00", "letters, digits"),
        ("münchen", "letters, digits"),
        ("a/b", "letters, digits"),
    ],
)
def test_invalid_host_ids_are_refused_with_their_path(host_id: str, reason: str) -> None:
    """Each bad host id is a DecodeError at ``$.host_id`` saying what is wrong."""
    with pytest.raises(DecodeError) as caught:
        batch_from_dict(envelope(host_id))
    assert caught.value.path == "$.host_id"
    assert reason in caught.value.message


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("web:1", "letters, digits"),
        ("", "must not be empty"),
        ("/web", "letters, digits"),
        ("x" * (CONTAINER_NAME_MAX + 1), f"at most {CONTAINER_NAME_MAX} characters"),
        ("new\nline", "letters, digits"),
    ],
)
def test_invalid_container_names_are_refused(name: str, reason: str) -> None:
    """Container names follow Docker's rule; the error names the container's index."""
    data = envelope(containers=[container("ok"), container(name)])
    with pytest.raises(DecodeError) as caught:
        batch_from_dict(data)
    assert caught.value.path == "$.containers[1].name"
    assert reason in caught.value.message


def test_the_collision_of_the_issue_cannot_be_built() -> None:
    """Host ``coll`` container ``web`` has the key ``coll:web``; a srvmon envelope or object
    claiming the host id ``coll:web`` is refused; a legacy Java document (whose ids srvmon
    does not choose) is mapped to a derived id that is not ``coll:web``."""
    good = batch_from_dict(envelope("coll", [container("web")]))
    assert container_key(good.host_id, good.containers[0].name) == "coll:web"
    with pytest.raises(DecodeError):
        batch_from_dict(envelope("coll:web"))
    with pytest.raises(ValueError, match="host_id"):
        Batch(host_id="coll:web", hostname="x", timestamp=good.timestamp)
    legacy = {"type": "host", "hostId": "coll:web", "name": "x", "timeStamp": "2026-01-01T00:00:00"}
    legacy |= {"cpuUsagePercent": 1.0, "memoryUsedBytes": 1}
    mapped = decode_message(json.dumps(legacy)).host_id
    assert mapped == host_id_for("coll:web") != "coll:web"
    assert mapped.startswith("coll_web--") and host_id_problem(mapped) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("6f1c2e0a-rack3-u12", "6f1c2e0a-rack3-u12"),
        ("rack 1/50%41", "rack_1_50_41--"),
        (":::", "x--"),
        ("é" * 300, "x--"),
        ("a" * 300, "a" * 114 + "--"),
    ],
)
def test_legacy_ids_map_to_stable_valid_ids(raw: str, expected: str) -> None:
    """A valid id stays itself; any other becomes a valid id (disallowed characters as
    ``_``, then ``--`` and 12 hex digits of its SHA-256), the same on every call."""
    mapped = host_id_for(raw)
    assert host_id_problem(mapped) is None and mapped == host_id_for(raw)
    if expected == raw:
        assert mapped == raw
    else:
        assert mapped.startswith(expected) and len(mapped) == len(expected) + 12
    assert host_id_for("rack 1/50%42") != host_id_for("rack 1/50%41")


def test_legacy_container_names_map_too() -> None:
    """Docker API names keep their leading ``/`` in some clients; it is dropped; any
    other invalid name is mapped like a host id."""
    doc = {"type": "host", "hostId": "h", "name": "h", "timeStamp": "2026-01-01T00:00:00"}
    doc |= {"cpuUsagePercent": 1.0, "memoryUsedBytes": 1}
    doc["containers"] = {"a1": {"name": "/web"}, "b2": {"name": "x:y"}}
    names = [c.name for c in decode_message(json.dumps(doc)).containers]
    assert names[0] == "web" == container_name_for("/web")
    assert names[1] == container_name_for("x:y") and container_name_problem(names[1]) is None


host_ids = st.from_regex(HOST_ID_PATTERN, fullmatch=True)
names = st.from_regex(CONTAINER_NAME_PATTERN, fullmatch=True)


@given(st.lists(st.tuples(host_ids, st.none() | names), min_size=2, max_size=6, unique=True))
def test_distinct_machines_have_distinct_keys(machines: list[tuple[str, str | None]]) -> None:
    """Any set of distinct (host id, container name or None for the host) gets distinct
    keys, each at most KEY_MAX characters, and the host id is what precedes the first
    ``:``."""
    keys = [host_key(h) if c is None else container_key(h, c) for h, c in machines]
    assert len(set(keys)) == len(keys)
    for (host_id, _), key in zip(machines, keys, strict=True):
        assert len(key) <= KEY_MAX == 255
        assert key.partition(":")[0] == host_id


def test_label_limits() -> None:
    """Count, key length, value length and JSON size are limited; fit_labels trims a set
    that is too large to one within every limit, keeping whole labels only."""
    assert labels_problem({"a": "b"}) is None
    too_many = {f"k{i:03}": "v" for i in range(LABELS_MAX + 1)}
    assert "at most 128 labels" in (labels_problem(too_many) or "")
    assert "keys" in (labels_problem({"": "v"}) or "")
    assert "longer than 4096" in (labels_problem({"k": "v" * 4097}) or "")
    wide = {f"key{i}": "\u00e9" * 2000 for i in range(10)}  # 12 KiB each as \\u escapes
    assert "bytes as JSON" in (labels_problem(wide) or "")
    with pytest.raises(DecodeError) as caught:
        batch_from_dict(envelope(containers=[container("web", labels=wide)]))
    assert caught.value.path == "$.containers[0].labels"
    for source in (too_many, wide, {"": "x", "k" * 300: "y", "ok": "z" * 5000, "fine": "1"}):
        fitted = fit_labels(source)
        assert labels_problem(fitted) is None
        assert all(source[k] == v for k, v in fitted.items())
        assert len(json.dumps(fitted, sort_keys=True)) <= LABELS_JSON_MAX
    assert fit_labels({"": "x", "k" * 300: "y", "ok": "z" * 5000, "fine": "1"}) == {"fine": "1"}
    assert len(fit_labels(too_many)) == LABELS_MAX
    assert list(ContainerSample(id="i", name="web", labels=fit_labels(wide)).labels) == ["key0"]


def _within_limits(labels: dict[str, str]) -> bool:
    """The label limits as docs/wire-format.md states them, checked the long way."""
    return (
        len(labels) <= LABELS_MAX
        and all(0 < len(k) <= LABEL_KEY_MAX for k in labels)
        and all(len(v) <= LABEL_VALUE_MAX for v in labels.values())
        and len(json.dumps(labels, sort_keys=True)) <= LABELS_JSON_MAX
    )


_label_text = st.one_of(
    st.integers(0, 300).map(lambda n: "k" * n),
    st.integers(3800, 4200).map(lambda n: "v" * n),
    st.integers(0, 1500).map(lambda n: "\u00e9" * n),  # 6 bytes each as a JSON escape
    st.text(max_size=20),
)


@given(
    st.dictionaries(_label_text, _label_text, max_size=12)
    | st.integers(120, 135).map(lambda n: {f"k{i:03}": "v" for i in range(n)})
)
def test_label_problem_matches_the_limits(labels: dict[str, str]) -> None:
    """labels_problem (checked in C for the common case) refuses exactly the label sets
    that break a stated limit, near every boundary."""
    assert (labels_problem(labels) is None) == _within_limits(labels)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("state", "r" * 33, "at most 32 characters"),
        ("health", "bad\r\n", "control"),
        ("image", "i" * 513, "at most 512 characters"),
        ("id", "", "must not be empty"),
    ],
)
def test_container_text_fields_fit_their_columns(field: str, value: str, reason: str) -> None:
    """Fields stored in fixed-width columns are bounded (MariaDB would refuse them)."""
    with pytest.raises(DecodeError) as caught:
        batch_from_dict(envelope(containers=[container("web", **{field: value})]))
    assert caught.value.path == f"$.containers[0].{field}"
    assert reason in caught.value.message


def test_hostname_is_bounded_printable_text() -> None:
    """A hostname may be any printable text up to 255 characters."""
    assert batch_from_dict({**envelope(), "hostname": "Web 01 (rack 3)"}).hostname
    for bad in ("h" * 256, "a\u2028b"):
        with pytest.raises(DecodeError) as caught:
            batch_from_dict({**envelope(), "hostname": bad})
        assert caught.value.path == "$.hostname"
