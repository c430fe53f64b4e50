"""Silences, stored as JSON documents of ``srvmon_core.silences.Silence`` with their window
indexed (``starts_at_ms``, ``ends_at_ms``) for listing and pruning."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import sqlalchemy as sa
from attrs import evolve

from srvmon_core.errors import DecodeError
from srvmon_core.silences import Silence, SilenceRequest, silence_from_dict, silence_to_dict
from srvmon_server.storage import tables as t
from srvmon_server.storage.base import Database
from srvmon_server.storage.clock import from_ms, to_ms
from srvmon_server.storage.errors import StorageError


def _silence(body: str) -> Silence:
    try:
        return silence_from_dict(json.loads(body))
    except (DecodeError, ValueError) as exc:  # a row this code cannot read
        raise StorageError(f"a stored silence is unreadable: {exc}") from None


def _body(silence: Silence) -> str:
    return json.dumps(silence_to_dict(silence), sort_keys=True, separators=(",", ":"))


class SilenceStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def all(self, include_expired: bool = False, now: datetime | None = None) -> list[Silence]:
        """Silences not yet ended at ``now`` (default: the clock), or every one; by start."""
        now_ms = self._db.now_ms() if now is None else to_ms(now)
        query = sa.select(t.silences.c.body).order_by(t.silences.c.starts_at_ms, t.silences.c.id)
        if not include_expired:
            query = query.where(t.silences.c.ends_at_ms > now_ms)
        with self._db.reading("list_silences") as conn:
            return [_silence(body) for (body,) in conn.execute(query)]

    def create(self, request: SilenceRequest) -> Silence:
        """Store a silence (``starts_at`` defaults to now) with a new ``id``."""
        now = from_ms(self._db.now_ms())
        silence = Silence(
            id=uuid.uuid4().hex,
            matchers=request.matchers,
            starts_at=request.starts_at or now,
            ends_at=request.ends_at,
            comment=request.comment,
            created_at=now,
        )
        with self._db.writing("create_silence") as conn:
            conn.execute(
                sa.insert(t.silences).values(
                    id=silence.id,
                    created_at_ms=to_ms(now),
                    starts_at_ms=to_ms(silence.starts_at),
                    ends_at_ms=to_ms(silence.ends_at),
                    body=_body(silence),
                )
            )
        return silence

    def expire(self, silence_id: str, now: datetime) -> bool:
        """End an active silence at ``now``; False when unknown or already over."""
        now_ms = to_ms(now)
        with self._db.writing("expire_silence") as conn:
            row = conn.execute(
                sa.select(t.silences.c.body).where(
                    t.silences.c.id == silence_id, t.silences.c.ends_at_ms > now_ms
                )
            ).first()
            if row is None:
                return False
            ended = evolve(_silence(row[0]), ends_at=now)
            conn.execute(
                sa.update(t.silences)
                .where(t.silences.c.id == silence_id)
                .values(ends_at_ms=now_ms, body=_body(ended))
            )
        return True
