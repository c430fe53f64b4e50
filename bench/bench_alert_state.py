"""Alert-state writes at fleet scale: the time one alert event costs the DB thread.

    python bench/bench_alert_state.py [--hosts 1000] [--containers 30] [--events 200]
                                      [--old-events 10] [--skip-mariadb]

The server's alerting service (``srvmon_server.alerting.Alerting``, default rules plus one
host rule, ``load_1`` above 8) first sees every host once (``--hosts`` x (1 + ``--containers``)
machines, 31,000 by default) and saves them (the first periodic save, in chunks of 2,000
machines, timed). Then each
measured step is one batch of one host that crosses that rule (firing, then resolved
on the next step of that host): exactly one alert event per step, timed through
``Alerting.on_batch`` (evaluation of the host's 31 machines + the write).

The reference, in the same run on the same database and the same 31,000-machine state, is
the old design: the same evaluation and the same history insert, then the whole engine
state serialised (``EngineState.to_dict``) and rewritten as one row, as every alert event
did before the state was kept per machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from srvmon_core.engine import evaluate_view  # noqa: E402
from srvmon_core.rules import Rule, Selector  # noqa: E402
from srvmon_core.schema import Batch, ContainerSample, HostSample  # noqa: E402
from srvmon_core.view import BatchView, batch_view  # noqa: E402
from srvmon_server.alerting import Alerting  # noqa: E402
from srvmon_server.storage import Storage  # noqa: E402
from srvmon_server.storage import tables as t  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HOT = Rule(
    id="bench.load", name="bench load", selector=Selector(kind="host"), metric="load_1", warn=8.0
)
OLD_TABLE = sa.Table(
    "bench_old_alert_state",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("body", t.LongText, nullable=False),
    sa.Column("saved_at_ms", sa.BigInteger, nullable=False),
)


def host_batch(h: int, at: datetime, containers: int, load: float = 1.0) -> Batch:
    host_id = f"host-{h:05d}"
    return Batch(
        host_id=host_id,
        hostname=host_id,
        timestamp=at,
        host=HostSample(
            cpu_percent=20.0,
            load_1=load,
            load_5=1.0,
            load_15=1.0,
            memory_total_bytes=64 << 30,
            memory_used_bytes=16 << 30,
            memory_available_bytes=48 << 30,
            memory_percent=25.0,
            disk_read_bytes_per_s=1000.0,
            uptime_seconds=86_400.0,
            process_count=400,
        ),
        containers=tuple(
            ContainerSample(
                id=f"{host_id}-{c}",
                name=f"svc-{c}",
                labels={"com.docker.compose.project": "bench"},
                cpu_percent=5.0,
                memory_working_set_bytes=100 << 20,
                memory_limit_bytes=1 << 30,
                memory_percent=9.8,
                pids=12,
            )
            for c in range(containers)
        ),
    )


class Steps:
    """Alert-producing batches: host h fires the rule on its even visit, resolves on odd."""

    def __init__(self, hosts: int, containers: int) -> None:
        self.hosts = hosts
        self.containers = containers
        self.step = 0

    def next(self) -> tuple[datetime, BatchView]:
        h = (self.step // 2) % self.hosts
        at = T0 + timedelta(seconds=1 + self.step)
        load = 12.0 if self.step % 2 == 0 else 1.0
        self.step += 1
        return at, batch_view(host_batch(h, at, self.containers, load=load))


def warm_up(alerting: Alerting, args: argparse.Namespace) -> tuple[float, list[float]]:
    """Every host seen once (no write), then the first periodic save; both timed."""
    views = [batch_view(host_batch(h, T0, args.containers)) for h in range(args.hosts)]
    began = time.perf_counter()
    for view in views:
        alerting.on_batch(view, T0)
    first_round = time.perf_counter() - began
    chunks = []
    more = True
    while more:
        began = time.perf_counter()
        more = alerting.save_periodic()
        chunks.append(time.perf_counter() - began)
    return first_round, chunks


def per_machine_events(alerting: Alerting, steps: Steps, count: int) -> list[float]:
    """Seconds per alert event, as the server does it now."""
    times = []
    for _ in range(count):
        at, view = steps.next()
        began = time.perf_counter()
        events = alerting.on_batch(view, at)
        times.append(time.perf_counter() - began)
        assert len(events) == 1, events
    return times


def whole_state_events(
    alerting: Alerting, storage: Storage, steps: Steps, count: int
) -> tuple[list[float], int]:
    """Seconds per alert event as the old design did it, and the state document's size."""
    OLD_TABLE.create(storage.engine, checkfirst=True)
    times = []
    size = 0
    for _ in range(count):
        at, view = steps.next()
        began = time.perf_counter()
        alerting.state, events = evaluate_view(alerting.rules, alerting.state, view, at)
        storage.history.append(events)  # the old code: events, then the whole state
        body = json.dumps(alerting.state.to_dict(), sort_keys=True, separators=(",", ":"))
        with storage.engine.begin() as conn:
            updated = conn.execute(
                sa.update(OLD_TABLE).where(OLD_TABLE.c.id == 1).values(body=body, saved_at_ms=0)
            )
            if updated.rowcount == 0:
                conn.execute(sa.insert(OLD_TABLE).values(id=1, body=body, saved_at_ms=0))
        times.append(time.perf_counter() - began)
        assert len(events) == 1, events
        size = len(body)
    alerting.state.take_changes()  # the old path left its machines marked; not measured
    return times, size


