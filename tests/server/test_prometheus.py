"""/metrics: Prometheus names for every flat metric, machine up/last seen, staleness, and
an exposition built from memory (it survives a restart through the inventory)."""

from __future__ import annotations

import re

from srvmon_core.metrics import METRICS
from srvmon_server.prometheus import EXPOSED, OLD_NAMES, OWN_HELP
from tests.server.harness import FakeClock, RunningServer, make_batch

HOST = 'host_id="h1",hostname="h1.example"'


def samples(server: RunningServer) -> dict[str, float]:
    """``name{labels}`` → value of every sample line."""
    out = {}
    for line in server.request("GET", "/metrics").body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_every_flat_metric_has_a_conventional_prometheus_name() -> None:
    """Each flat metric is exposed once; names are unique, in base units, ``_total`` only
    on counters, no ``_count``, no abbreviated ``_per_s``; ratios are percent / 100."""
    assert set(EXPOSED) == {(m.kind, m.name) for m in METRICS}
    names = [e.name for e in EXPOSED.values()]
    assert len(set(names)) == len(names)
    for exposed in EXPOSED.values():
        assert re.fullmatch(r"srvmon_(host|container)_[a-z0-9_]+", exposed.name), exposed
        assert exposed.name.endswith("_total") == (exposed.type == "counter"), exposed
        assert not exposed.name.endswith(("_count", "_per_s", "_percent")), exposed
        assert "_percent" not in exposed.name and "_ops_" not in exposed.name, exposed
        percent = exposed.flat.endswith("_percent") or "_percent_" in exposed.flat
        assert exposed.divisor == (100.0 if percent else 1.0), exposed
        assert "None" not in exposed.help and exposed.help, exposed
    assert not [n for n in OWN_HELP if n.endswith("_count")]


def test_old_names_map_to_the_new_ones() -> None:
    """The renames the CHANGELOG lists: every hand-written name that changed."""
    assert OLD_NAMES["srvmon_host_cpu_percent"] == "srvmon_host_cpu_ratio"
    assert OLD_NAMES["srvmon_host_process_count"] == "srvmon_host_processes"
    assert OLD_NAMES["srvmon_container_restart_count"] == "srvmon_container_restarts_total"
    assert OLD_NAMES["srvmon_host_disk_read_ops_per_s"] == (
        "srvmon_host_disk_read_operations_per_second"
    )
    assert OLD_NAMES["srvmon_container_net_rx_bytes_per_s"] == (
        "srvmon_container_net_rx_bytes_per_second"
    )
    assert "srvmon_host_load_1" not in OLD_NAMES  # unchanged names are not renames
    assert len(OLD_NAMES) == 23


def test_a_silent_machine_goes_down_then_drops_its_values(start_server, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    """up is 1 while heard from within 30 s; past 30 s up is 0 and the values stay; past
    the stale time (here 120 s) the values go and only up (0) and last seen remain; a new
    sample brings everything back."""
    server = start_server(metrics_stale_seconds=120.0)
    first = clock.now
    server.ingest(make_batch(cpu=50.0, at=first))
    up = f'srvmon_machine_up{{{HOST},kind="host"}}'
    seen = f'srvmon_machine_last_seen_timestamp_seconds{{{HOST},kind="host"}}'
    cpu = f"srvmon_host_cpu_ratio{{{HOST}}}"

    clock.advance(30)
    assert {k: samples(server)[k] for k in (up, cpu)} == {up: 1.0, cpu: 0.5}
    clock.advance(1)
    assert {k: samples(server)[k] for k in (up, cpu)} == {up: 0.0, cpu: 0.5}
    clock.advance(89)  # 120 s quiet: not yet past the stale time
    assert cpu in samples(server)
    clock.advance(1)
    quiet = samples(server)
    assert [k for k in quiet if "{" in k and 'hostname="h1.example"' in k] == [up, seen]
    assert (quiet[up], quiet[seen]) == (0.0, first.timestamp())

    server.ingest(make_batch(cpu=20.0, at=clock.now))
    back = samples(server)
    assert (back[up], back[cpu], back[seen]) == (1.0, 0.2, clock.now.timestamp())


def test_metrics_come_back_after_a_restart(start_server, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    """The latest view is loaded from the inventory at start: no ingest needed."""
    server = start_server()
    server.ingest(make_batch(cpu=64.0, containers=(("db", 150.0),), at=clock.now))
    server.stop()
    server.storage.close()
    again = start_server()
    figures = samples(again)
    assert figures[f"srvmon_host_cpu_ratio{{{HOST}}}"] == 0.64
    assert figures[f'srvmon_container_cpu_ratio{{container="db",{HOST}}}'] == 1.5
    assert figures[f'srvmon_machine_up{{{HOST},kind="host"}}'] == 1.0
    assert figures["srvmon_server_ingest_batches_total"] == 0.0  # this process's own count


def test_a_late_older_sample_keeps_the_newer_figures(
    server: RunningServer, clock: FakeClock
) -> None:
    """A replayed older batch counts as heard-from but does not overwrite newer figures."""
    server.ingest(make_batch(cpu=70.0, at=clock.advance(10)))
    server.ingest(make_batch(cpu=10.0, at=clock.now.replace(minute=0, second=5)))
    assert samples(server)[f"srvmon_host_cpu_ratio{{{HOST}}}"] == 0.7
