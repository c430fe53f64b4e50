"""Ingest throughput of Storage.ingest vs a bare executemany of the same raw rows.

Usage: python bench/bench_ingest.py [--batches N] [--rounds R] [--mysql-url URL] [--no-mysql]

Each batch is 1 host + 20 containers = 21 samples, one transaction per batch (as the server
commits each batch). The "ceiling" inserts the same 21 wide raw rows per batch with a plain
SQLAlchemy Core executemany into a fresh copy of the same schema, one transaction per
batch, with no idempotency check, no rollups and no inventory. Ratio = ingest / ceiling.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from srvmon_core.schema import Batch, ContainerSample, HostSample  # noqa: E402
from srvmon_server.storage import Storage  # noqa: E402
from srvmon_server.storage import tables as t  # noqa: E402
from srvmon_server.storage.ingest import machine_samples, raw_row  # noqa: E402
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


def run_ingest(url: str, batches: int) -> float:
    store = Storage.open(url)
    try:
        store.ingest(sample_batch(0), T0)  # machines exist; ids are cached
        began = time.perf_counter()
        for i in range(1, batches + 1):
            store.ingest(sample_batch(i), T0)
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
        prepared.append([raw_row(n + 1, ts, p.metrics) for n, p in enumerate(machine_samples(b))])
    insert = sa.insert(t.samples)
    began = time.perf_counter()
    for rows in prepared:
        with engine.begin() as conn:
            conn.execute(insert, rows)
    elapsed = time.perf_counter() - began
    store.close()
    return batches * 21 / elapsed


def measure(name: str, make_url: callable, batches: int, rounds: int) -> tuple[float, float]:  # type: ignore[valid-type]
    ingest, ceiling = [], []
    for _ in range(rounds):
        ingest.append(run_ingest(make_url(), batches))
        ceiling.append(run_ceiling(make_url(), batches))
    mi, mc = statistics.median(ingest), statistics.median(ceiling)
    print(
        f"{name:8s} ingest {mi:9.0f} samples/s   ceiling (bare executemany) {mc:9.0f} rows/s"
        f"   ratio {mi / mc:6.1%}   (median of {rounds} x {batches} batches)"
    )
    return mi, mc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mysql-url", default=None, help="mysql+pymysql://root@HOST:PORT")
    parser.add_argument("--no-mysql", action="store_true")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="srvmon-bench-"))
    counter = iter(range(10**6))
    measure(
        "sqlite",
        lambda: f"sqlite:///{tmp / f'db{next(counter)}.sqlite'}",
        args.batches,
        args.rounds,
    )
    if not args.no_mysql:
        with mysql_server(args.mysql_url) as server:
            measure("mariadb", lambda: fresh_database(server), args.batches, args.rounds)


if __name__ == "__main__":
    main()
