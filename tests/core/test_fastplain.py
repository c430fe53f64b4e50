"""The generated unstructure functions of flat classes give exactly what cattrs' own
generated functions give: same keys in the same order, same values, same types."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import attrs
import pytest
from cattrs.preconf.json import make_converter
from hypothesis import given, settings

from srvmon_core import codec, schema
from srvmon_core.codec import CONVERTER
from srvmon_core.fastplain import flat_unstructurer, is_flat
from srvmon_core.schema import Batch, ContainerSample, HostSample
from srvmon_core.testing import batches, make_container_sample

pytestmark = pytest.mark.core

REFERENCE = make_converter()
"""cattrs' own generated unstructure functions, with the wire format's datetime hook."""
REFERENCE.register_unstructure_hook(datetime, codec._unstructure_datetime)


def same(ours: Any, theirs: Any) -> None:
    """Equal, with the same key order and the same value types all the way down."""
    assert ours == theirs
    assert json.dumps(ours) == json.dumps(theirs)
    assert _types(ours) == _types(theirs)


def _types(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [type(value).__name__, *(_types(v) for v in value)]
    return type(value).__name__


@settings(max_examples=150, deadline=None)
@given(batches())
def test_every_sample_and_batch_unstructures_as_cattrs_does(batch: Batch) -> None:
    for sample in (batch.host, *batch.containers):
        same(CONVERTER.unstructure(sample), REFERENCE.unstructure(sample))
    same(CONVERTER.unstructure(batch), REFERENCE.unstructure(batch))


def test_a_container_with_every_kind_of_field_set() -> None:
    """Labels, both datetimes and nulls: the dict is a copy, datetimes are wire text."""
    started = datetime.fromisoformat("2026-12-03T10:00:00.250+01:00")
    sample = make_container_sample(
        labels={"team": "db", "tier": "1"}, started_at=started, health=None, exit_code=None
    )
    plain = CONVERTER.unstructure(sample)
    same(plain, REFERENCE.unstructure(sample))
    assert plain["started_at"] == "2026-12-03T09:00:00.250000Z"
    assert plain["finished_at"] is None
    plain["labels"]["team"] = "web"
    assert sample.labels == {"team": "db", "tier": "1"}


def test_which_schema_classes_are_flat() -> None:
    """Containers and the host's parts are; the host sample (tuples of parts) and the
    batch are left to cattrs, which calls the fast functions for their parts."""
    assert is_flat(ContainerSample)
    for part in (schema.DiskUsage, schema.DiskIO, schema.NetIO, schema.Temperature):
        assert is_flat(part)
    assert not is_flat(HostSample)
    assert not is_flat(Batch)
    assert not is_flat(dict)
    hook = CONVERTER.get_unstructure_hook(ContainerSample)
    assert hook.__code__.co_filename == "<fastplain ContainerSample>"


def test_a_class_that_is_not_flat_is_refused() -> None:
    @attrs.frozen
    class Nested:
        parts: tuple[int, ...]

    with pytest.raises(TypeError, match="Nested has a field that is not flat"):
        flat_unstructurer(Nested, str)
