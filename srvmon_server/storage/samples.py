"""Samples and the machine inventory: the write path in, and its reads out.

``ingest``/``ingest_many`` store viewed batches (``srvmon_core.view``) idempotently and keep
the inventory (one row per machine, its newest sample) written behind; ``machines``,
``machine``, ``latest_sample``, ``machine_with_sample`` and ``series`` read them (flushing
the inventory first, so this process never sees the lag); ``roll_up`` maintains the 1 m /
1 h rollups.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa

from srvmon_core.schema import Batch
from srvmon_core.view import BatchView
from srvmon_server.storage import tables as t
from srvmon_server.storage.base import Database
from srvmon_server.storage.clock import from_ms, to_ms
from srvmon_server.storage.ingest import Ingester
from srvmon_server.storage.records import IngestResult, MachineRecord, Series
from srvmon_server.storage.rollup import (
    ROLL_UP_LOCK,
    SKIPPED,
    SLICE_MACHINES,
    RollupPass,
    RollupResult,
    idle,
    plan_pass,
    recompute_slice,
    roll_up,
    roll_up_slice,
    seal_pass,
)
from srvmon_server.storage.series import query_series
from srvmon_server.storage.settle import SettleStep, settle_step

T = TypeVar("T")


class OnDbThread(Protocol):
    """Runs a call on the thread that makes every other storage call, and returns its
    result (``srvmon_server.dbthread.DbThread.call``)."""

    def __call__(self, fn: Callable[[], T], /) -> T: ...


_MACHINE_COLUMNS = [c for c in t.machines.c if c.name != "latest_sample"]
DELETE_BATCH_ROWS = 5000
"""Rows per transaction when a machine's samples and rollups are deleted."""
DELETABLE = (
    (t.samples, "ts_ms"),
    (t.samples_recent, "ts_ms"),
    (t.rollup_1m, "bucket_ms"),
    (t.rollup_1h, "bucket_ms"),
)


def _record(row: sa.Row[Any]) -> MachineRecord:
    return MachineRecord(
        key=row.key,
        kind=row.kind,
        host_id=row.host_id,
        hostname=row.hostname,
        name=row.name,
        image=row.image,
        labels=json.loads(row.labels),
        state=row.state,
        health=row.health,
        restart_count=None if row.restart_count is None else int(row.restart_count),
        first_seen=from_ms(int(row.first_seen_ms)),
        last_seen=from_ms(int(row.last_seen_ms)),
        last_received=None if row.last_received_ms is None else from_ms(int(row.last_received_ms)),
        metrics=json.loads(row.latest_metrics),
    )


