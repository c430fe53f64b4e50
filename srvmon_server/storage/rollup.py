"""Rollup maintenance off the ingest path: 1 m and 1 h buckets recomputed from raw rows.

Ingest only writes raw rows and the inventory. ``roll_up`` catches up: it recomputes every
1 m bucket from the raw rows between a persisted watermark and the newest stored sample
(one ``INSERT … SELECT … GROUP BY`` upsert), then every touched 1 h bucket from the 1 m
rows (a second one). Buckets are *replaced*, never incremented, so a roll-up is idempotent
and may run as often as wanted; replays (which store nothing) cannot double-count.

The watermark (table ``rollup_progress``, one row; ``series`` reads it too):

- ``exact_below_ms`` — rollups are exact for raw rows older than this, always the start of
  a minute. ``roll_up(now)`` recomputes the minutes from there to the last *closed* one
  (ended ``GRACE_MS`` before the newest stored sample, or ``IDLE_MS`` before ``now`` when
  nothing newer arrives; see ``seal_ms``) and moves the watermark past it, so in the steady
  state every minute is aggregated once. The open minute is never in the rollup tables:
  ``series`` reads everything from the watermark on from raw rows and merges it.
- ``dirty_from_ms`` — the oldest sample ingest stored below ``exact_below_ms`` since the last
  roll-up (a late batch), or, before the first roll-up of a new database (watermark NULL),
  the oldest sample stored at all. Ingest marks it in its own transaction (``mark_late``:
  one conditional UPDATE that reads the watermark as committed, not a cached copy, so a
  sample stored by one server replica below a watermark another replica just moved is
  marked all the same), so a crash between ingest and roll-up loses nothing.

A roll-up *claims* the marks it is about to fold in (``claim``): in the transaction that
reads them, the watermark moves down to where the recompute starts and the marks are
cleared, so a mark made from then on (by this process or another) stays for the next
roll-up, and a roll-up cut short leaves a watermark that is still true. While this
process's stepped pass is under way, ingest also marks a sample older than the pass's
seal; while any process holds the ``ROLL_UP_LOCK`` (MySQL/MariaDB), whose seal is not
known here, it marks every transaction's oldest sample: a mark at or above the watermark
the pass leaves costs nothing, and one below it is the late sample the pass may have
missed.

The server's periodic job rolls up in steps (``plan_pass`` / ``roll_up_slice`` through
``SampleStore.roll_up_step``): a closed range a slice of machines at a time, so ingest and
reads run in between; ``RollupPass`` says how a late sample is kept during a pass.

Raw rows are scanned per machine through the primary key (machine_id, ts_ms): the machines
considered are those whose newest sample is not older than the recompute start. A range
without raw rows is skipped, not walked (one primary-key probe per machine finds the next
sample), and one call does at most ``MAX_CHUNKS_PER_CALL`` chunks: a late mark far in the
past (a sample dated 1970 stored before ingest checked timestamps) costs a few probes, not
a walk of decades that held the database thread for minutes.
"""

from __future__ import annotations

from collections import defaultdict
from functools import cache

import sqlalchemy as sa
from attrs import define, frozen

from srvmon_core.metrics import CONTAINER_METRIC_NAMES, HOST_METRIC_NAMES
from srvmon_server.storage import tables as t
from srvmon_server.storage.settle import raw_tables

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
CHUNK_MS = 6 * HOUR_MS
"""A catch-up over a long range commits every 6 hours of data (bounded transactions)."""
MAX_CHUNKS_PER_CALL = 4
"""At most this many chunks (24 hours of data) per call: a call is bounded whatever the
input, so ingest and other work queued on the DB thread wait for one pass at most; the
caller calls again while ``RollupResult.more``."""
PROGRESS_ID = 1
ROLL_UP_LOCK = "srvmon.roll_up"
"""The lock (``GET_LOCK`` on MySQL/MariaDB) a process holds while it rolls up; processes
sharing the database take turns, and ingest elsewhere sees a pass under way by it."""
GRACE_MS = 10_000
"""A minute is closed (rolled up) once the newest stored sample is this far past its end:
batches usually arrive within seconds of each other; later ones take the late path."""
IDLE_MS = 300_000
SLICE_MACHINES = 1_000
"""A stepped roll-up (``roll_up_slice``) recomputes this many machines per step: at 30
containers a host, a closed minute of 500 hosts is 16 steps of ~0.15 s instead of one hold
of the database thread of ~2.4 s that ingest and reads wait behind."""
"""When no newer sample arrives (a quiet fleet), a minute closes this long after its end
by the clock."""


