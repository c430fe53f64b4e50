"""Alert history: every alert event the engine emitted, newest first, in keyset pages.

Each row keeps the event as a JSON document of ``srvmon_core.AlertEvent`` and indexes the
fields the filters use (``at_ms``, ``machine`` = machine key, ``host_id``, ``rule_id``,
``level``, ``to_state``, ``silenced``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from attrs import frozen

from srvmon_core.alert_state import AlertEvent, structure_state
from srvmon_core.errors import DecodeError
from srvmon_server.storage import tables as t
from srvmon_server.storage.base import Database
from srvmon_server.storage.clock import to_ms
from srvmon_server.storage.errors import InvalidQuery, StorageError

MAX_HISTORY_LIMIT = 1000


@frozen(kw_only=True)
class HistoryEntry:
    """One stored event and its row id (the history's tie-breaker and the JSON ``id``)."""

    id: int
    event: AlertEvent


@frozen(kw_only=True)
class HistoryPage:
    entries: list[HistoryEntry]
    next_cursor: str | None
    """Resumes after the last entry; None on the last page."""


def event_row(event: AlertEvent) -> dict[str, Any]:
    """The ``alert_events`` row of one event."""
    return {
        "at_ms": to_ms(event.at),
        "fingerprint": event.fingerprint,
        "rule_id": event.rule_id,
        "machine": event.machine_key,
        "host_id": event.host_id,
        "metric": str(event.metric),
        "level": event.level,
        "from_state": event.from_state,
        "to_state": event.to_state,
        "silenced": event.silenced,
        "body": json.dumps(event.to_dict(), sort_keys=True, separators=(",", ":")),
    }


def insert_events(conn: sa.Connection, events: Sequence[AlertEvent]) -> None:
    """Append events inside the caller's transaction."""
    if events:
        conn.execute(sa.insert(t.alert_events), [event_row(e) for e in events])


def encode_cursor(at_ms: int, ident: int) -> str:
    return base64.urlsafe_b64encode(f"{at_ms}.{ident}".encode()).decode().rstrip("=")


_INT64 = range(-(2**63), 2**63)


def decode_cursor(cursor: str) -> tuple[int, int]:
    """(at_ms, id) of a cursor ``encode_cursor`` made; InvalidQuery for anything else
    (bad base64, not two integers, or integers no column holds)."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at_text, _, id_text = base64.urlsafe_b64decode(padded.encode()).decode().partition(".")
        at_ms, ident = int(at_text), int(id_text)
    except (ValueError, binascii.Error, UnicodeError):
        at_ms = ident = -(2**64)
    if at_ms not in _INT64 or ident not in _INT64:
        shown = cursor if len(cursor) <= 40 else cursor[:37] + "..."
        raise InvalidQuery(f"cursor {shown!r} is not one this server issued")
    return at_ms, ident


def _event(ident: int, body: str) -> AlertEvent:
    try:
        return structure_state(json.loads(body), AlertEvent, "$")
    except (DecodeError, ValueError) as exc:  # a row this code cannot read
        raise StorageError(f"alert event {ident} is unreadable: {exc}") from None


class AlertHistory:
    def __init__(self, db: Database) -> None:
        self._db = db

    def append(self, events: Sequence[AlertEvent]) -> None:
        """Append events in one transaction."""
        with self._db.writing("append_alert_events") as conn:
            insert_events(conn, events)

    def page(
        self,
        *,
        start: datetime | None,
        end: datetime | None,
        machine: str | Sequence[str] | None = None,
        host: str | None = None,
        rule: str | None = None,
        severity: str | None = None,
        state: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> HistoryPage:
        """Events newest first, ``limit`` per page; filters match exactly (``machine`` is a
        machine key or a list of them, ``host`` the host id, ``rule`` the rule id,
        ``severity`` the level, ``state`` the ``to_state``)."""
        if not 1 <= limit <= MAX_HISTORY_LIMIT:
            raise InvalidQuery(f"limit must be between 1 and {MAX_HISTORY_LIMIT}, got {limit}")
        c = t.alert_events.c
        where: list[sa.ColumnElement[bool]] = []
        try:
            if start is not None:
                where.append(c.at_ms >= to_ms(start))
            if end is not None:
                where.append(c.at_ms <= to_ms(end))
        except ValueError as error:
            raise InvalidQuery(str(error)) from None
        if isinstance(machine, str):
            where.append(c.machine == machine)
        elif machine is not None:
            where.append(c.machine.in_(list(machine)) if machine else sa.false())
        for column, wanted in (
            (c.host_id, host),
            (c.rule_id, rule),
            (c.level, severity),
            (c.to_state, state),
        ):
            if wanted is not None:
                where.append(column == wanted)
        if cursor is not None:
            at_ms, ident = decode_cursor(cursor)
            where.append(sa.or_(c.at_ms < at_ms, sa.and_(c.at_ms == at_ms, c.id < ident)))
        with self._db.reading("alert_history") as conn:
            rows = conn.execute(
                sa.select(c.id, c.at_ms, c.body)
                .where(*where)
                .order_by(c.at_ms.desc(), c.id.desc())
                .limit(limit + 1)
            ).all()
        page = rows[:limit]
        entries = [HistoryEntry(id=int(i), event=_event(int(i), body)) for i, _, body in page]
        more = len(rows) > limit
        next_cursor = encode_cursor(int(page[-1][1]), int(page[-1][0])) if more else None
        return HistoryPage(entries=entries, next_cursor=next_cursor)
