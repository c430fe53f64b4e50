"""srvmon_core.testing: the helpers users get for their own tests."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings

from srvmon_core import Batch, ContainerSample, HostSample
from srvmon_core.codec import decode_batch, encode_batch
from srvmon_core.testing import (
    DEFAULT_START,
    FakeClock,
    InMemorySink,
    batches,
    container_samples,
    host_samples,
    make_batch,
    make_container_sample,
    make_host_sample,
)

pytestmark = pytest.mark.core


def test_fake_clock_moves_only_when_told() -> None:
    """now() is stable until advance(); time() is the same instant in epoch seconds."""
    clock = FakeClock()
    assert clock.now() == DEFAULT_START == datetime(2026, 1, 1, tzinfo=UTC)
    assert clock.now() == clock.now()
    clock.advance(1.5)
    assert clock.now() == DEFAULT_START + timedelta(seconds=1.5)
    assert clock.time() == DEFAULT_START.timestamp() + 1.5


def test_fake_clock_start_and_direction() -> None:
    """A custom start must be aware, and the clock refuses to go back."""
    start = datetime(2030, 5, 6, 7, 8, 9, tzinfo=UTC)
    clock = FakeClock(start=start)
    assert clock.now() == start
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(-1)
    assert clock.now() == start
    with pytest.raises(ValueError, match="time zone"):
        FakeClock(start=datetime(2030, 1, 1))


def test_in_memory_sink_keeps_batches_in_order() -> None:
    """send() appends; clear() empties."""
    sink = InMemorySink()
    first, second = make_batch(host_id="a"), make_batch(host_id="b")
    sink.send(first)
    sink.send(second)
    assert [b.host_id for b in sink.batches] == ["a", "b"]
    assert sink.batches[0] is first
    sink.clear()
    assert sink.batches == []


def test_factories_build_valid_samples_with_overrides() -> None:
    """Factories give valid, encodable samples, and keyword overrides replace fields."""
    host = make_host_sample(cpu_percent=99.0)
    assert isinstance(host, HostSample)
    assert host.cpu_percent == 99.0
    assert host.memory_percent == 25.0
    container = make_container_sample(name="db", pids=None)
    assert isinstance(container, ContainerSample)
    assert (container.name, container.pids) == ("db", None)
    assert container.compose_project == "shop"
    batch = make_batch(containers=(container,), host=None)
    assert batch.host is None
    assert batch.containers == (container,)
    assert decode_batch(encode_batch(make_batch())) == make_batch()


def test_factories_still_validate() -> None:
    """An override that breaks an invariant fails like the real constructor."""
    with pytest.raises(ValueError, match="cpu_percent"):
        make_host_sample(cpu_percent=-1.0)
    with pytest.raises(ValueError, match="name"):
        make_container_sample(name="")


@given(host_samples(), container_samples(), batches())
@settings(max_examples=30, deadline=None)
def test_strategies_generate_schema_objects(
    host: HostSample, container: ContainerSample, batch: Batch
) -> None:
    """The shipped strategies build valid instances of each schema class."""
    assert isinstance(host, HostSample)
    assert isinstance(container, ContainerSample)
    assert isinstance(batch, Batch)
    assert batch.timestamp.utcoffset() is not None


def test_module_imports_without_hypothesis() -> None:
    """srvmon_core.testing imports and its factories work where Hypothesis is not installed."""
    code = (
        "import sys\n"
        "sys.modules['hypothesis'] = None\n"
        "import srvmon_core.testing as t\n"
        "assert t.make_batch().host_id == 'host-1'\n"
        "try:\n"
        "    t.batches()\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "srvmon_core.testing strategies need Hypothesis: pip install hypothesis"
    )