def seal_ms(now_ms: int, newest_ms: int) -> int:
    """Start of the oldest minute that stays open: minutes before it are closed.

    Closing follows the data (the newest sample stored), not the clock alone: when ingest
    runs behind (a backlog after an outage, a replica catching up, a server that cannot keep
    up), every batch would otherwise arrive "late" for minutes the clock has closed, and
    each roll-up would recompute them again, slowing the catch-up it waits for. A clock
    ``IDLE_MS`` past the newest sample closes minutes of a quiet fleet all the same.
    """
    data_time = min(now_ms, max(newest_ms, now_ms - IDLE_MS))
    seal = data_time - GRACE_MS
    return seal - seal % MINUTE_MS


@frozen
class RollupResult:
    """What one ``roll_up`` call recomputed."""

    minute_buckets: int
    """1 m rollup rows written (inserted or replaced)."""
    start_ms: int | None
    """First recomputed instant (None: nothing to do)."""
    end_ms: int | None
    """Newest raw sample considered."""
    exact_below_ms: int | None
    """The watermark after the call."""
    more: bool = False
    """The call stopped at its chunk budget: closed minutes remain to roll up."""


SKIPPED = RollupResult(minute_buckets=0, start_ms=None, end_ms=None, exact_below_ms=None)
"""What a roll-up call returns when another process (a server replica) is rolling up."""


CARRIED: dict[str, frozenset[str]] = {
    "host": HOST_METRIC_NAMES,
    "container": CONTAINER_METRIC_NAMES,
}
"""The metrics a machine of each kind can carry; a bucket's columns of any other metric
are written as aggregating its NULLs gives them (n 0, sum 0, min and max NULL), without
aggregating. A container carries 10 of the 28 metrics: its buckets cost a third of the
aggregates."""


_RAW_COLUMNS = ", ".join(c.name for c in t.samples.c)
_RAW_FROM = {
    "mysql": "samples",
    "sqlite": (
        f"(SELECT {_RAW_COLUMNS} FROM samples UNION ALL SELECT {_RAW_COLUMNS} FROM samples_recent)"
    ),
}
"""Every raw row (``settle.raw_rows``), as the roll-up's SQL text names them: columns by
name, since a metric column added to an older database comes last in it."""


@cache
def _minute_sql(dialect: str, kind: str) -> str:
    """Recompute 1 m buckets of the listed machines (all of ``kind``) between :lo and :hi
    from raw rows."""
    carried = CARRIED.get(kind, frozenset(t.METRIC_NAMES))
    columns: list[str] = ["machine_id", "bucket_ms"]
    selects: list[str] = ["machine_id", f"ts_ms - ts_ms % {MINUTE_MS} AS bucket"]
    for metric in t.METRIC_NAMES:
        raw = t.raw_column(metric)
        columns.extend(t.rollup_columns(metric))
        if metric in carried:
            selects += [f"COUNT({raw})", f"COALESCE(SUM({raw}), 0)", f"MIN({raw})", f"MAX({raw})"]
        else:
            selects += _NOT_CARRIED
    source = (
        f"SELECT {', '.join(selects)} FROM {_RAW_FROM[dialect]} "
        "WHERE machine_id IN :ids AND ts_ms >= :lo AND ts_ms <= :hi "
        "GROUP BY machine_id, bucket"
    )
    return _replace_into(dialect, t.rollup_1m.name, columns, source)


@cache
def _hour_sql(dialect: str, kind: str) -> str:
    """Recompute 1 h buckets of the listed machines (all of ``kind``) between :lo and :hi
    from 1 m rows."""
    carried = CARRIED.get(kind, frozenset(t.METRIC_NAMES))
    columns: list[str] = ["machine_id", "bucket_ms"]
    selects: list[str] = ["machine_id", f"bucket_ms - bucket_ms % {HOUR_MS} AS bucket"]
    for metric in t.METRIC_NAMES:
        n, total, low, high = t.rollup_columns(metric)
        columns += [n, total, low, high]
        if metric in carried:
            selects += [f"SUM({n})", f"SUM({total})", f"MIN({low})", f"MAX({high})"]
        else:
            selects += _NOT_CARRIED
    source = (
        f"SELECT {', '.join(selects)} FROM {t.rollup_1m.name} "
        "WHERE machine_id IN :ids AND bucket_ms >= :lo AND bucket_ms <= :hi "
        "GROUP BY machine_id, bucket"
    )
    return _replace_into(dialect, t.rollup_1h.name, columns, source)


