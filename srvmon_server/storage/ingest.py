"""The write path: batches in, one short transaction, idempotent per (machine, timestamp).

Per call: look up (or create) machine ids (cached), insert the raw rows of every batch with
an insert-ignore per kind of machine (on SQLite into ``samples_recent``, ``settle.py``),
and — when the rowcount shows every row was new — hand the stored rows to the inventory
buffer (``inventory.py``), which refreshes each machine's inventory row from its newest
sample, in the same transaction, once its write-behind delay has passed.
Rollups are not touched here: ``rollup.roll_up`` recomputes them from raw rows later. The
transaction's oldest sample is marked for it in ``rollup_progress`` when it is late (below
the watermark as committed, or stored while a roll-up is under way; ``rollup.mark_late``,
the transaction's last statement).

When the rowcount shows a duplicate (a replay, or one machine twice at one timestamp in
the call), the transaction is undone and redone batch by batch on the careful path, still
in one transaction: read which rows exist, write only the others. A replayed batch
therefore stores 0 rows. The SQL text lives in ``write_sql.py``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from srvmon_core.schema import Batch
from srvmon_core.view import BatchView, MachineView, batch_view
from srvmon_server.storage import tables as t
from srvmon_server.storage.clock import to_ms
from srvmon_server.storage.inventory import (
    InventoryBuffer,
    Staged,
    labels_text,
    latest_sample_document,
)
from srvmon_server.storage.records import IngestResult
from srvmon_server.storage.rollup import mark_late
from srvmon_server.storage.settle import raw_rows
from srvmon_server.storage.write_sql import (
    insert_samples,
    insert_samples_head,
    numeric_rows,
    sqlite_chunks,
)

MYSQL_ROWS_PER_STATEMENT = 2000
"""Raw rows per MySQL insert statement (about 200 KB: far below any max_allowed_packet)."""


def viewed(batch: Batch | BatchView) -> BatchView:
    """The batch's machine view (computed here only when the caller has none)."""
    return batch if isinstance(batch, BatchView) else batch_view(batch)


def raw_row(machine_id: int, ts_ms: int, metrics: dict[str, float]) -> dict[str, Any]:
    """A ``samples`` row as a dict (for SQLAlchemy Core; benchmarks use it as the ceiling)."""
    row: dict[str, Any] = {"machine_id": machine_id, "ts_ms": ts_ms}
    for metric in t.METRIC_NAMES:
        row[t.raw_column(metric)] = metrics.get(metric)
    return row


_KNOWN_METRICS = frozenset(t.METRIC_NAMES)


def carried_metrics(parts: Iterable[MachineView]) -> tuple[str, ...]:
    """The sorted union of known metrics the samples carry: the columns of the one insert."""
    names: set[str] = set()
    for part in parts:
        names.update(part.metrics)
    return tuple(sorted(names & _KNOWN_METRICS))


def raw_values(
    machine_id: int, ts_ms: int, metrics: dict[str, float], names: tuple[str, ...]
) -> tuple[Any, ...]:
    """Parameters of ``write_sql.insert_samples(names, 1)`` for one sample (a metric
    this sample lacks is NULL)."""
    return (machine_id, ts_ms, *map(metrics.get, names))


class _ReplaySeen(Exception):
    """Some sample of the batch was already stored: undo and take the careful path."""


