"""/metrics writes the machine families itself (``MachineCollector.render``); the reference
is prometheus_client's ``generate_latest`` of the same collector's ``collect``, which must
come out byte for byte the same, whatever the labels, values and freshness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.exposition import generate_latest

from srvmon_core.metrics import METRICS
from srvmon_server.latest import LatestView
from srvmon_server.prometheus import (
    LAST_SEEN,
    UP,
    MachineCollector,
    Scrape,
    ServerCollector,
    registry,
)
from srvmon_server.storage import MachineRecord

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
SILENT_AFTER, STALE_AFTER = 30.0, 300.0


def record(
    kind: str,
    host_id: str,
    hostname: str,
    name: str,
    metrics: dict[str, float],
    *,
    quiet_seconds: float = 1.0,
) -> MachineRecord:
    key = host_id if kind == "host" else f"{host_id}:{name}"
    heard = NOW - timedelta(seconds=quiet_seconds)
    return MachineRecord(
        key=key,
        kind=kind,  # type: ignore[arg-type]
        host_id=host_id,
        hostname=hostname,
        name=name,
        image=None,
        labels={},
        state=None,
        health=None,
        restart_count=None,
        first_seen=heard,
        last_seen=heard,
        last_received=heard,
        metrics=metrics,
    )


def collector(records: list[MachineRecord]) -> MachineCollector:
    latest = LatestView()
    latest.load(records)
    return MachineCollector(
        latest, lambda: NOW, silent_after_seconds=SILENT_AFTER, stale_after_seconds=STALE_AFTER
    )


def reference(machines: MachineCollector) -> bytes:
    return generate_latest(registry(machines))


HOST_METRICS = sorted(m.name for m in METRICS if m.kind == "host")
CONTAINER_METRICS = sorted(m.name for m in METRICS if m.kind == "container")


def test_odd_labels_every_metric_and_every_freshness_match_generate_latest() -> None:
    """Quotes, backslashes, a newline and non-ASCII in label values; every flat metric of
    both kinds (a counter among them); a metric this server does not know; a fresh, a
    silent and a stale machine. The text is prometheus_client's, and it says what it
    should: up 1 / 0 / 0, and no values for the stale machine."""
    every_host = {name: 1.5 + i for i, name in enumerate(HOST_METRICS)}
    every_container = {name: 2e9 + i for i, name in enumerate(CONTAINER_METRICS)}
    records = [
        record("host", "h1", 'rack "A"\\1', "", {**every_host, "from_the_future": 1.0}),
        record("container", "h1", 'rack "A"\\1', "web\nnext", every_container),
        record("container", "h1", 'rack "A"\\1', "größe", {"cpu_percent": 250.0}, quiet_seconds=45),
        record("host", "h2", "h2.example", "h2.example", {"cpu_percent": 99.0}, quiet_seconds=400),
    ]
    machines = collector(records)
    text = machines.render()
    assert text == reference(machines)
    lines = text.decode().splitlines()
    rack = 'host_id="h1",hostname="rack \\"A\\"\\\\1"'  # rack \"A\"\\1, escaped
    web = f'container="web\\nnext",{rack}'
    big = f'container="größe",{rack}'
    assert f'{UP}{{{web},kind="container"}} 1.0' in lines
    assert f'{UP}{{{big},kind="container"}} 0.0' in lines
    assert f'{UP}{{host_id="h2",hostname="h2.example",kind="host"}} 0.0' in lines
    assert CONTAINER_METRICS.index("restart_count") == 9
    assert f"srvmon_container_restarts_total{{{web}}} 2.000000009e+09" in lines  # Go's form
    assert f"srvmon_container_cpu_ratio{{{big}}} 2.5" in lines
    stale = [x for x in lines if 'host_id="h2"' in x and not x.startswith((UP, LAST_SEEN))]
    assert stale == []
    assert "from_the_future" not in text.decode()
    assert sum(line.startswith("# TYPE ") for line in lines) == len(
        {line.split(" ")[2] for line in lines if line.startswith("# TYPE ")}
    )


def test_an_empty_fleet_has_the_two_headers_only() -> None:
    machines = collector([])
    assert machines.render() == reference(machines)
    assert machines.render().decode().count("# TYPE") == 2


def test_a_renamed_host_is_written_with_its_new_name() -> None:
    """Label texts are kept per machine; a new hostname is a new label set."""
    latest = LatestView()
    latest.load([record("host", "h1", "old.example", "old.example", {"load_1": 1.0})])
    machines = MachineCollector(
        latest, lambda: NOW, silent_after_seconds=SILENT_AFTER, stale_after_seconds=STALE_AFTER
    )
    machines.render()
    latest.load([record("host", "h1", "new.example", "new.example", {"load_1": 2.0})])
    text = machines.render().decode()
    assert 'srvmon_host_load_1{host_id="h1",hostname="new.example"} 2.0' in text.splitlines()
    assert "old.example" not in text
    assert machines.render() == reference(machines)


def test_the_scrape_is_the_machine_families_then_the_rest() -> None:
    """What /metrics serves equals ``generate_latest`` of every collector, machines first
    (the order the server registered them in before the machine families were its own)."""
    machines = collector([record("host", "h1", "h1", "h1", {"cpu_percent": 5.0})])
    own = ServerCollector(lambda: {"ingest_batches_total": 7.0, "sse_clients": 2.0})
    scrape = Scrape(machines, registry(own))
    assert scrape.body() == generate_latest(registry(machines, own))


names = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
values = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["host", "container"]),
            names,
            names,
            st.dictionaries(st.sampled_from(HOST_METRICS + CONTAINER_METRICS), values),
            st.floats(min_value=0.0, max_value=1_000.0),
        ),
        max_size=8,
    )
)
def test_any_fleet_matches_generate_latest(
    machines: list[tuple[str, str, str, dict[str, float], float]],
) -> None:
    records = [
        record(kind, f"h{i}", hostname, name, metrics, quiet_seconds=quiet)
        for i, (kind, hostname, name, metrics, quiet) in enumerate(machines)
    ]
    source = collector(records)
    assert source.render() == reference(source)
