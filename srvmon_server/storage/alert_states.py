"""The alert engine's saved state (timers, windows, restart memory), so a restarted server
fires a pending alert at its original deadline."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from srvmon_server.storage import tables as t
from srvmon_server.storage.base import Database


class AlertStateStore:
    """One JSON document (``EngineState.to_dict``) in row 1 of ``alert_state``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def load(self) -> dict[str, Any] | None:
        with self._db.reading("load_alert_state") as conn:
            body = conn.execute(
                sa.select(t.alert_state.c.body).where(t.alert_state.c.id == 1)
            ).scalar()
        return None if body is None else dict(json.loads(body))

    def save(self, state: dict[str, Any]) -> None:
        body = json.dumps(state, sort_keys=True, separators=(",", ":"))
        now_ms = self._db.now_ms()
        with self._db.writing("save_alert_state") as conn:
            updated = conn.execute(
                sa.update(t.alert_state)
                .where(t.alert_state.c.id == 1)
                .values(body=body, saved_at_ms=now_ms)
            )
            if updated.rowcount == 0:
                conn.execute(sa.insert(t.alert_state).values(id=1, body=body, saved_at_ms=now_ms))
