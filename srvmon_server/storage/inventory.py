"""Write-behind for the machine inventory: the newest sample of each machine, held briefly.

Every stored sample makes its machine's inventory row (``latest_sample``,
``latest_metrics``, ``last_seen_ms``, …) out of date. Rewriting that row for every sample
cost more than storing the sample itself (the JSON of the whole sample, and on MariaDB a
wide upsert), so the ingester keeps the newest stored sample per machine here and writes
them all in one statement once ``flush_after_ms`` of received time has passed since the
oldest one waiting, inside the transaction of the batch that makes it due.

Nothing is lost or reordered by waiting: raw samples are committed at once; only the
inventory row lags, by at most ``flush_after_ms``. ``Storage`` flushes before it reads the
inventory, on every roll-up (every few seconds in the server) and at close, so readers in
the same process always see the newest sample. A crash loses only the lag (the next
sample of each machine refreshes its row). ``flush_after_ms = 0`` writes through.

Only committed work is kept: ``stage`` computes the next state, and the caller ``adopt``s
it once its transaction has committed (a rolled-back batch leaves the buffer as it was).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from attrs import frozen

if TYPE_CHECKING:
    from srvmon_server.storage.ingest import MachineSample

Pending = dict[int, tuple["MachineSample", int, int]]
"""machine id → (its newest stored sample, that sample's ts_ms, when it was received)."""


@frozen
class Staged:
    """What the buffer holds once the transaction that computed it commits."""

    pending: Pending
    since_ms: int | None
    """Received time of the oldest sample waiting (None: nothing waits)."""


def inventory_values(
    dialect: str, machine_id: int, part: MachineSample, ts_ms: int, received_ms: int
) -> tuple[Any, ...]:
    """Parameters of ``WriteSql.refresh_inventory`` (column order: see ``write_sql``)."""
    labels = json.dumps(part.labels, sort_keys=True)
    metrics = json.dumps(part.metrics)
    sample = json.dumps(part.sample)
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

    def __init__(self, dialect: str, refresh_sql: str, flush_after_ms: int) -> None:
        if flush_after_ms < 0:
            raise ValueError(f"flush_after_ms must be >= 0, got {flush_after_ms}")
        self._dialect = dialect
        self._refresh_sql = refresh_sql
        self._flush_after_ms = flush_after_ms
        self._state = Staged({}, None)

    @property
    def waiting(self) -> int:
        """How many machines' inventory rows are behind their newest stored sample."""
        return len(self._state.pending)

    def stage(
        self,
        conn: sa.Connection,
        rows: Iterable[tuple[int, MachineSample, int]],
        received_ms: int,
    ) -> Staged:
        """Merge newly stored ``(machine id, sample, ts_ms)`` rows; when due, write every
        waiting row in ``conn``. Return the state to ``adopt`` after the commit."""
        pending = dict(self._state.pending)
        for machine_id, part, ts_ms in rows:
            known = pending.get(machine_id)
            if known is None or ts_ms >= known[1]:
                pending[machine_id] = (part, ts_ms, received_ms)
        since = self._state.since_ms if self._state.since_ms is not None else received_ms
        if received_ms - since < self._flush_after_ms:
            return Staged(pending, since)
        self._write(conn, pending)
        return Staged({}, None)

    def adopt(self, staged: Staged) -> None:
        """The transaction that staged ``staged`` committed: hold what it left waiting."""
        self._state = staged

    def flush(self, conn: sa.Connection) -> Staged:
        """Write every waiting row in ``conn``; ``adopt`` the result after the commit."""
        if self._state.pending:
            self._write(conn, self._state.pending)
        return Staged({}, None)

    def _write(self, conn: sa.Connection, pending: Pending) -> None:
        if not pending:
            return
        conn.exec_driver_sql(
            self._refresh_sql,
            [
                inventory_values(self._dialect, machine_id, part, ts_ms, received_ms)
                for machine_id, (part, ts_ms, received_ms) in sorted(pending.items())
            ],
        )
