"""The machine view: one typed value per machine, computed once per batch, that storage,
SSE, /metrics and the engine all read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs
import pytest
from hypothesis import given, settings

from srvmon_core.codec import decode_legacy
from srvmon_core.engine import EngineState, evaluate_batch, evaluate_view
from srvmon_core.rules import Rule, Selector
from srvmon_core.schema import Batch, ContainerSample, HostSample
from srvmon_core.testing import batches
from srvmon_core.view import HOST_STATE, batch_view

pytestmark = pytest.mark.core

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

# A legacy Java collector document for one host (no load, memory percent, swap, uptime...).
JAVA_DOC = b"""{"type": "host", "hostId": "rack1-u07", "name": "db-01",
 "timeStamp": "2026-03-01T12:00:00", "cpuUsagePercent": 3.0, "memoryUsedBytes": 1000,
 "diskReadBytesDelta": 0, "diskWriteBytesDelta": 0, "networkDelta": {},
 "temperatures": {}, "containers": {}}"""


def host(cpu: float = 20.0) -> HostSample:
    return HostSample(
        cpu_percent=cpu,
        load_1=0.5,
        load_5=0.4,
        load_15=0.3,
        memory_total_bytes=8_000,
        memory_used_bytes=2_000,
        memory_available_bytes=6_000,
        memory_percent=25.0,
    )


def test_one_view_per_machine_in_batch_order() -> None:
    """The host first, then each container: keys, identity, state and flat metrics."""
    batch = Batch(
        host_id="h1",
        hostname="web-1",
        timestamp=T0,
        host=host(),
        containers=(
            ContainerSample(
                id="a", name="shop", labels={"tier": "front"}, cpu_percent=5.0, pids=12
            ),
            ContainerSample(id="b", name="old", state="exited", exit_code=137, restart_count=2),
        ),
    )
    view = batch_view(batch)
    assert [m.key for m in view.machines] == ["h1", "h1:shop", "h1:old"]
    assert view.sample_count == 3
    assert view.host is not None
    assert (view.host.kind, view.host.name, view.host.state) == ("host", "web-1", "running")
    assert HOST_STATE == "running"
    assert view.host.metrics["cpu_percent"] == 20.0
    assert view.host.metrics["memory_percent"] == 25.0
    assert "cpu_iowait_percent" not in view.host.metrics  # absent, not 0
    shop, old = view.containers
    assert (shop.kind, shop.name, shop.hostname, shop.labels) == (
        "container",
        "shop",
        "web-1",
        {"tier": "front"},
    )
    assert shop.metrics == {"cpu_percent": 5.0, "pids": 12.0, "restart_count": 0.0}
    assert (old.state, old.restart_count, old.metrics) == ("exited", 2, {"restart_count": 2.0})
    assert all(m.timestamp == T0 for m in view.machines)
    assert view.host.restart_count is None  # a host has no restart count, not 0


def test_a_restart_count_nobody_reported_is_absent_in_the_view() -> None:
    """A legacy Java container carries no restart count: None in the view, no flat metric."""
    batch = Batch(
        host_id="h1",
        hostname="web-1",
        timestamp=T0,
        containers=(ContainerSample(id="a", name="shop", cpu_percent=1.0, restart_count=None),),
    )
    (shop,) = batch_view(batch).containers
    assert shop.restart_count is None
    assert shop.metrics == {"cpu_percent": 1.0}


def test_a_batch_without_host_sample_views_only_containers() -> None:
    """No host reading: no host view, containers still viewed."""
    batch = Batch(
        host_id="h1",
        hostname="web-1",
        timestamp=T0,
        containers=(ContainerSample(id="a", name="shop"),),
    )
    view = batch_view(batch)
    assert view.host is None and [m.key for m in view.machines] == ["h1:shop"]


def test_legacy_placeholders_are_not_in_the_view() -> None:
    """A legacy host's not-collected fields hold 0 in the sample but are absent in the view."""
    batch = decode_legacy(JAVA_DOC)
    assert batch.host is not None and batch.host.memory_percent == 0.0  # the placeholder
    view = batch_view(batch)
    assert view.host is not None
    assert "memory_percent" not in view.host.metrics
    assert "load_1" not in view.host.metrics
    assert view.host.metrics["cpu_percent"] == 3.0