class SampleStore:
    """Not safe for concurrent calls: the server runs every call on its one DB thread."""

    def __init__(self, db: Database, *, inventory_flush_ms: int = 0) -> None:
        self._db = db
        self._ingester = Ingester(db.engine, inventory_flush_ms=inventory_flush_ms)
        self._pass: RollupPass | None = None
        self._settle_from = 0

    def ingest(self, batch: Batch | BatchView, received_at: datetime) -> IngestResult:
        """Store one batch; committed when this returns. Replays store 0 and count duplicates."""
        with self._db.guarded("ingest"):
            return self._ingester.ingest(batch, received_at)

    def ingest_many(
        self, batches: Sequence[Batch | BatchView], received_at: datetime
    ) -> list[IngestResult]:
        """Store many batches in ONE transaction (committed when this returns); one result
        per batch, in order, with exact ``stored``/``duplicates`` counts as ``ingest`` gives.

        The fast path inserts the raw rows of all batches in one statement per kind of
        machine; any duplicate sends the whole call down the per-batch careful path (still
        one transaction).
        """
        with self._db.guarded("ingest_many"):
            return self._ingester.ingest_many(batches, received_at)

    def flush_inventory(self, keys: Iterable[str] | None = None) -> None:
        """Write each machine's newest stored sample to its inventory row now, or only
        those of ``keys`` (the reads and ``roll_up`` call this; see ``inventory.py``)."""
        with self._db.guarded("flush_inventory"):
            self._ingester.flush_inventory(keys)

    def settle_step(self) -> SettleStep:
        """SQLite: move the recent rows of the next range of machines into ``samples`` (one
        short transaction; ``settle.py``). A pass walks the machines in id order; call
        again while ``more`` (the server's periodic job does, letting ingest and reads run
        in between). MySQL/MariaDB: nothing to move."""
        if self._db.dialect != "sqlite":
            return SettleStep(moved=0, next_machine_id=None)
        with self._db.writing("settle") as conn:
            step = settle_step(conn, self._settle_from)
        self._settle_from = step.next_machine_id or 0
        return step

    def settle(self) -> int:
        """Move every recent row into ``samples`` (``settle_step`` until a pass ends, from
        where the last one stopped); how many moved."""
        moved = 0
        while True:
            step = self.settle_step()
            moved += step.moved
            if not step.more:
                return moved

    def forget(self) -> None:
        """Drop cached ids and what waits for the inventory (the database was replaced)."""
        self._ingester.forget()

    def roll_up(self, now: datetime | None = None) -> RollupResult:
        """Fold closed minutes (ended 10 s before ``now``, default: the clock) into the
        1 m and 1 h rollups, recomputing them from raw rows; idempotent. One call does at
        most 24 hours of data (``rollup.MAX_CHUNKS_PER_CALL``); call again while the
        result's ``more`` is true.

        Ingest does not maintain rollups; the server calls this every few seconds on its DB
        thread and retention calls it before deleting raw rows. ``series`` is exact without
        it (it reads the not yet rolled-up tail from raw rows). See ``rollup.py``. Processes
        sharing a MySQL/MariaDB database (server replicas) take turns: while one rolls up,
        the others skip (the work is the same for all).
        """
        self._pass = None  # a stepped pass under way: this call redoes its range whole
        self._ingester.pass_ended()
        now_ms = self._db.now_ms() if now is None else to_ms(now)
        nothing = self._idle(now_ms)
        if nothing is not None:
            return nothing
        self.flush_inventory()
        with self._db.try_exclusive(ROLL_UP_LOCK) as mine:
            if not mine:  # another process (a server replica) is rolling up right now
                return SKIPPED
            return self._roll_up_held(now_ms)

    def _idle(self, now_ms: int) -> RollupResult | None:
        """A roll-up's answer when no closed minute waits (``rollup.idle``), else None.
        Asked before the inventory is written: most roll-ups of a server find nothing
        closed (one minute closes every 60 s, the job runs every 5 s), and writing a
        fleet's inventory rows for nothing cost as much as the write-behind saves. What
        waits is written all the same once it is due (ingest writes it then, unless ingest
        stopped), so other processes see the rows at most ``inventory_flush`` late."""
        with self._db.reading("roll_up") as conn:
            nothing = idle(conn, now_ms, self._ingester.waiting_newest_ms)
        if nothing is not None:
            with self._db.guarded("flush_inventory"):
                self._ingester.flush_due_inventory(now_ms)
        return nothing

    def _roll_up_held(self, now_ms: int) -> RollupResult:
        """``roll_up`` once this process holds the roll-up (the lock, on MySQL/MariaDB)."""
        with self._db.guarded("roll_up"):
            return roll_up(self._db.engine, now_ms)

    def roll_up_step(
        self, now: datetime | None = None, machines: int = SLICE_MACHINES
    ) -> RollupResult:
        """``roll_up`` in steps that hold the database thread briefly: each call
        recomputes the closed minutes of ``machines`` machines; call again while the
        result's ``more`` is true (the server's periodic job does, letting ingest and reads
        run in between). On SQLite; processes sharing a MySQL/MariaDB database take turns
        with a lock per call, so there each call is a whole ``roll_up``. A catch-up over
        more than one chunk is one ``roll_up`` call per step too."""
        if self._db.dialect == "mysql":
            return self.roll_up(now)
        if self._pass is None:
            now_ms = self._db.now_ms() if now is None else to_ms(now)
            nothing = self._idle(now_ms)
            if nothing is not None:
                return nothing
            self.flush_inventory()
            with self._db.guarded("roll_up"):
                planned = plan_pass(self._db.engine, now_ms)
            if planned is None:
                return self.roll_up(from_ms(now_ms))
            self._pass = planned
            self._ingester.pass_started(planned.seal)
        step = self._pass
        with self._db.guarded("roll_up"):
            last = roll_up_slice(self._db.engine, step, machines)
        if not last:
            return RollupResult(
                minute_buckets=0,
                start_ms=step.start,
                end_ms=step.end,
                exact_below_ms=None,
                more=True,
            )
        self._pass = None
        self._ingester.pass_ended()
        return step.finished()

    def roll_up_beside(
        self, on_db: OnDbThread, now: datetime | None = None, machines: int = SLICE_MACHINES
    ) -> RollupResult:
        """``roll_up`` from a thread of its own, beside the one that ingests (MySQL/MariaDB:
        ingest and the recompute then run at once, as they do in two server replicas).
        ``on_db(fn)`` runs ``fn`` on the thread that makes every other call and returns its
        result (``DbThread.call``). Call again while the result's ``more`` is true.

        Under the roll-up lock, the DB thread flushes the inventory, plans the pass (taking
        the late marks) and tells the ingester its seal; this thread recomputes the slices
        (one transaction each, the watermark untouched); the DB thread then moves the
        watermark to the seal, leaving the marks made meanwhile (by this process or
        another) as where the next roll-up starts. A catch-up over more than one chunk is
        a whole ``roll_up`` on the DB thread."""
        with self._db.try_exclusive(ROLL_UP_LOCK) as mine:
            if not mine:  # another process (a server replica) is rolling up right now
                return SKIPPED
            now_ms = self._db.now_ms() if now is None else to_ms(now)
            nothing = on_db(lambda: self._idle(now_ms))
            if nothing is not None:
                return nothing
            step = on_db(lambda: self._begin_pass(now_ms))
            if step is None:
                return on_db(lambda: self._roll_up_held(now_ms))
            try:
                while True:
                    with self._db.guarded("roll_up"):
                        if recompute_slice(self._db.engine, step, machines):
                            break
                return on_db(lambda: self._end_pass(step))
            except BaseException:
                with contextlib.suppress(Exception):  # the marks stored meanwhile stay
                    on_db(self._ingester.pass_ended)
                raise

    def _begin_pass(self, now_ms: int) -> RollupPass | None:
        self.flush_inventory()
        with self._db.guarded("roll_up"):
            planned = plan_pass(self._db.engine, now_ms)
        if planned is not None:
            self._ingester.pass_started(planned.seal)
        return planned

    def _end_pass(self, step: RollupPass) -> RollupResult:
        with self._db.writing("roll_up") as conn:
            seal_pass(conn, step)
        self._ingester.pass_ended()
        return step.finished()

    def doomed(self, key: str) -> dict[int, str] | None:
        """The machines deleting ``key`` removes (id → key): a host with all its
        containers, or one container; None for an unknown key."""
        self.flush_inventory()
        m = t.machines.c
        with self._db.reading("doomed_machines") as conn:
            row = conn.execute(sa.select(m.kind, m.host_id).where(m.key == key)).first()
            if row is None:
                return None
            where = m.host_id == row.host_id if row.kind == "host" else m.key == key
            return {int(i): str(k) for i, k in conn.execute(sa.select(m.id, m.key).where(where))}

    def delete_rows(self, ids: Iterable[int], batch_rows: int = DELETE_BATCH_ROWS) -> bool:
        """Delete at most ``batch_rows`` raw or rollup rows of these machines, in one short
        transaction (oldest first, through the primary key); True while rows remain."""
        with self._db.writing("delete_machine_rows") as conn:
            for table, column in DELETABLE:
                for machine_id in ids:
                    ts = table.c[column]
                    bound = conn.execute(
                        sa.select(ts)
                        .where(table.c.machine_id == machine_id)
                        .order_by(ts)
                        .offset(batch_rows - 1)
                        .limit(1)
                    ).scalar()
                    where = table.c.machine_id == machine_id
                    if bound is not None:
                        where = sa.and_(where, ts <= bound)
                    if conn.execute(sa.delete(table).where(where)).rowcount:
                        return True
        return False

    def drop_machines(self, doomed: dict[int, str]) -> None:
        """Delete the machines' rows (and any raw or rollup row ingested meanwhile) and
        their saved alert state, in one transaction; forget them in the ingest caches."""
        ids = set(doomed)
        with self._db.writing("drop_machines") as conn:
            for table, _ in DELETABLE:
                conn.execute(sa.delete(table).where(table.c.machine_id.in_(ids)))
            conn.execute(sa.delete(t.machines).where(t.machines.c.id.in_(ids)))
            keys = list(doomed.values())
            conn.execute(sa.delete(t.alert_machines).where(t.alert_machines.c.key.in_(keys)))
        self._ingester.forget_machines(ids)

    def machines(self, host_id: str | None = None) -> list[MachineRecord]:
        """Every host and container ever seen (or those of one host), hosts first, then
        by key."""
        self.flush_inventory()
        query = sa.select(*_MACHINE_COLUMNS).order_by(t.machines.c.kind.desc(), t.machines.c.key)
        if host_id is not None:
            query = query.where(t.machines.c.host_id == host_id)
        with self._db.reading("machines") as conn:
            rows = conn.execute(query).all()
        return [_record(row) for row in rows]

    def machine(self, key: str) -> MachineRecord | None:
        self.flush_inventory([key])
        with self._db.reading("machine") as conn:
            row = conn.execute(sa.select(*_MACHINE_COLUMNS).where(t.machines.c.key == key)).first()
        return None if row is None else _record(row)

    def latest_sample(self, key: str) -> dict[str, Any] | None:
        """The newest stored sample as its JSON document (the full sample, unstructured,
        with its ``timestamp``), served as it was stored; None for an unknown machine."""
        self.flush_inventory([key])
        with self._db.reading("latest_sample") as conn:
            body = conn.execute(
                sa.select(t.machines.c.latest_sample).where(t.machines.c.key == key)
            ).scalar()
        return None if body is None else dict(json.loads(body))

    def machine_with_sample(self, key: str) -> tuple[MachineRecord, dict[str, Any]] | None:
        """:meth:`machine` and :meth:`latest_sample` in one read (one job on the DB
        thread, so a request for a machine's detail waits once behind the ingest)."""
        self.flush_inventory([key])
        columns = [*_MACHINE_COLUMNS, t.machines.c.latest_sample]
        with self._db.reading("machine_with_sample") as conn:
            row = conn.execute(sa.select(*columns).where(t.machines.c.key == key)).first()
        if row is None:
            return None
        return _record(row), dict(json.loads(row.latest_sample))

    def series(
        self, key: str, metric: str, start: datetime, end: datetime, max_points: int = 1000
    ) -> Series:
        """At most ``max_points`` points of one metric; see ``series.py`` for tier choice."""
        with self._db.reading("series") as conn:
            machine_id = conn.execute(
                sa.select(t.machines.c.id).where(t.machines.c.key == key)
            ).scalar()
            return query_series(
                conn,
                None if machine_id is None else int(machine_id),
                metric,
                start=start,
                end=end,
                max_points=max_points,
            )
