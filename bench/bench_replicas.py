"""Server replicas: topic -> DB throughput with one replica and with two, on MariaDB.

    python bench/bench_replicas.py [--hosts 200] [--containers 20] [--ticks 20] [--rounds 1]

It starts its own tansu broker and mariadbd (stopped by pid at the end). Per round, for one
replica and then for two: a fresh database and a fresh topic (4 partitions) holding the
same batches (``--hosts`` hosts x ``--ticks`` seconds, 1 + ``--containers`` samples
each), produced once the ``srvmon server --kafka-bootstrap ...`` replicas of the setup hold
every partition between them; the time runs from the first stored row to the last (all
present, exactly).
Printed per setup: samples/s, and the CPU each process used per stored sample (each
replica, mariadbd, tansu) against the wall time per sample. The reference, in the same
run: SQLAlchemy ``executemany`` of the same rows into a fresh MariaDB database (1,000 rows
per commit), and each setup's ratio to it; the scaling is two replicas / one replica.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bench.bench_ingest import fresh_database, mysql_server  # noqa: E402
from bench.bench_pipeline import (  # noqa: E402
    SRVMON,
    TOKEN,
    Procs,
    count_rows,
    cpu_seconds,
    create_topic,
    make_batch,
    produce,
    raw_insert_ceiling,
    start_broker,
    wait,
)
from srvmon_core.schema import Batch  # noqa: E402
from srvmon_server.prometheus import REPLICA_PARTITION  # noqa: E402
from tests.helpers import free_port  # noqa: E402

PARTITIONS = 4
"""What ``create_topic`` makes."""


def start_replica(
    procs: Procs, db_url: str, bootstrap: str, topic: str, group: str
) -> tuple[int, str]:
    """One replica; returns its pid and URL once it answers."""
    port = free_port()
    process = procs.start(
        f"replica-{port}",
        [
            SRVMON,
            "server",
            "--port",
            str(port),
            "--db-url",
            db_url,
            "--token",
            TOKEN,
            "--kafka-bootstrap",
            bootstrap,
            "--kafka-topic",
            topic,
            "--kafka-group",
            group,
            "--kafka-events-topic",
            f"{topic}.events",
            "--kafka-option",
            "session.timeout.ms=6000",
            "--kafka-option",
            "heartbeat.interval.ms=500",
        ],
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/api/v1/health", timeout=1):
                return True
        except OSError:
            return process.poll() is not None

    wait(healthy, 60, "replica")
    if process.poll() is not None:
        raise SystemExit(f"a replica exited with {process.returncode}; see its log")
    return process.pid, url


def partitions_held(url: str) -> int:
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return 0
    return sum(1 for line in text.splitlines() if line.startswith(REPLICA_PARTITION + "{"))


def throughput(
    procs: Procs,
    bootstrap: str,
    db_url: str,
    items: list[Batch],
    *,
    replicas: int,
    others: dict[str, int],
) -> tuple[float, dict[str, float]]:
    """Samples/s from the first stored row to the last with ``replicas`` replicas, and the
    CPU per stored sample of each watched process (µs)."""
    samples = sum(1 + len(b.containers) for b in items)
    topic = f"bench-replicas-{free_port()}"
    create_topic(bootstrap, topic)
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    group = f"g-{topic}"
    started = [start_replica(procs, db_url, bootstrap, topic, group) for _ in range(replicas)]
    pids = [pid for pid, _ in started]
    wait(  # the group has formed: the replicas hold every partition between them
        lambda: (
            all(partitions_held(url) for _, url in started)
            and sum(partitions_held(url) for _, url in started) == PARTITIONS
        ),
        120,
        "the replicas to split the partitions",
    )
    produce(bootstrap, topic, items)
    watched = {**{f"replica {i + 1}": pid for i, pid in enumerate(pids)}, **others}
    wait(lambda: count_rows(engine) > 0, 120, "first row")
    began = time.perf_counter()
    first = count_rows(engine)
    cpu_before = {name: cpu_seconds(pid) for name, pid in watched.items()}
    wait(lambda: count_rows(engine) >= samples, 600, f"{samples} rows")
    elapsed = time.perf_counter() - began
    cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in watched.items()}
    final = count_rows(engine)
    if final != samples:
        raise SystemExit(f"expected exactly {samples} rows, found {final}")
    stored = samples - first
    engine.dispose()
    for process in list(procs.running):
        if process.pid in pids:
            procs.stop(process)
    return stored / elapsed, {name: used / stored * 1e6 for name, used in cpu.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--containers", type=int, default=20)
    parser.add_argument("--ticks", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    # Recent timestamps: the server refuses samples older than 7 days (--max-sample-age).
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=args.ticks)
    items = [
        make_batch(h, s, args.containers, at=start + timedelta(seconds=s))
        for s in range(args.ticks)
        for h in range(args.hosts)
    ]
    samples = len(items) * (1 + args.containers)
    print(f"{len(items)} batches, {samples:,} samples ({args.hosts} hosts x {args.ticks} s)")
    with tempfile.TemporaryDirectory(prefix="srvmon-bench-replicas-") as tmp:
        procs = Procs(Path(tmp))
        try:
            bootstrap = start_broker(procs)
            broker_pid = procs.running[-1].pid
            with mysql_server(None) as mariadb:
                mariadb_pid = mariadb.process.pid if mariadb.process is not None else None
                others = {"tansu": broker_pid}
                if mariadb_pid is not None:
                    others["mariadbd"] = mariadb_pid
                results: dict[int, list[float]] = {1: [], 2: []}
                cpu: dict[int, list[dict[str, float]]] = {1: [], 2: []}
                ceilings = []
                for _ in range(args.rounds):
                    rows_per_second, _ = raw_insert_ceiling(fresh_database(mariadb), items)
                    ceilings.append(rows_per_second)
                    for n in (1, 2):
                        database = fresh_database(mariadb)
                        rate, used = throughput(
                            procs, bootstrap, database, items, replicas=n, others=others
                        )
                        results[n].append(rate)
                        cpu[n].append(used)
                ceiling = statistics.median(ceilings)
                print(f"executemany ceiling (MariaDB, 1,000 rows/commit): {ceiling:,.0f} rows/s")
                for n in (1, 2):
                    rate = statistics.median(results[n])
                    runs = [round(r) for r in results[n]]
                    print(
                        f"{n} replica(s): {rate:,.0f} samples/s (runs {runs}), "
                        f"{rate / ceiling:.2f} of the ceiling, {1e6 / rate:.1f} us wall per sample"
                    )
                    for name in cpu[n][0]:
                        value = statistics.median(c[name] for c in cpu[n])
                        print(f"    {name}: {value:.1f} us CPU per sample")
                one, two = statistics.median(results[1]), statistics.median(results[2])
                print(f"scaling, 2 replicas / 1: {two / one:.2f}")
        finally:
            procs.stop_all()


if __name__ == "__main__":
    main()
