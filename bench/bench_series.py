"""Series query latency over 7 days of 1 s data for one host (604,800 raw rows).

Usage: python bench/bench_series.py [--days D] [--queries Q] [--mysql-url URL] [--no-mysql]

Raw rows are generated straight into the table (bulk executemany), not through ingest; then
one ``Storage.roll_up()`` computes the 1 m / 1 h rollups from them (its time is printed).
Then Q queries per range (15 min, 1 h, 24 h, 7 d) at random offsets go through
Storage.series(max_points=1000);
p50/p95 are printed next to a reference measured in the same run: a bare
``SELECT COUNT(*)`` over the host's raw rows (a full primary-key range scan).
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_ingest import T0, fresh_database, mysql_server, sample_batch  # noqa: E402
from srvmon_server.storage import Storage  # noqa: E402
from srvmon_server.storage import tables as t  # noqa: E402

CHUNK = 5000
RANGES = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}


def value(i: int) -> float:
    return 50 + 40 * math.sin(i / 600) + (i % 7)


def fill(store: Storage, seconds: int) -> int:
    """Write ``seconds`` rows of host data (cpu_percent, memory_percent); roll them up."""
    store.samples.ingest(sample_batch(0, containers=0), T0)  # creates the machine (id) and row 0
    store.samples.settle()  # SQLite: row 0 into ``samples``, which the fill rewrites
    with store.engine.connect() as conn:
        machine_id = conn.execute(sa.select(t.machines.c.id)).scalar_one()
    base = round(T0.timestamp() * 1000)
    cpu, mem = t.raw_column("cpu_percent"), t.raw_column("memory_percent")
    insert = sa.insert(t.samples)
    with store.engine.begin() as conn:
        conn.execute(sa.delete(t.samples))
    for start in range(0, seconds, CHUNK):
        rows = [
            {"machine_id": machine_id, "ts_ms": base + i * 1000, cpu: value(i), mem: 50.0}
            for i in range(start, min(start + CHUNK, seconds))
        ]
        with store.engine.begin() as conn:
            conn.execute(insert, rows)
    with store.engine.begin() as conn:  # the inventory says how far the data goes
        conn.execute(sa.update(t.machines).values(latest_ts_ms=base + (seconds - 1) * 1000))
    began = time.perf_counter()
    result = store.samples.roll_up()
    elapsed = time.perf_counter() - began
    print(
        f"  roll_up catch-up over {seconds} raw rows: {elapsed:.2f} s"
        f" ({elapsed / seconds * 1e6:.1f} us/row, {result.minute_buckets} 1 m buckets)"
    )
    return int(machine_id)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(p * len(ordered)) - 1)]


def bench(name: str, url: str, days: float, queries: int) -> None:
    store = Storage.open(url)
    seconds = int(days * 86400)
    began = time.perf_counter()
    machine_id = fill(store, seconds)
    print(f"{name}: generated {seconds} raw rows in {time.perf_counter() - began:.1f} s")
    rng = random.Random(1)
    reference = []
    for _ in range(5):
        q0 = time.perf_counter()
        with store.engine.connect() as conn:
            conn.execute(
                sa.select(sa.func.count())
                .select_from(t.samples)
                .where(t.samples.c.machine_id == machine_id)
            ).scalar_one()
        reference.append(time.perf_counter() - q0)
    ref = statistics.median(reference)
    print(f"  reference SELECT COUNT(*) over {seconds} rows: {ref * 1000:.1f} ms (median of 5)")
    total = timedelta(seconds=seconds)
    for label, wanted in RANGES.items():
        span = min(wanted, total)
        times, sizes, tiers = [], [], set()
        for _ in range(queries):
            offset = rng.uniform(0, (total - span).total_seconds())
            start = T0 + timedelta(seconds=offset)
            q0 = time.perf_counter()
            series = store.samples.series("bench-host", "cpu_percent", start, start + span, 1000)
            times.append(time.perf_counter() - q0)
            sizes.append(len(series.points))
            tiers.add(series.resolution)
        p50, p95 = statistics.median(times), percentile(times, 0.95)
        print(
            f"  {label:>4s}: p50 {p50 * 1000:6.1f} ms  p95 {p95 * 1000:6.1f} ms"
            f"  ({p95 / ref:5.2f}x reference)  points <= {max(sizes)}  tier {','.join(tiers)}"
        )
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--mysql-url", default=None, help="mysql+pymysql://root@HOST:PORT")
    parser.add_argument("--no-mysql", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    if not args.no_sqlite:
        tmp = Path(tempfile.mkdtemp(prefix="srvmon-bench-"))
        bench("sqlite", f"sqlite:///{tmp / 'series.sqlite'}", args.days, args.queries)
    if not args.no_mysql:
        with mysql_server(args.mysql_url) as server:
            bench("mariadb", fresh_database(server), args.days, args.queries)


if __name__ == "__main__":
    main()