def test_engine_never_evaluates_a_metric_the_sample_does_not_carry() -> None:
    """memory_percent below 50 would fire on the legacy placeholder 0; the engine reads the
    view, where the metric is absent, so nothing fires. A carrying host fires at once."""
    rules = [
        Rule(
            id="mem-low",
            name="mem-low",
            selector=Selector(kind="host"),
            metric="memory_percent",
            direction="below",
            warn=50.0,
        )
    ]
    state = EngineState()
    legacy = decode_legacy(JAVA_DOC)
    for step in range(3):
        _, events = evaluate_batch(rules, state, legacy, T0 + timedelta(seconds=step))
        assert events == []
    assert state.alerts == {}
    carrying = Batch(host_id="h2", hostname="h2", timestamp=T0, host=host())
    _, events = evaluate_view(rules, state, batch_view(carrying), T0)
    assert [(e.machine_key, e.to_state, e.value) for e in events] == [("h2", "firing", 25.0)]


@settings(max_examples=60, deadline=None)
@given(batches())
def test_view_metrics_equal_the_flat_metric_functions(batch: Batch) -> None:
    """For any valid batch, each view's metrics are exactly the flat metrics of its sample."""
    from srvmon_core.metrics import container_metrics, host_metrics

    view = batch_view(batch)
    if batch.host is not None:
        assert view.host is not None and view.host.metrics == host_metrics(batch.host)
        for name in batch.host.not_collected:
            assert name not in view.host.metrics
    assert [c.metrics for c in view.containers] == [container_metrics(c) for c in batch.containers]


@settings(max_examples=60, deadline=None)
@given(batches())
def test_views_equal_the_ones_the_attrs_init_builds(batch: Batch) -> None:
    """Views are stored slot by slot (``view._builder``); each equals, field for field, the
    view the class's own ``__init__`` makes from the batch (a slot left unset would raise
    here, a field in the wrong place would differ)."""
    from srvmon_core.metrics import container_metrics, host_metrics
    from srvmon_core.view import MachineView

    view = batch_view(batch)
    common = {"host_id": batch.host_id, "hostname": batch.hostname, "timestamp": batch.timestamp}
    expected = [
        MachineView(
            key=f"{batch.host_id}:{c.name}",
            kind="container",
            name=c.name,
            state=c.state,
            health=c.health,
            image=c.image,
            labels=c.labels,
            restart_count=c.restart_count,
            metrics=container_metrics(c),
            sample=c,
            **common,
        )
        for c in batch.containers
    ]
    if batch.host is not None:
        host_view = MachineView(
            key=batch.host_id,
            kind="host",
            name=batch.hostname,
            state="running",
            health=None,
            image=None,
            labels={},
            restart_count=None,
            metrics=host_metrics(batch.host),
            sample=batch.host,
            **common,
        )
        expected.insert(0, host_view)
    assert list(view.machines) == expected
    for got, want in zip(view.machines, expected, strict=True):
        assert attrs.astuple(got, recurse=False) == attrs.astuple(want, recurse=False)


def test_flat_metrics_are_floats_even_for_integer_fields() -> None:
    """Counts and bytes (ints in the sample) and a float field given an int by hand all
    come out as floats; ``None`` stays out."""
    from srvmon_core.metrics import container_metrics, host_metrics

    sample = ContainerSample(id="a", name="shop", cpu_percent=5, pids=12, memory_limit_bytes=None)
    metrics = container_metrics(sample)
    assert metrics == {"cpu_percent": 5.0, "pids": 12.0, "restart_count": 0.0}
    assert {type(v) for v in metrics.values()} == {float}
    host_figures = host_metrics(host())
    assert host_figures["memory_used_bytes"] == 2_000.0
    assert {type(v) for v in host_figures.values()} == {float}


def test_the_slot_builder_refuses_a_class_that_checks_its_fields() -> None:
    """Building through the slots skips validators: a class with any is refused."""
    from srvmon_core.view import _builder

    with pytest.raises(TypeError, match="ContainerSample checks its fields"):
        _builder(ContainerSample)