_NOT_CARRIED = ["0", "0", "NULL", "NULL"]
"""n, sum, min, max of a metric no row carries: what COUNT, COALESCE(SUM, 0), MIN and MAX
of NULLs give, and the columns' defaults."""


def _replace_into(dialect: str, table: str, columns: list[str], source: str) -> str:
    names = ", ".join(columns)
    values = columns[2:]
    if dialect == "mysql":
        sets = ", ".join(f"{c} = VALUES({c})" for c in values)
        return f"INSERT INTO {table} ({names}) {source} ON DUPLICATE KEY UPDATE {sets}"
    sets = ", ".join(f"{c} = excluded.{c}" for c in values)
    return (
        f"INSERT INTO {table} ({names}) {source} "
        f"ON CONFLICT (machine_id, bucket_ms) DO UPDATE SET {sets}"
    )


@cache
def _statement(sql: str) -> sa.TextClause:
    return sa.text(sql).bindparams(sa.bindparam("ids", expanding=True))


def _recompute(conn: sa.Connection, machines: list[tuple[int, str]], lo: int, hi: int) -> int:
    """Recompute the 1 m buckets of ``machines`` ((id, kind) pairs) in ``[lo, hi]`` from
    raw rows, then the 1 h buckets they touch, one kind at a time; the count of 1 m rows
    written."""
    dialect = "mysql" if conn.dialect.name in ("mysql", "mariadb") else "sqlite"
    kinds: defaultdict[str, list[int]] = defaultdict(list)
    for ident, kind in machines:
        kinds[kind].append(ident)
    written = 0
    for kind, ids in sorted(kinds.items()):
        bounds = {"ids": ids, "lo": lo, "hi": hi}
        written += int(conn.execute(_statement(_minute_sql(dialect, kind)), bounds).rowcount)
        hour_bounds = {**bounds, "lo": lo - lo % HOUR_MS}
        conn.execute(_statement(_hour_sql(dialect, kind)), hour_bounds)
    return written


def ensure_progress(conn: sa.Connection) -> None:
    """Create the watermark row when missing.

    A database written before roll-ups moved off ingest kept its rollups exact at ingest:
    its watermark starts just after the newest stored sample. A new database starts empty.
    """
    found = conn.execute(
        sa.select(t.rollup_progress.c.id).where(t.rollup_progress.c.id == PROGRESS_ID)
    ).first()
    if found is not None:
        return
    newest = conn.execute(sa.select(sa.func.max(t.machines.c.latest_ts_ms))).scalar()
    conn.execute(
        sa.insert(t.rollup_progress).values(
            id=PROGRESS_ID,
            exact_below_ms=None if newest is None else int(newest) + 1,
            dirty_from_ms=None,
        )
    )


def read_watermark(conn: sa.Connection) -> tuple[int | None, int | None]:
    """(exact_below_ms, dirty_from_ms) of the progress row."""
    row = conn.execute(
        sa.select(t.rollup_progress.c.exact_below_ms, t.rollup_progress.c.dirty_from_ms).where(
            t.rollup_progress.c.id == PROGRESS_ID
        )
    ).first()
    if row is None:
        return None, None
    below, dirty = row
    return (None if below is None else int(below)), (None if dirty is None else int(dirty))


_MARK_LATE = (
    "UPDATE rollup_progress SET dirty_from_ms = "
    "CASE WHEN dirty_from_ms IS NULL OR dirty_from_ms > :ts THEN :ts ELSE dirty_from_ms END "
    f"WHERE id = {PROGRESS_ID} AND (:in_pass = 1 OR exact_below_ms IS NULL OR exact_below_ms > :ts"
)
MARK_LATE_SQL = {
    "sqlite": sa.text(_MARK_LATE + ")"),
    "mysql": sa.text(_MARK_LATE + f" OR IS_USED_LOCK('{ROLL_UP_LOCK}') IS NOT NULL)"),
}
"""``mark_late`` per dialect: the row is changed only when the sample is below the
watermark as committed now, or a roll-up is under way (this process's: ``in_pass``; on
MySQL/MariaDB any process's, by its lock)."""


def mark_late(conn: sa.Connection, dialect: str, ts_ms: int, *, in_pass: bool) -> None:
    """Mark ``ts_ms`` (a transaction's oldest stored sample) for the next roll-up when it
    is late: below the committed watermark, or stored while a roll-up is under way
    (``in_pass``: this process's stepped pass has not moved the watermark yet). A no-op
    UPDATE otherwise; ingest runs it last, just before its commit."""
    conn.execute(MARK_LATE_SQL[dialect], {"ts": ts_ms, "in_pass": int(in_pass)})


