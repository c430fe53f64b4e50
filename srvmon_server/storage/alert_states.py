"""The alert engine's saved state, one row per machine (``alert_machines``).

A transition rewrites only the machines it changed (``save``, in the same transaction as
the events it produced), a periodic save keeps pending timers and windows recent, and
``load`` reads every machine or only those of some hosts: a server replica that takes over
the hosts of a Kafka partition loads exactly their machines (``host_ids`` lists what is
stored, for mapping hosts to partitions).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite

from srvmon_core.alert_state import (
    AlertEvent,
    EngineState,
    MachineSnapshot,
    StateChanges,
    snapshots_of,
)
from srvmon_core.errors import DecodeError
from srvmon_server.storage import tables as t
from srvmon_server.storage.base import Database
from srvmon_server.storage.history import insert_events

log = logging.getLogger(__name__)

_IN_CHUNK = 500
"""Host ids per ``IN (...)`` when loading some hosts."""


def _row(snapshot: MachineSnapshot, now_ms: int) -> dict[str, Any]:
    return {
        "key": snapshot.key,
        "host_id": snapshot.host_id,
        "body": json.dumps(snapshot.document, sort_keys=True, separators=(",", ":")),
        "saved_at_ms": now_ms,
    }


def split_whole_state(body: str, now_ms: int) -> list[dict[str, Any]]:
    """Rows of ``alert_machines`` from a v3 single-row document (the migration); an
    unreadable document gives no rows (the engine then starts fresh, as it did before)."""
    try:
        state = EngineState.from_dict(json.loads(body))
    except (DecodeError, ValueError) as exc:
        log.error("saved alert state is unusable, not migrated: %s", exc)
        return []
    return [_row(snapshot, now_ms) for snapshot in snapshots_of(state)]


def _upsert(dialect: str) -> Any:
    """Insert a machine's row, or replace the one with the same key (one executemany)."""
    if dialect == "mysql":
        mysql_insert = mysql.insert(t.alert_machines)
        return mysql_insert.on_duplicate_key_update(
            host_id=mysql_insert.inserted.host_id,
            body=mysql_insert.inserted.body,
            saved_at_ms=mysql_insert.inserted.saved_at_ms,
        )
    sqlite_insert = sqlite.insert(t.alert_machines)
    return sqlite_insert.on_conflict_do_update(
        index_elements=["key"],
        set_={
            "host_id": sqlite_insert.excluded.host_id,
            "body": sqlite_insert.excluded.body,
            "saved_at_ms": sqlite_insert.excluded.saved_at_ms,
        },
    )


class AlertStateStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._upsert = _upsert(db.dialect)

    def save(self, changes: StateChanges, events: Sequence[AlertEvent] = ()) -> None:
        """In one transaction: append ``events`` to the alert history, delete the removed
        machines, then write the saved ones. Writes O(changed) rows."""
        if changes.empty and not events:
            return
        with self._db.writing("save_alert_state") as conn:
            insert_events(conn, events)
            if changes.removed:
                conn.execute(
                    sa.delete(t.alert_machines).where(
                        t.alert_machines.c.key.in_(list(changes.removed))
                    )
                )
            if changes.saved:
                now_ms = self._db.now_ms()
                conn.execute(self._upsert, [_row(s, now_ms) for s in changes.saved])

    def load(self, host_ids: Iterable[str] | None = None) -> list[MachineSnapshot]:
        """Every saved machine, or those of ``host_ids``; by key."""
        columns = (t.alert_machines.c.key, t.alert_machines.c.host_id, t.alert_machines.c.body)
        queries = []
        if host_ids is None:
            queries.append(sa.select(*columns))
        else:
            hosts = sorted(set(host_ids))
            for start in range(0, len(hosts), _IN_CHUNK):
                chunk = hosts[start : start + _IN_CHUNK]
                queries.append(sa.select(*columns).where(t.alert_machines.c.host_id.in_(chunk)))
        snapshots = []
        with self._db.reading("load_alert_state") as conn:
            for query in queries:
                for key, host_id, body in conn.execute(query):
                    snapshots.append(
                        MachineSnapshot(key=key, host_id=host_id, document=json.loads(body))
                    )
        return sorted(snapshots, key=lambda s: s.key)

    def host_ids(self) -> list[str]:
        """Every host with saved machines, sorted."""
        with self._db.reading("alert_state_hosts") as conn:
            column = t.alert_machines.c.host_id
            return [
                str(h)
                for h in conn.execute(sa.select(column).distinct().order_by(column)).scalars()
            ]