def run(url: str, args: argparse.Namespace) -> dict[str, float]:
    storage = Storage.open(url)
    try:
        alerting = Alerting(storage)
        alerting.load(T0)
        storage.rules.put(HOT)
        alerting.reload_rules()
        first_round, chunks = warm_up(alerting, args)
        steps = Steps(args.hosts, args.containers)
        new = per_machine_events(alerting, steps, args.events)
        old, state_bytes = whole_state_events(alerting, storage, steps, args.old_events)
        machines = len(alerting.state.machines)
    finally:
        storage.close()
    return {
        "machines": machines,
        "first_round_s": first_round,
        "first_save_s": sum(chunks),
        "first_save_chunk_s": max(chunks),
        "new_ms": statistics.median(new) * 1000,
        "new_p95_ms": sorted(new)[int(0.95 * (len(new) - 1))] * 1000,
        "old_ms": statistics.median(old) * 1000,
        "state_mb": state_bytes / 1e6,
    }


def report(backend: str, figures: dict[str, float]) -> None:
    print(
        f"{backend:8s} {figures['machines']:,.0f} machines | first round (evaluate, no write) "
        f"{figures['first_round_s']:.2f} s | first save of every machine "
        f"{figures['first_save_s']:.2f} s (longest 2,000-machine chunk "
        f"{figures['first_save_chunk_s'] * 1000:.0f} ms)"
    )
    print(
        f"{backend:8s} per alert event: per-machine state {figures['new_ms']:.2f} ms "
        f"(p95 {figures['new_p95_ms']:.2f} ms) | old whole-state rewrite "
        f"{figures['old_ms']:.1f} ms ({figures['state_mb']:.1f} MB document) | "
        f"old/new {figures['old_ms'] / figures['new_ms']:.0f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--containers", type=int, default=30)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--old-events", type=int, default=10)
    parser.add_argument("--skip-mariadb", action="store_true")
    args = parser.parse_args()
    print(
        f"{args.hosts} hosts x (1 + {args.containers} containers); "
        f"{args.events} events measured (old design: {args.old_events})"
    )
    with tempfile.TemporaryDirectory(prefix="srvmon-bench-state-") as tmp:
        report("sqlite", run(f"sqlite:///{Path(tmp) / 'state.db'}", args))
        if not args.skip_mariadb:
            from tests.fixtures.mariadb import start_mariadb, stop_mariadb

            server = start_mariadb(Path(tmp) / "mariadb")
            try:
                url = server.create_database(f"srvmon_bench_{uuid.uuid4().hex[:10]}")
                report("mariadb", run(url, args))
            finally:
                stop_mariadb(server)


if __name__ == "__main__":
    main()