def read_watermark_of(engine: sa.Engine) -> tuple[int | None, int | None]:
    with engine.connect() as conn:
        return read_watermark(conn)


def claim(conn: sa.Connection) -> int | None:
    """Where a roll-up starts (the minute of the older of the watermark and the oldest late
    mark; None when nothing was ever stored), read with the progress row locked (MySQL).
    The caller either does nothing or calls ``take_marks`` in the same transaction."""
    row = conn.execute(
        sa.select(t.rollup_progress.c.exact_below_ms, t.rollup_progress.c.dirty_from_ms)
        .where(t.rollup_progress.c.id == PROGRESS_ID)
        .with_for_update()
    ).first()
    known = [] if row is None else [int(v) for v in row if v is not None]
    if not known:
        return None
    start = min(known)
    return start - start % MINUTE_MS


def idle(conn: sa.Connection, now_ms: int, waiting_newest_ms: int | None) -> RollupResult | None:
    """What a roll-up at ``now_ms`` returns when no closed minute waits for it (nothing to
    recompute, nothing changed), else None; read without taking anything.

    ``waiting_newest_ms``: the newest sample whose inventory row this process has not
    written yet (``Ingester.waiting_newest_ms``). Counted as stored, so the answer is the
    one a roll-up gives after writing the inventory, without writing it: the server asks
    every few seconds, and a full inventory write is a fleet's worth of rows.
    """
    below, dirty = read_watermark(conn)
    known = [v for v in (below, dirty) if v is not None]
    stored = conn.execute(sa.select(sa.func.max(t.machines.c.latest_ts_ms))).scalar()
    newest = [int(v) for v in (stored, waiting_newest_ms) if v is not None]
    if known and newest:
        start = min(known) - min(known) % MINUTE_MS
        if seal_ms(now_ms, max(newest)) > start:
            return None
    return RollupResult(minute_buckets=0, start_ms=None, end_ms=None, exact_below_ms=below)


def take_marks(conn: sa.Connection, start: int) -> None:
    """The roll-up about to recompute from ``start`` takes the late marks: the watermark
    moves down to ``start`` (rollups are exact below it, and stay so if the roll-up is cut
    short) and the marks are cleared; a sample marked from now on stays for the next."""
    conn.execute(
        sa.update(t.rollup_progress)
        .where(t.rollup_progress.c.id == PROGRESS_ID)
        .values(exact_below_ms=start, dirty_from_ms=None)
    )


def _move_watermark(conn: sa.Connection, below: int) -> None:
    """Rollups are exact below ``below`` now (late marks made meanwhile stay)."""
    conn.execute(
        sa.update(t.rollup_progress)
        .where(t.rollup_progress.c.id == PROGRESS_ID)
        .values(exact_below_ms=below)
    )


def _next_sample_ms(conn: sa.Connection, lo: int, hi: int) -> int | None:
    """The oldest raw sample in ``[lo, hi]`` of any machine: one primary-key probe per
    machine whose newest sample is not older than ``lo`` (per raw table on SQLite)."""
    m = t.machines.c
    found: list[int] = []
    for table in raw_tables(conn.dialect.name):
        s = table.c
        first = (
            sa.select(sa.func.min(s.ts_ms))
            .where(s.machine_id == m.id, s.ts_ms >= lo, s.ts_ms <= hi)
            .scalar_subquery()
        )
        oldest = conn.execute(sa.select(sa.func.min(first)).where(m.latest_ts_ms >= lo)).scalar()
        if oldest is not None:
            found.append(int(oldest))
    return min(found, default=None)


