"""The generated fast path decodes exactly what the wire converter decodes, or gives up:
it changes speed, never results."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from srvmon_core.codec import CONVERTER, batch_from_dict, unstructure
from srvmon_core.errors import DecodeError
from srvmon_core.fastwire import Fallback, make_fast_structurers
from srvmon_core.schema import Batch
from srvmon_core.testing import batches, make_batch

pytestmark = pytest.mark.core

FAST = make_fast_structurers(CONVERTER)[Batch]


def converter_result(data: Any) -> Batch | None:
    try:
        return CONVERTER.structure(data, Batch)
    except Exception:
        return None


def fast_result(data: Any) -> Batch | None:
    try:
        result: Batch = FAST(data)
    except Exception:
        return None
    return result


@settings(max_examples=150, deadline=None)
@given(batches())
def test_valid_batches_decode_the_same(batch: Batch) -> None:
    """Any valid batch, unstructured: the fast path gives the batch back (or gives up on
    something unusual, such as non-ASCII text) and agrees with the converter."""
    data = unstructure(batch)
    assert converter_result(data) == batch
    fast = fast_result(data)
    assert fast is None or fast == batch
    assert batch_from_dict(data) == batch


JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
    st.just([]),
    st.just({}),
    st.just([1.5]),
    st.just({"a": 1}),
    st.just("2026-01-01T00:00:00Z"),
    st.just("2026-01-01T00:00:00"),
)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            out += _paths(value, (*prefix, index))
    return out


@settings(max_examples=400, deadline=None)
@given(batches(), st.data(), JSON_VALUES, st.booleans())
def test_broken_documents_are_never_accepted_differently(
    batch: Batch, data: st.DataObject, value: Any, delete: bool
) -> None:
    """Replace (or delete) any one value of a valid document: the fast path never accepts
    what the converter refuses, and when both accept they agree."""
    document = unstructure(batch)
    paths = _paths(document)
    path = data.draw(st.sampled_from(paths))
    broken = copy.deepcopy(document)
    parent = broken
    for step in path[:-1]:
        parent = parent[step]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    slow, fast = converter_result(broken), fast_result(broken)
    if fast is not None:
        assert slow is not None, (path, value)
        assert fast == slow


def _wide_labels(width: int) -> dict[str, str]:
    """11 labels of ``width`` characters: near the 16 KiB JSON limit of a label set."""
    return {f"k{i}": "v" * width for i in range(11)}


@pytest.mark.parametrize(
    ("change", "accepted"),
    [
        (lambda d: d["containers"][0].update(image="café"), True),  # non-ASCII: converter
        (lambda d: d["containers"][0].update(name="café"), False),  # not a Docker name
        (lambda d: d.update(host_id="coll:web"), False),  # ':' would make keys ambiguous
        (lambda d: d["containers"][0].update(state="s" * 33), False),  # wider than its column
        (lambda d: d["containers"][0].update(cpu_percent=2**70), True),  # huge int: converter
        (lambda d: d["containers"][0].update(cpu_percent=-1.0), False),
        (lambda d: d["containers"][0].update(pids=True), False),
        (lambda d: d["containers"][0].update(pids=3.0), False),
        (lambda d: d["containers"][0].update(id=""), False),
        (lambda d: d["containers"][0].pop("image"), True),  # a default
        (lambda d: d["containers"][0].pop("name"), False),
        (lambda d: d["containers"][0].update(labels={"a": 1}), False),
        (lambda d: d["containers"][0].update(labels={"com.example/tier": "web"}), True),
        (lambda d: d["containers"][0].update(labels={"": "v"}), False),
        (lambda d: d["containers"][0].update(labels={"k": "v" * 4097}), False),
        (lambda d: d["containers"][0].update(labels={f"k{i}": "v" for i in range(129)}), False),
        (lambda d: d["containers"][0].update(labels=_wide_labels(1400)), True),  # 15.6 KB
        (lambda d: d["containers"][0].update(labels=_wide_labels(1500)), False),  # 16.7 KB
        (lambda d: d["host"].update(not_collected=["load_1"]), True),
        (lambda d: d["host"].update(not_collected=["no_such_field"]), False),
        (lambda d: d.update(timestamp="2026-01-01T00:00:00"), False),
        (lambda d: d["host"]["temperatures"].append({"sensor": "x", "celsius": -5.0}), True),
        (lambda d: d.update(extra="ignored"), True),
    ],
)
def test_edge_values(change: Any, accepted: bool) -> None:
    """Unusual but valid values reach the converter and decode; invalid ones are refused
    with a DecodeError either way."""
    document = unstructure(make_batch())
    change(document)
    if accepted:
        assert batch_from_dict(document) == CONVERTER.structure(document, Batch)
    else:
        with pytest.raises(DecodeError):
            batch_from_dict(document)
        with pytest.raises((Fallback, Exception)):
            FAST(document)
