"""/metrics scrape cost: building the exposition from the in-memory latest view.

A fleet of ``--hosts`` hosts with ``--containers`` containers each (all flat metrics set),
fresh, as the server's ``/metrics`` serves it (``Scrape.body``: the machine families
written by ``MachineCollector.render``, the server's own figures by prometheus_client).
Two references, timed in the same run: prometheus_client's ``generate_latest`` of the
same collectors (what ``/metrics`` did before; the bytes must be equal), and
``json.dumps`` of the same machines' metrics (about what ``/api/v1/machines`` pays to
serialise them).

    python bench/bench_metrics.py [--hosts 200] [--containers 20] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime

from srvmon_core.schema import Batch, ContainerSample, HostSample
from srvmon_core.view import batch_view
from srvmon_server.latest import LatestView
from srvmon_server.prometheus import (
    MachineCollector,
    Scrape,
    ServerCollector,
    exposition,
    registry,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def fleet(hosts: int, containers: int) -> LatestView:
    view = LatestView()
    for h in range(hosts):
        batch = Batch(
            host_id=f"host-{h:04d}",
            hostname=f"host-{h:04d}.example",
            timestamp=NOW,
            host=HostSample(
                cpu_percent=12.5 + h % 50,
                cpu_iowait_percent=0.5,
                cpu_steal_percent=0.0,
                load_1=0.5,
                load_5=0.4,
                load_15=0.3,
                memory_total_bytes=16_000_000_000,
                memory_used_bytes=6_000_000_000,
                memory_available_bytes=10_000_000_000,
                memory_percent=37.5,
                swap_percent=1.0,
                disk_read_bytes_per_s=1e6,
                disk_write_bytes_per_s=2e6,
                disk_read_ops_per_s=100.0,
                disk_write_ops_per_s=200.0,
                uptime_seconds=86_400.0,
                process_count=300,
            ),
            containers=tuple(
                ContainerSample(
                    id=f"c{h}-{c}",
                    name=f"svc-{c}",
                    cpu_percent=3.0 + c,
                    cpu_throttled_percent=0.0,
                    memory_working_set_bytes=100_000_000,
                    memory_percent=10.0,
                    net_rx_bytes_per_s=1000.0,
                    net_tx_bytes_per_s=2000.0,
                    block_read_bytes_per_s=0.0,
                    block_write_bytes_per_s=512.0,
                    pids=12,
                )
                for c in range(containers)
            ),
        )
        view.update(batch_view(batch), NOW)
    return view


def timed(fn: object, runs: int) -> tuple[float, object]:
    times = []
    result: object = None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--containers", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    latest = fleet(args.hosts, args.containers)
    machines = MachineCollector(
        latest, lambda: NOW, silent_after_seconds=30.0, stale_after_seconds=300.0
    )
    own = ServerCollector(lambda: {"ingest_batches_total": 1.0})
    served = Scrape(machines, registry(own))
    library = registry(machines, own)
    scrape, body = timed(served.body, args.runs)
    generic, generic_body = timed(lambda: exposition(library), args.runs)
    if body != generic_body:
        raise SystemExit("the scrape differs from generate_latest of the same collectors")
    known = latest.machines()
    reference, _ = timed(lambda: json.dumps({m.key: dict(m.metrics) for m in known}), args.runs)
    assert isinstance(body, bytes)
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    print(
        f"/metrics for {len(known)} machines: {series} series, {len(body) / 1e6:.1f} MB, "
        f"{scrape * 1000:.0f} ms (median of {args.runs}), {scrape / series * 1e6:.2f} us a series"
    )
    print(
        f"generate_latest of the same collectors (the same bytes): {generic * 1000:.0f} ms, "
        f"{generic / scrape:.1f}x the scrape's time"
    )
    print(
        f"json.dumps of the same metrics: {reference * 1000:.0f} ms; "
        f"the scrape takes {scrape / reference:.1f}x that"
    )


if __name__ == "__main__":
    main()