def roll_up(
    engine: sa.Engine, now_ms: int, *, max_chunks: int = MAX_CHUNKS_PER_CALL
) -> RollupResult:
    """Recompute rollups of closed minutes from the watermark on, at most ``max_chunks``
    chunks of data per call; see module doc."""
    with engine.begin() as conn:
        start = claim(conn)
        newest = conn.execute(sa.select(sa.func.max(t.machines.c.latest_ts_ms))).scalar()
        seal = seal_ms(now_ms, now_ms if newest is None else int(newest))
        if start is None or newest is None or seal <= start:
            below, _ = read_watermark(conn)
            return RollupResult(minute_buckets=0, start_ms=None, end_ms=None, exact_below_ms=below)
        take_marks(conn, start)
    end = min(seal - 1, int(newest))
    written = 0
    chunk_start = start
    chunks = 0
    more = False
    while True:
        with engine.begin() as conn:
            found = _next_sample_ms(conn, chunk_start, end) if chunk_start <= end else None
            if found is not None:  # skip a stretch without samples at once
                chunk_start = max(chunk_start, found - found % MINUTE_MS)
            chunk_end = min(end, chunk_start - chunk_start % CHUNK_MS + CHUNK_MS - 1)
            m = t.machines.c
            ids = [
                (int(i), str(kind))
                for i, kind in conn.execute(
                    sa.select(m.id, m.kind).where(m.latest_ts_ms >= chunk_start)
                )
            ]
            if found is not None and ids and chunk_start <= chunk_end:
                written += _recompute(conn, ids, chunk_start, chunk_end)
            chunks += 1
            last = found is None or chunk_end >= end
            more = not last and chunks >= max_chunks
            below = seal if last else chunk_end + 1
            _move_watermark(conn, below)
        if last or more:
            break
        chunk_start = chunk_end + 1
    return RollupResult(
        minute_buckets=written, start_ms=start, end_ms=end, exact_below_ms=below, more=more
    )


@define
class RollupPass:
    """One closed range rolled up a slice of machines at a time (``roll_up_slice``).

    Planning takes the late marks (``take_marks``); the watermark then stays where the
    range starts until the last slice moves it to ``seal``. Meanwhile the ingester treats
    a sample older than ``seal`` as late (``Ingester.pass_started``) and marks it, so a sample
    that lands in a machine already done is recomputed by the next roll-up, not lost. A
    crash in between loses nothing either: the stored watermark and marks still say where
    to start.
    """

    start: int
    end: int
    seal: int
    after_id: int = -1
    written: int = 0

    def finished(self) -> RollupResult:
        """What the pass did, once its last slice is done (the watermark is at its seal)."""
        return RollupResult(
            minute_buckets=self.written,
            start_ms=self.start,
            end_ms=self.end,
            exact_below_ms=self.seal,
        )


def plan_pass(engine: sa.Engine, now_ms: int) -> RollupPass | None:
    """The stepped pass for the closed minutes from the watermark on, or None when the
    range is empty, has no raw rows, or spans more than one chunk (a catch-up, which
    ``roll_up`` does chunk by chunk, skipping what has no rows)."""
    with engine.begin() as conn:
        start = claim(conn)
        newest = conn.execute(sa.select(sa.func.max(t.machines.c.latest_ts_ms))).scalar()
        if start is None or newest is None:
            return None
        seal = seal_ms(now_ms, int(newest))
        end = min(seal - 1, int(newest))
        if seal <= start or start - start % CHUNK_MS + CHUNK_MS - 1 < end:
            return None
        found = _next_sample_ms(conn, start, end)
        if found is None:
            return None
        step = RollupPass(start=max(start, found - found % MINUTE_MS), end=end, seal=seal)
        take_marks(conn, step.start)
    return step


def roll_up_slice(engine: sa.Engine, step: RollupPass, machines: int) -> bool:
    """Recompute the pass's range for its next ``machines`` machines (in id order); True
    when that was the last slice: the watermark then moves to the pass's seal (late marks
    made during the pass stay for the next roll-up)."""
    with engine.begin() as conn:
        last = _recompute_slice(conn, step, machines)
        if last:
            seal_pass(conn, step)
    return last


def recompute_slice(engine: sa.Engine, step: RollupPass, machines: int) -> bool:
    """Recompute the pass's range for its next ``machines`` machines in one transaction,
    leaving the watermark alone; True when no machine is left (then ``seal_pass``). What a
    pass run beside the ingest thread does (``SampleStore.roll_up_beside``)."""
    with engine.begin() as conn:
        return _recompute_slice(conn, step, machines)


def _recompute_slice(conn: sa.Connection, step: RollupPass, machines: int) -> bool:
    m = t.machines.c
    ids = [
        (int(i), str(kind))
        for i, kind in conn.execute(
            sa.select(m.id, m.kind)
            .where(m.latest_ts_ms >= step.start, m.id > step.after_id)
            .order_by(m.id)
            .limit(machines)
        )
    ]
    if ids:
        step.written += _recompute(conn, ids, step.start, step.end)
        step.after_id = ids[-1][0]
    return len(ids) < machines


def seal_pass(conn: sa.Connection, step: RollupPass) -> None:
    """Move the watermark to the pass's seal once every slice is done; the late marks
    made during the pass (by any process) are where the next roll-up starts from."""
    _move_watermark(conn, step.seal)
