"""SQLite ingest beside a thread that runs Python: the interpreter lock's convoy.

    python bench/bench_sqlite_convoy.py [--hosts 500] [--containers 30] [--rounds 3]

In the server the database thread stores a request's batches while the decode thread
(and the IOLoop) run Python. sqlite3 lets go of the interpreter lock around every
``sqlite3_step``; once another thread holds the lock, getting it back waits until that
thread lets go, up to the switch interval (5 ms). An ``executemany`` steps once per row,
so beside a busy thread every row can wait that long.

Per round, one fleet-second (``--hosts`` hosts with ``--containers`` containers, one
sample each) is stored on a fresh SQLite file that already knows every machine, three ways,
each alone and beside a thread running a Python loop:

- ``ingest``: ``Storage.samples.ingest_many`` (the server's write path, in requests of 50
  batches, as the fleet bench's lanes post them);
- ``executemany``: the reference, the write path's statement before it took many rows
  (``INSERT INTO samples_recent … SELECT ?1, … WHERE NOT EXISTS (SELECT 1 FROM samples …)
  ON CONFLICT DO NOTHING``) as one sqlite3 ``executemany`` of the same raw rows: a step
  per row, into tables of the same keys;
- ``plain executemany``: the same rows with a plain ``INSERT … VALUES … ON CONFLICT DO
  NOTHING`` (no probe), as a floor.

Printed per way: wall time and the storing thread's CPU time (best of ``--rounds``), and
the ratios beside a busy thread against alone, measured in the same run.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_pipeline import make_batch  # noqa: E402
from srvmon_core.view import batch_view  # noqa: E402
from srvmon_server.storage import Storage  # noqa: E402
from srvmon_server.storage import tables as t  # noqa: E402
from srvmon_server.storage.ingest import carried_metrics, raw_values  # noqa: E402

START = datetime(2026, 1, 1, tzinfo=UTC)
PER_REQUEST = 50
WAYS = ("ingest", "executemany", "plain executemany")


class Busy:
    """A thread running a Python loop until stopped (as the decode thread does)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._spin, daemon=True)

    def _spin(self) -> None:
        total = 0
        while not self.stop.is_set():
            for i in range(2000):
                total += i * i

    def __enter__(self) -> Busy:
        self.thread.start()
        time.sleep(0.05)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join()


def timed(work: Callable[[], object], busy: bool) -> tuple[float, float]:
    """(wall seconds, this thread's CPU seconds) of ``work``, alone or beside ``Busy``."""

    def measure() -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.thread_time()
        work()
        return time.perf_counter() - wall, time.thread_time() - cpu

    if not busy:
        return measure()
    with Busy():
        return measure()


def ingest_round(
    storage: Storage, hosts: int, containers: int, second: int
) -> Callable[[], object]:
    at = START + timedelta(seconds=second)
    batches = [make_batch(h, second, containers, at=at) for h in range(hosts)]

    def work() -> None:
        for first in range(0, hosts, PER_REQUEST):
            storage.samples.ingest_many(batches[first : first + PER_REQUEST], at)

    return work


def executemany_round(
    db: sqlite3.Connection, hosts: int, containers: int, second: int, probe: bool
) -> Callable[[], object]:
    at = START + timedelta(seconds=second)
    parts = [
        m
        for h in range(hosts)
        for m in batch_view(make_batch(h, second, containers, at=at)).machines
    ]
    names = carried_metrics(parts)
    ts_ms = int(at.timestamp() * 1000)
    rows = [raw_values(i, ts_ms, p.metrics, names) for i, p in enumerate(parts)]
    columns = ", ".join(["machine_id", "ts_ms", *map(t.raw_column, names)])
    if probe:
        marks = ", ".join(f"?{n}" for n in range(1, 3 + len(names)))
        sql = (
            f"INSERT INTO samples_recent ({columns}) SELECT {marks} WHERE NOT EXISTS "
            "(SELECT 1 FROM samples WHERE machine_id = ?1 AND ts_ms = ?2) ON CONFLICT DO NOTHING"
        )
    else:
        marks = ", ".join("?" * (2 + len(names)))
        sql = f"INSERT INTO plain ({columns}) VALUES ({marks}) ON CONFLICT DO NOTHING"

    def work() -> None:
        with db:
            db.executemany(sql, rows)

    return work


def reference_db(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level="DEFERRED", check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    columns = ", ".join(f"{t.raw_column(m)} REAL" for m in t.METRIC_NAMES)
    for table in ("samples", "samples_recent", "plain"):
        db.execute(
            f"CREATE TABLE {table} (machine_id INTEGER, ts_ms INTEGER, {columns},"
            " PRIMARY KEY (machine_id, ts_ms)) WITHOUT ROWID"
        )
    return db


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--containers", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    samples = args.hosts * (1 + args.containers)
    best: dict[tuple[str, bool], tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="srvmon-bench-convoy-") as tmp:
        storage = Storage.open(f"sqlite:///{Path(tmp) / 'srvmon.db'}")
        db = reference_db(Path(tmp) / "reference.db")
        try:
            ingest_round(storage, args.hosts, args.containers, 0)()  # every machine known
            second = 1
            for _ in range(args.rounds):
                for busy in (False, True):
                    for way in WAYS:
                        if way == "ingest":
                            work = ingest_round(storage, args.hosts, args.containers, second)
                        else:
                            probe = way == "executemany"
                            work = executemany_round(db, args.hosts, args.containers, second, probe)
                        second += 1
                        wall, cpu = timed(work, busy)
                        known = best.get((way, busy))
                        if known is None or wall < known[0]:
                            best[(way, busy)] = (wall, cpu)
        finally:
            storage.close()
            db.close()
    print(f"one fleet-second: {args.hosts} hosts x {args.containers} containers = {samples:,} rows")
    for way in WAYS:
        alone, beside = best[(way, False)], best[(way, True)]
        print(
            f"{way:17} alone {alone[0] * 1000:8.1f} ms (CPU {alone[1] * 1000:6.1f}), "
            f"beside a busy thread {beside[0] * 1000:8.1f} ms (CPU {beside[1] * 1000:6.1f}): "
            f"x{beside[0] / alone[0]:.1f}"
        )
    ratio = best[("ingest", True)][0] / best[("executemany", True)][0]
    print(f"beside a busy thread, ingest / executemany (the write path before): {ratio:.3f}")


if __name__ == "__main__":
    main()
