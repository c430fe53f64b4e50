"""Write-behind for the machine inventory: the newest sample of each machine, held briefly.

Every stored sample makes its machine's inventory row (``latest_sample``,
``latest_metrics``, ``last_seen_ms``, …) out of date. Rewriting that row for every sample
cost more than storing the sample itself (the JSON of the whole sample, and on MariaDB a
wide upsert), so the ingester keeps the newest stored sample per machine here and writes
them all in one statement once ``flush_after_ms`` of received time has passed since the
oldest one waiting, inside the transaction of the batch that makes it due.

Nothing is lost or reordered by waiting: raw samples are committed at once; only the
inventory row lags, by at most ``flush_after_ms``. ``Storage`` flushes before it reads the
inventory (a read of one machine writes that machine's row only), on a roll-up that has a
closed minute to fold, and at close, so readers in the same process always see the newest
sample. A crash loses only the lag (the next
sample of each machine refreshes its row). ``flush_after_ms = 0`` writes through.

Only committed work is kept: ``stage`` returns the transaction's part, and the caller
``adopt``s it once that transaction has committed (a rolled-back batch leaves the buffer as
it was). Staging copies nothing that waits, except in the transaction that writes it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from attrs import frozen

from srvmon_core.codec import unstructure
from srvmon_core.view import MachineView
from srvmon_server import wirejson
from srvmon_server.storage.clock import iso
from srvmon_server.storage.write_sql import refresh_inventory

Pending = dict[int, tuple[MachineView, int, int]]
"""machine id → (its newest stored sample, that sample's ts_ms, when it was received)."""


@frozen
class Staged:
    """One transaction's part, applied by ``adopt`` once that transaction has committed."""

    rows: Pending
    """The newest of the transaction's stored samples per machine."""
    written: bool
    """The transaction wrote every waiting row and ``rows`` to the table."""
    received_ms: int


def latest_sample_document(part: MachineView, stamp: str | None = None) -> dict[str, Any]:
    """The inventory's ``latest_sample``: the full sample, unstructured, with its
    ``timestamp`` (``stamp``: that timestamp as ``iso`` writes it, when the caller has it;
    built only when the inventory row is written)."""
    document: dict[str, Any] = unstructure(part.sample)
    document["timestamp"] = iso(part.timestamp) if stamp is None else stamp
    return document


def labels_text(labels: dict[str, str]) -> str:
    """The ``labels`` column: the labels as JSON with sorted keys."""
    return json.dumps(labels, sort_keys=True) if labels else "{}"


def inventory_values(
    dialect: str,
    machine_id: int,
    part: MachineView,
    ts_ms: int,
    received_ms: int,
    *,
    stamp: str | None = None,
) -> tuple[Any, ...]:
    """Parameters of ``write_sql.refresh_inventory`` (column order: see ``write_sql``);
    ``stamp``: the sample's timestamp as ``iso`` writes it, when the caller has it."""
    labels = labels_text(part.labels)
    metrics = wirejson.dumps(part.metrics)
    sample = wirejson.dumps(latest_sample_document(part, stamp))
    if dialect == "mysql":
        return (
            machine_id, part.key, part.kind, part.host_id, part.hostname, part.name,
            part.image, labels, part.state, part.health, part.restart_count,
            ts_ms, ts_ms, received_ms, ts_ms, metrics, sample,
        )  # fmt: skip
    return (
        part.hostname, part.image, labels, part.state, part.health, part.restart_count,
        ts_ms, received_ms, metrics, sample, ts_ms, machine_id, ts_ms,
    )  # fmt: skip


class InventoryBuffer:
    """The newest stored sample per machine, written to ``machines`` when due."""

    def __init__(self, dialect: str, flush_after_ms: int) -> None:
        if flush_after_ms < 0:
            raise ValueError(f"flush_after_ms must be >= 0, got {flush_after_ms}")
        self._dialect = dialect
        self._flush_after_ms = flush_after_ms
        self._pending: Pending = {}
        self._since_ms: int | None = None
        """Received time of the oldest sample waiting (None: nothing waits)."""

    @property
    def waiting(self) -> int:
        """How many machines' inventory rows are behind their newest stored sample."""
        return len(self._pending)

    def due(self, now_ms: int) -> bool:
        """Whether the oldest sample waiting was received ``flush_after_ms`` or more before
        ``now_ms`` (ingest writes then; with no ingest, the roll-up job does)."""
        return self._since_ms is not None and now_ms - self._since_ms >= self._flush_after_ms

    @property
    def newest_ms(self) -> int | None:
        """The newest timestamp among the samples waiting (None: nothing waits)."""
        return max((ts_ms for _, ts_ms, _ in self._pending.values()), default=None)

    def stage(
        self,
        conn: sa.Connection,
        rows: Iterable[tuple[int, MachineView, int]],
        received_ms: int,
    ) -> Staged:
        """Take newly stored ``(machine id, sample, ts_ms)`` rows; when due, write them and
        every waiting row in ``conn``. ``adopt`` the result after the commit."""
        fresh: Pending = {}
        _merge(fresh, ((i, (part, ts_ms, received_ms)) for i, part, ts_ms in rows))
        since = self._since_ms if self._since_ms is not None else received_ms
        if received_ms - since < self._flush_after_ms:
            return Staged(fresh, written=False, received_ms=received_ms)
        everything = dict(self._pending)
        _merge(everything, fresh.items())
        self._write(conn, everything)
        return Staged(fresh, written=True, received_ms=received_ms)

    def flush(self, conn: sa.Connection) -> Staged:
        """Write every waiting row in ``conn``; ``adopt`` the result after the commit."""
        self._write(conn, self._pending)
        return Staged({}, written=True, received_ms=0)

    def flush_some(self, conn: sa.Connection, machine_ids: Iterable[int]) -> list[int]:
        """Write the waiting rows of these machines only (a read of one machine need not
        write the whole fleet's); ``forget_written`` them after the commit."""
        some = {i: self._pending[i] for i in machine_ids if i in self._pending}
        self._write(conn, some)
        return sorted(some)

    def forget_written(self, machine_ids: Iterable[int]) -> None:
        """The transaction of ``flush_some`` committed: those rows are written."""
        for machine_id in machine_ids:
            self._pending.pop(machine_id, None)
        if not self._pending:
            self._since_ms = None

    def adopt(self, staged: Staged) -> None:
        """The transaction that returned ``staged`` committed."""
        if staged.written:
            self._pending = {}
            self._since_ms = None
            return
        _merge(self._pending, staged.rows.items())
        if self._since_ms is None and self._pending:
            self._since_ms = staged.received_ms

    def discard(self, machine_ids: set[int]) -> None:
        """Forget what waits for these machines (they were deleted)."""
        for machine_id in machine_ids:
            self._pending.pop(machine_id, None)
        if not self._pending:
            self._since_ms = None

    def drop(self) -> None:
        """Forget what waits (the database it belongs to is gone)."""
        self._pending = {}
        self._since_ms = None

    def _write(self, conn: sa.Connection, pending: Pending) -> None:
        if not pending:
            return
        stamps: dict[int, str] = {}  # a fleet's rows share a few timestamps
        rows = []
        for machine_id, (part, ts_ms, received_ms) in sorted(pending.items()):
            stamp = stamps.get(ts_ms)
            if stamp is None:
                stamp = stamps[ts_ms] = iso(part.timestamp)
            rows.append(
                inventory_values(self._dialect, machine_id, part, ts_ms, received_ms, stamp=stamp)
            )
        for sql, params in refresh_inventory(self._dialect, rows):
            conn.exec_driver_sql(sql, params)


def _merge(into: Pending, rows: Iterable[tuple[int, tuple[MachineView, int, int]]]) -> None:
    """Keep, per machine, the sample with the newest timestamp (a tie: the later one)."""
    for machine_id, entry in rows:
        known = into.get(machine_id)
        if known is None or entry[1] >= known[1]:
            into[machine_id] = entry
