"""What one second of a large fleet costs SQLite as the raw history grows.

    python bench/bench_sqlite_history.py [--hosts 1000] [--containers 30]
                                         [--history 10,60,250] [--per-request 50]
                                         [--settle 10]

One fleet-second is every machine's sample at one timestamp (``--hosts`` x (1 +
``--containers``) rows), stored the way the server stores HTTP ingest: ``Storage.samples
.ingest_many`` calls of ``--per-request`` hosts, one transaction each, on a SQLite database
opened by ``Storage.open`` (the server's pragmas; the inventory's write-behind is held
back, so only the raw samples are timed). After each fleet-second the write-ahead log is
copied back (``Storage.checkpoint``, which the server runs every second on a thread of its
own); after every ``--settle`` fleet-seconds the recent rows are moved into ``samples``
(``Storage.samples.settle``, the server's ``Periodic.settle`` every 10 s). The code before
the recent rows (inserting straight into ``samples``) is measured by running its own copy
of this bench (docs/benchmarks-server.md).

It is timed with about one second of raw history behind it (the reference, same run), then
after the history is filled up to each ``--history`` point (seconds of 1 Hz samples,
written straight into ``samples`` so the fill is fast). Printed per point, per
fleet-second: the ingest time (the DB thread), the move's time and the checkpoint's, the
write-ahead log written, and ingest + move as a ratio to the reference.

Why it would grow without the recent rows: ``samples`` is keyed by (machine_id, ts_ms), so
each machine's newest rows sit on their own index page; a second of the fleet dirties as
many pages as the history spreads the machines over, up to one page per machine, and every
commit writes each page it dirtied to the log whole. The move writes each page once for
``--settle`` seconds of rows (``srvmon_server/storage/settle.py``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import attrs  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from bench.bench_pipeline import make_batch  # noqa: E402
from srvmon_server.storage import Storage  # noqa: E402
from srvmon_server.storage import tables as t  # noqa: E402

START = datetime(2026, 1, 1, tzinfo=UTC)


def fleet_second(storage: Storage, hosts: int, containers: int, second: int, per: int) -> float:
    """Store every machine's sample at ``START + second``; the seconds it took."""
    at = START + timedelta(seconds=second)
    batches = [make_batch(h, second, containers, at=at) for h in range(hosts)]
    began = time.perf_counter()
    for first in range(0, hosts, per):
        storage.samples.ingest_many(batches[first : first + per], at)
    return time.perf_counter() - began


def fill(storage: Storage, seconds: range, columns: tuple[str, ...]) -> None:
    """Raw rows for every known machine at each of ``seconds`` (the same figures)."""
    with storage.engine.connect() as conn:
        ids = [int(i) for (i,) in conn.execute(sa.select(t.machines.c.id))]
    names = ", ".join(columns)
    marks = ", ".join("?" * (2 + len(columns)))
    sql = f"INSERT INTO samples (machine_id, ts_ms, {names}) VALUES ({marks})"
    figures = (20.0,) * len(columns)
    start_ms = int(START.timestamp() * 1000)
    with storage.engine.begin() as conn:
        for second in seconds:
            ts_ms = start_ms + second * 1000
            conn.exec_driver_sql(sql, [(i, ts_ms, *figures) for i in ids])


def wal_bytes(path: Path) -> int:
    log = Path(f"{path}-wal")
    return log.stat().st_size if log.exists() else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--containers", type=int, default=30)
    parser.add_argument("--history", default="10,60,250")
    parser.add_argument("--per-request", type=int, default=50)
    parser.add_argument("--settle", type=int, default=10, help="seconds between moves")
    args = parser.parse_args()
    points = sorted({int(p) for p in args.history.split(",")})
    with tempfile.TemporaryDirectory(prefix="srvmon-bench-history-") as tmp:
        path = Path(tmp) / "history.db"
        storage = Storage.open(f"sqlite:///{path}", inventory_flush=timedelta(days=1))
        try:
            run(storage, path, args, points)
        finally:
            storage.close()


@attrs.frozen
class Cost:
    """What one fleet-second cost, averaged over a measured run."""

    ingest: float
    move: float
    checkpoint: float
    log_bytes: float

    @property
    def db_thread(self) -> float:
        return self.ingest + self.move

    def line(self) -> str:
        return (
            f"ingest {self.ingest * 1000:6.0f} ms, move {self.move * 1000:5.0f} ms, "
            f"checkpoint {self.checkpoint * 1000:5.0f} ms, log {self.log_bytes / 1e6:5.1f} MB"
        )


def measure(storage: Storage, path: Path, args: argparse.Namespace, first: int) -> Cost:
    """``--settle`` fleet-seconds from ``first`` on, a checkpoint after each, then the move."""
    with storage.engine.connect() as conn:  # an empty log: its size is then what was written
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    ingest = copy = 0.0
    written = 0
    for second in range(first, first + args.settle):
        ingest += fleet_second(storage, args.hosts, args.containers, second, args.per_request)
        if second == first + args.settle - 1:
            began = time.perf_counter()
            storage.samples.settle()
            move = time.perf_counter() - began
        written += wal_bytes(path)
        began = time.perf_counter()
        storage.checkpoint()
        copy += time.perf_counter() - began
        with storage.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return Cost(ingest / args.settle, move / args.settle, copy / args.settle, written / args.settle)


def run(storage: Storage, path: Path, args: argparse.Namespace, points: list[int]) -> None:
    machines = args.hosts * (1 + args.containers)
    fleet_second(storage, args.hosts, args.containers, 0, args.per_request)  # the machines
    storage.samples.settle()
    ref = measure(storage, path, args, 1)
    print(
        f"fleet: {args.hosts} hosts x {args.containers} containers = {machines:,} rows a "
        f"second, moved every {args.settle} s"
    )
    print(f"history    1 s: {ref.line()} per fleet-second (reference)")
    columns = tuple(
        t.raw_column(m) for m in ("cpu_percent", "memory_percent", "memory_working_set_bytes")
    )
    filled = 1 + args.settle
    for point in points:
        fill(storage, range(filled, point), columns)
        cost = measure(storage, path, args, max(point, filled))
        filled = max(point, filled) + args.settle
        print(
            f"history {point:4d} s: {cost.line()} per fleet-second; "
            f"ingest + move x{cost.db_thread / ref.db_thread:.2f} the reference"
        )


if __name__ == "__main__":
    main()