class Ingester:
    """The write path. Keeps a key → id cache (ids never change once assigned).

    Fast path (the normal case, every sample new): insert all raw rows with insert-ignore
    (one statement per kind of machine, naming the metrics that kind carries); when the
    rowcount equals the number of rows, stage them for the inventory (one more statement
    when it is due), then commit. When the rowcount is lower, some (machine, ts) was
    already stored (a replay): the transaction is rolled back and redone on the careful
    path, which first reads which rows exist and writes only the others.

    ``inventory_flush_ms``: how long a machine's inventory row may lag its newest stored
    sample (0: refreshed in every transaction).
    """

    def __init__(self, engine: sa.Engine, *, inventory_flush_ms: int = 0) -> None:
        self._engine = engine
        self._dialect = "mysql" if engine.dialect.name in ("mysql", "mariadb") else "sqlite"
        self._inventory = InventoryBuffer(self._dialect, inventory_flush_ms)
        self._ids: dict[str, int] = {}
        self._pending_seal: int | None = None

    def pass_started(self, seal_ms: int) -> None:
        """A stepped roll-up of this process (``rollup.RollupPass``) is under way up to
        ``seal_ms``: until it ends, a sample older than that is late too."""
        self._pending_seal = seal_ms

    def pass_ended(self) -> None:
        self._pending_seal = None

    def _machine_ids_many(
        self,
        conn: sa.Connection,
        work: list[tuple[list[MachineView], int]],
        received_ms: int,
    ) -> list[list[str]]:
        """Look up unknown machines, create the missing ones (one statement) from their
        first sample in ``work``; per batch, the keys it created, in sample order."""
        created: list[list[str]] = [[] for _ in work]
        unknown = {p.key for parts, _ in work for p in parts if p.key not in self._ids}
        if not unknown:
            return created
        found = conn.execute(
            sa.select(t.machines.c.key, t.machines.c.id).where(t.machines.c.key.in_(unknown))
        )
        self._ids.update({key: int(ident) for key, ident in found})
        firsts: dict[str, tuple[MachineView, int]] = {}
        for index, (parts, ts_ms) in enumerate(work):
            for part in parts:
                if part.key not in self._ids and part.key not in firsts:
                    firsts[part.key] = (part, ts_ms)
                    created[index].append(part.key)
        if not firsts:
            return created
        conn.execute(
            sa.insert(t.machines),
            [
                {
                    "key": part.key,
                    "kind": part.kind,
                    "host_id": part.host_id,
                    "hostname": part.hostname,
                    "name": part.name,
                    "image": part.image,
                    "labels": labels_text(part.labels),
                    "state": part.state,
                    "health": part.health,
                    "restart_count": part.restart_count,
                    "first_seen_ms": ts_ms,
                    "last_seen_ms": ts_ms,
                    "last_received_ms": received_ms,
                    "latest_ts_ms": ts_ms,
                    "latest_metrics": json.dumps(part.metrics),
                    "latest_sample": json.dumps(latest_sample_document(part)),
                }
                for part, ts_ms in firsts.values()
            ],
        )
        ids = conn.execute(
            sa.select(t.machines.c.key, t.machines.c.id).where(t.machines.c.key.in_(list(firsts)))
        )
        self._ids.update({key: int(ident) for key, ident in ids})
        return created

    def forget_machines(self, ids: set[int]) -> None:
        """These machines were deleted: drop their cached ids and waiting inventory rows
        (a machine that reports again gets a new row)."""
        for key in [k for k, i in self._ids.items() if i in ids]:
            del self._ids[key]
        self._inventory.discard(ids)

    def forget(self) -> None:
        """Drop the id cache and what waits for the inventory (after a reconnect to a
        different database, in tests)."""
        self._ids.clear()
        self._inventory.drop()

    def ingest(self, batch: Batch | BatchView, received_at: datetime) -> IngestResult:
        """Store one batch in one transaction (``ingest_many`` of one)."""
        return self.ingest_many([batch], received_at)[0]

    def ingest_many(
        self, batches: Sequence[Batch | BatchView], received_at: datetime
    ) -> list[IngestResult]:
        """Store every batch in one transaction; one result per batch, in order."""
        views = [viewed(b) for b in batches]
        work = [(list(v.machines), to_ms(v.timestamp)) for v in views]
        received_ms = to_ms(received_at)
        if not any(parts for parts, _ in work):
            return [IngestResult(stored=0, duplicates=0, new_machines=[]) for _ in work]
        try:
            return self._write_many(work, received_ms)
        except BaseException:
            self._ids.clear()  # ids cached inside a rolled-back transaction are not real
            raise

    @property
    def waiting_newest_ms(self) -> int | None:
        """The newest stored sample whose inventory row is not written yet (None: none)."""
        return self._inventory.newest_ms

    def flush_due_inventory(self, now_ms: int) -> None:
        """Write what waits when it is due by ``now_ms`` (ingest stopped before it wrote)."""
        if self._inventory.due(now_ms):
            self.flush_inventory()

    def flush_inventory(self, keys: Iterable[str] | None = None) -> None:
        """Write every machine's newest stored sample to its inventory row now (of the
        machines ``keys`` only, when given)."""
        if not self._inventory.waiting:
            return
        if keys is not None:
            ids = [self._ids[k] for k in keys if k in self._ids]
            with self._engine.begin() as conn:
                written = self._inventory.flush_some(conn, ids)
            self._inventory.forget_written(written)
            return
        with self._engine.begin() as conn:
            staged = self._inventory.flush(conn)
        self._inventory.adopt(staged)

    def _write_many(
        self, work: list[tuple[list[MachineView], int]], received_ms: int
    ) -> list[IngestResult]:
        new_keys: list[list[str]] = []
        try:
            with self._engine.begin() as conn:
                new_keys = self._machine_ids_many(conn, work, received_ms)
                rows = [(self._ids[p.key], p, ts_ms) for parts, ts_ms in work for p in parts]
                if self._insert_rows(conn, rows) != len(rows):
                    raise _ReplaySeen
                staged = self._fold(conn, rows, received_ms)
            self._inventory.adopt(staged)
            return [
                IngestResult(stored=len(parts), duplicates=0, new_machines=keys)
                for (parts, _), keys in zip(work, new_keys, strict=True)
            ]
        except _ReplaySeen:
            for keys in new_keys:  # their rows were rolled back with the transaction
                for key in keys:
                    del self._ids[key]
        with self._engine.begin() as conn:
            results: list[IngestResult] = []
            stored: list[tuple[int, MachineView, int]] = []
            for parts, ts_ms in work:
                result, fresh = self._store_carefully(conn, parts, ts_ms, received_ms)
                results.append(result)
                stored.extend(fresh)
            settled = self._fold(conn, stored, received_ms) if stored else None
        if settled is not None:
            self._inventory.adopt(settled)
        return results

    def _store_carefully(
        self, conn: sa.Connection, parts: list[MachineView], ts_ms: int, received_ms: int
    ) -> tuple[IngestResult, list[tuple[int, MachineView, int]]]:
        """Read which samples of one batch exist, insert only the others (in ``conn``);
        return the result and the rows stored."""
        new_keys = self._machine_ids_many(conn, [(parts, ts_ms)], received_ms)[0]
        ids = [self._ids[p.key] for p in parts]
        raw = raw_rows(self._dialect)
        present = {
            int(row[0])
            for row in conn.execute(
                sa.select(raw.c.machine_id).where(raw.c.ts_ms == ts_ms, raw.c.machine_id.in_(ids))
            )
        }
        fresh = [(i, p, ts_ms) for i, p in zip(ids, parts, strict=True) if i not in present]
        if fresh:
            self._insert_rows(conn, fresh)
        result = IngestResult(
            stored=len(fresh), duplicates=len(parts) - len(fresh), new_machines=new_keys
        )
        return result, fresh

    def _insert_rows(self, conn: sa.Connection, rows: list[tuple[int, MachineView, int]]) -> int:
        """Insert-ignore raw rows of any timestamps; return how many were new.

        Hosts and containers go in separate statements, each naming only the metrics its
        kind carries: a container row then binds no NULL for every host figure (with
        all of a host's 22 metrics and a container's 10 carried, 12 parameters per
        container row instead of 30, each bound by sqlite3 holding the GIL).
        SQLite: multi-row statements of up to 1,024 rows (``write_sql.sqlite_chunks``;
        sqlite3 binds the parameters in C, and lets go of the interpreter lock once per
        statement rather than once per row). MySQL: multi-row INSERT IGNORE statements
        with the numbers rendered as literals (``write_sql.numeric_rows``),
        ``MYSQL_ROWS_PER_STATEMENT`` rows each.
        """
        hosts = [row for row in rows if row[1].kind == "host"]
        containers = [row for row in rows if row[1].kind != "host"] if hosts else rows
        return sum(self._insert_kind(conn, kind) for kind in (hosts, containers) if kind)

    def _insert_kind(self, conn: sa.Connection, rows: list[tuple[int, MachineView, int]]) -> int:
        names = carried_metrics(p for _, p, _ in rows)
        values = [raw_values(i, ts_ms, p.metrics, names) for i, p, ts_ms in rows]
        if self._dialect != "mysql":
            chunks = sqlite_chunks(values, 2 + len(names), functools.partial(insert_samples, names))
            return sum(int(conn.exec_driver_sql(sql, params).rowcount) for sql, params in chunks)
        head = insert_samples_head(names)
        inserted = 0
        for start in range(0, len(values), MYSQL_ROWS_PER_STATEMENT):
            chunk = values[start : start + MYSQL_ROWS_PER_STATEMENT]
            inserted += int(conn.exec_driver_sql(head + numeric_rows(chunk)).rowcount)
        return inserted

    def _fold(
        self, conn: sa.Connection, rows: list[tuple[int, MachineView, int]], received_ms: int
    ) -> Staged:
        """Stage the stored rows for the inventory (written now when due; see
        ``inventory.py``), then mark the oldest sample for the roll-up when it is late: the
        progress row is locked from there to the commit only."""
        staged = self._inventory.stage(conn, rows, received_ms)
        oldest = min(ts_ms for _, _, ts_ms in rows)
        seal = self._pending_seal
        mark_late(conn, self._dialect, oldest, in_pass=seal is not None and oldest < seal)
        return staged
