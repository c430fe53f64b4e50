"""Ingest throughput of Storage.ingest vs a bare executemany of the same raw rows.

Usage: python bench/bench_ingest.py [--batches N] [--rounds R] [--mysql-url URL] [--no-mysql]

Each batch is 1 host + 20 containers = 21 samples, one transaction per batch (as the server
commits each batch). The "ceiling" inserts the same 21 wide raw rows per batch with a plain
SQLAlchemy Core executemany into a fresh copy of the same schema, one transaction per
batch, with no idempotency check, no rollups and no inventory. Ratio = ingest / ceiling.

Batches are received one second apart (the ``received_at`` given to ingest is the batch's
own timestamp), as from a host sending every second, so the machines' inventory rows are
rewritten every 5 batches (the default write-behind, ``INVENTORY_FLUSH``); the time of the
final flush is included. A third line gives the same ingest with the inventory written
through (in every batch's transaction).

Rollups are not maintained by ingest but by ``Storage.roll_up`` (the server calls it every
few seconds). So that the total cost is honest, the bench also reports, per backend:

- ``catch-up``: one ``roll_up`` over everything the ingest round stored, in µs per sample;
- ``periodic``: a second ingest run calling ``roll_up(now)`` every ``--roll-every`` batches
  with ``now`` one second after the last batch (default 5: one host sending a batch per
  second, the server rolling up every 5 s; each minute is folded once, when it closes), as
  samples/s including the roll-ups, with its own ratio against the same ceiling.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from srvmon_core.schema import Batch, ContainerSample, HostSample  # noqa: E402
from srvmon_core.view import batch_view  # noqa: E402
from srvmon_server.storage import Storage  # noqa: E402
from srvmon_server.storage import tables as t  # noqa: E402
from srvmon_server.storage.gateway import INVENTORY_FLUSH  # noqa: E402
from srvmon_server.storage.ingest import raw_row  # noqa: E402
from tests.fixtures.mariadb import MariaDB, start_mariadb, stop_mariadb  # noqa: E402

T0 = datetime(2024, 5, 1, tzinfo=UTC)


@contextmanager
def mysql_server(url: str | None) -> Iterator[MariaDB]:
    """An existing server (``--mysql-url``, without database) or our own mariadbd."""
    if url:
        yield MariaDB(url, None)
        return
    workdir = Path(tempfile.mkdtemp(prefix="srvmon-bench-mariadb-"))
    server = start_mariadb(workdir)
    try:
        yield server
    finally:
        stop_mariadb(server)


def fresh_database(server: MariaDB) -> str:
    return server.create_database(f"srvmon_bench_{uuid.uuid4().hex[:10]}")


def sample_batch(i: int, containers: int = 20) -> Batch:
    """Batch number ``i``: 1 host + ``containers`` containers, one second after batch i-1."""
    return Batch(
        host_id="bench-host",
        hostname="bench-host",
        timestamp=T0 + timedelta(seconds=i),
        host=HostSample(
            cpu_percent=float(i % 100),
            load_1=1.0,
            load_5=1.0,
            load_15=1.0,
            memory_total_bytes=16 << 30,
            memory_used_bytes=8 << 30,
            memory_available_bytes=8 << 30,
            memory_percent=50.0,
            disk_read_bytes_per_s=1000.0,
            disk_write_bytes_per_s=2000.0,
            uptime_seconds=float(i),
            process_count=300,
        ),
        containers=tuple(
            ContainerSample(
                id=f"{c:064x}",
                name=f"svc-{c}",
                image="registry/app:1",
                labels={"com.docker.compose.project": "bench"},
                cpu_percent=float((i + c) % 100),
                memory_working_set_bytes=100 << 20,
                memory_limit_bytes=1 << 30,
                memory_percent=9.8,
                net_rx_bytes_per_s=100.0,
                net_tx_bytes_per_s=200.0,
                pids=12,
            )
            for c in range(containers)
        ),
    )


def run_ingest(
    url: str, batches: int, inventory_flush: timedelta = INVENTORY_FLUSH
) -> tuple[float, float]:
    """(ingest samples/s, one catch-up roll_up over all of it in µs per sample)."""
    store = Storage.open(url, inventory_flush=inventory_flush)
    try:
        store.samples.ingest(sample_batch(0), T0)  # machines exist; ids are cached
        store.samples.roll_up()
        began = time.perf_counter()
        for i in range(1, batches + 1):
            batch = sample_batch(i)
            store.samples.ingest(batch, batch.timestamp)  # received as sent: one batch a second
        store.samples.flush_inventory()  # what still waits is part of the cost
        elapsed = time.perf_counter() - began
        began = time.perf_counter()
        store.samples.roll_up()
        rolled = time.perf_counter() - began
    finally:
        store.close()
    return batches * 21 / elapsed, rolled / (batches * 21) * 1e6


def run_periodic(url: str, batches: int, every: int) -> float:
    """Samples/s of ingest with a roll_up after every ``every`` batches (and at the end)."""
    store = Storage.open(url)
    try:
        store.samples.ingest(sample_batch(0), T0)
        store.samples.roll_up(T0)
        began = time.perf_counter()
        for i in range(1, batches + 1):
            batch = sample_batch(i)
            store.samples.ingest(batch, batch.timestamp)
            if i % every == 0 or i == batches:  # the clock follows the data, as in service
                store.samples.roll_up(sample_batch(i).timestamp + timedelta(seconds=1))
        elapsed = time.perf_counter() - began
    finally:
        store.close()
    return batches * 21 / elapsed


def run_ceiling(url: str, batches: int) -> float:
    store = Storage.open(url)
    engine = store.engine
    prepared = []
    for i in range(1, batches + 1):
        b = sample_batch(i)
        ts = round(b.timestamp.timestamp() * 1000)
        prepared.append(
            [raw_row(n + 1, ts, p.metrics) for n, p in enumerate(batch_view(b).machines)]
        )
    insert = sa.insert(t.samples)
    began = time.perf_counter()
    for rows in prepared:
        with engine.begin() as conn:
            conn.execute(insert, rows)
    elapsed = time.perf_counter() - began
    store.close()
    return batches * 21 / elapsed


def measure(name: str, make_url: Callable[[], str], batches: int, rounds: int, every: int) -> None:
    ingest, catch_up, periodic, ceiling, through = [], [], [], [], []
    for _ in range(rounds):
        rate, per_sample = run_ingest(make_url(), batches)
        ingest.append(rate)
        catch_up.append(per_sample)
        through.append(run_ingest(make_url(), batches, timedelta(0))[0])
        ceiling.append(run_ceiling(make_url(), batches))
        periodic.append(run_periodic(make_url(), batches, every))
    mi, mc = statistics.median(ingest), statistics.median(ceiling)
    mp, mu = statistics.median(periodic), statistics.median(catch_up)
    mt = statistics.median(through)
    print(
        f"{name:8s} ingest {mi:9.0f} samples/s   ceiling (bare executemany) {mc:9.0f} rows/s"
        f"   ratio {mi / mc:6.1%}   (median of {rounds} x {batches} batches)"
    )
    print(
        f"{'':8s} roll_up catch-up {mu:6.1f} us/sample (ingest takes {1e6 / mi:6.1f})"
        f"   ingest + roll_up every {every} batches {mp:9.0f} samples/s   ratio {mp / mc:6.1%}"
    )
    print(
        f"{'':8s} inventory written through (every batch, --inventory-flush-seconds 0)"
        f" {mt:9.0f} samples/s   ratio {mt / mc:6.1%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mysql-url", default=None, help="mysql+pymysql://root@HOST:PORT")
    parser.add_argument("--no-mysql", action="store_true")
    parser.add_argument("--roll-every", type=int, default=5, help="batches between roll-ups")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="srvmon-bench-"))
    counter = iter(range(10**6))
    measure(
        "sqlite",
        lambda: f"sqlite:///{tmp / f'db{next(counter)}.sqlite'}",
        args.batches,
        args.rounds,
        args.roll_every,
    )
    if not args.no_mysql:
        with mysql_server(args.mysql_url) as server:
            measure(
                "mariadb",
                lambda: fresh_database(server),
                args.batches,
                args.rounds,
                args.roll_every,
            )


if __name__ == "__main__":
    main()
