"""Rules, engine state, alert history and silences, stored as plain JSON documents.

The gateway does not depend on the alert engine's classes: it stores what
``rule_to_dict`` / ``EngineState.to_dict`` / an ``AlertEvent`` dict gives it, and indexes the
few fields that queries filter on.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from srvmon_server.storage import tables as t
from srvmon_server.storage.clock import from_ms, iso, parse_instant, to_ms
from srvmon_server.storage.errors import InvalidQuery

SEEDED_MARKER = "rules_seeded"
MAX_HISTORY_LIMIT = 1000
EVENT_FIELDS = (
    "fingerprint",
    "rule_id",
    "machine",
    "host_id",
    "metric",
    "level",
    "from_state",
    "to_state",
    "value",
    "threshold",
    "started_at",
    "at",
    "silenced",
)


def dumps(document: Any) -> str:
    """JSON with datetimes as ISO 8601 UTC strings."""

    def default(value: Any) -> Any:
        if isinstance(value, datetime):
            return iso(value)
        raise TypeError(f"cannot store a {type(value).__name__} as JSON")

    return json.dumps(document, default=default, sort_keys=True, separators=(",", ":"))


# --- rules -------------------------------------------------------------------------------


def _rule_id(rule: dict[str, Any]) -> str:
    rule_id = rule.get("id") if isinstance(rule, dict) else None
    if not isinstance(rule_id, str) or not rule_id:
        raise InvalidQuery("a rule needs a non-empty string 'id'")
    return rule_id


def list_rules(conn: sa.Connection) -> list[dict[str, Any]]:
    rows = conn.execute(sa.select(t.rules.c.body).order_by(t.rules.c.position, t.rules.c.id))
    return [json.loads(body) for (body,) in rows]


def get_rule(conn: sa.Connection, rule_id: str) -> dict[str, Any] | None:
    body = conn.execute(sa.select(t.rules.c.body).where(t.rules.c.id == rule_id)).scalar()
    return None if body is None else dict(json.loads(body))


def put_rule(conn: sa.Connection, rule: dict[str, Any]) -> None:
    rule_id = _rule_id(rule)
    body = dumps(rule)
    updated = conn.execute(sa.update(t.rules).where(t.rules.c.id == rule_id).values(body=body))
    if updated.rowcount == 0:
        position = conn.execute(sa.select(sa.func.coalesce(sa.func.max(t.rules.c.position), 0)))
        conn.execute(
            sa.insert(t.rules).values(
                id=rule_id, body=body, position=int(position.scalar_one()) + 1
            )
        )


def delete_rule(conn: sa.Connection, rule_id: str) -> bool:
    return bool(conn.execute(sa.delete(t.rules).where(t.rules.c.id == rule_id)).rowcount)


def seed_rules(conn: sa.Connection, rules: list[dict[str, Any]], now_ms: int) -> int:
    """Insert default rules once per database; later calls (and restarts) insert nothing."""
    ids = [_rule_id(rule) for rule in rules]
    marker = conn.execute(sa.select(t.meta.c.value).where(t.meta.c.name == SEEDED_MARKER)).scalar()
    if marker is not None:
        return 0
    existing = set(conn.execute(sa.select(t.rules.c.id)).scalars())
    inserted = 0
    for rule_id, rule in zip(ids, rules, strict=True):
        if rule_id not in existing:
            put_rule(conn, rule)
            inserted += 1
    conn.execute(sa.insert(t.meta).values(name=SEEDED_MARKER, value=str(now_ms)))
    return inserted


# --- engine state ------------------------------------------------------------------------


def load_alert_state(conn: sa.Connection) -> dict[str, Any] | None:
    body = conn.execute(sa.select(t.alert_state.c.body).where(t.alert_state.c.id == 1)).scalar()
    return None if body is None else dict(json.loads(body))


def save_alert_state(conn: sa.Connection, state: dict[str, Any], now_ms: int) -> None:
    body = dumps(state)
    updated = conn.execute(
        sa.update(t.alert_state)
        .where(t.alert_state.c.id == 1)
        .values(body=body, saved_at_ms=now_ms)
    )
    if updated.rowcount == 0:
        conn.execute(sa.insert(t.alert_state).values(id=1, body=body, saved_at_ms=now_ms))


# --- alert history -----------------------------------------------------------------------


def event_row(event: dict[str, Any]) -> dict[str, Any]:
    """Validate one event dict and build its row; the body keeps every field given."""
    if not isinstance(event, dict):
        raise InvalidQuery(f"an alert event must be an object, got {type(event).__name__}")
    absent = [name for name in EVENT_FIELDS if name not in event]
    if absent:
        raise InvalidQuery(f"alert event lacks {', '.join(absent)}")
    try:
        at = parse_instant(event["at"], "at")
        started = (
            None
            if event["started_at"] is None
            else parse_instant(event["started_at"], "started_at")
        )
    except ValueError as error:
        raise InvalidQuery(str(error)) from None
    body = {**event, "at": iso(at), "started_at": None if started is None else iso(started)}
    return {
        "at_ms": to_ms(at),
        "fingerprint": str(event["fingerprint"]),
        "rule_id": str(event["rule_id"]),
        "machine": str(event["machine"]),
        "host_id": str(event["host_id"]),
        "metric": str(event["metric"]),
        "level": str(event["level"]),
        "from_state": str(event["from_state"]),
        "to_state": str(event["to_state"]),
        "silenced": bool(event["silenced"]),
        "body": dumps(body),
    }


def append_alert_events(conn: sa.Connection, events: list[dict[str, Any]]) -> None:
    rows = [event_row(event) for event in events]
    if rows:
        conn.execute(sa.insert(t.alert_events), rows)


def encode_cursor(at_ms: int, ident: int) -> str:
    return base64.urlsafe_b64encode(f"{at_ms}.{ident}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at_text, _, id_text = base64.urlsafe_b64decode(padded.encode()).decode().partition(".")
        return int(at_text), int(id_text)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidQuery(f"cursor {cursor!r} is not one this server issued") from None


def alert_history(
    conn: sa.Connection,
    *,
    start: datetime | None,
    end: datetime | None,
    machine: str | None,
    host: str | None,
    rule: str | None,
    severity: str | None,
    state: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Events newest first, ``limit`` per page; the cursor resumes after the last one."""
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
    for column, wanted in (
        (c.machine, machine),
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
    rows = conn.execute(
        sa.select(c.id, c.at_ms, c.body)
        .where(*where)
        .order_by(c.at_ms.desc(), c.id.desc())
        .limit(limit + 1)
    ).all()
    page = rows[:limit]
    events = [{**json.loads(body), "id": int(ident)} for ident, _, body in page]
    next_cursor = encode_cursor(int(page[-1][1]), int(page[-1][0])) if len(rows) > limit else None
    return events, next_cursor


# --- silences ----------------------------------------------------------------------------


def create_silence(conn: sa.Connection, silence: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """Store a silence; ``starts_at`` defaults to now, ``ends_at`` is required."""
    if not isinstance(silence, dict):
        raise InvalidQuery("a silence must be an object")
    try:
        starts = (
            parse_instant(silence["starts_at"], "starts_at")
            if silence.get("starts_at") is not None
            else None
        )
        if silence.get("ends_at") is None:
            raise ValueError("ends_at: required")
        ends = parse_instant(silence["ends_at"], "ends_at")
    except ValueError as error:
        raise InvalidQuery(str(error)) from None
    starts_ms = now_ms if starts is None else to_ms(starts)
    if to_ms(ends) <= starts_ms:
        raise InvalidQuery("ends_at must be after starts_at")
    ident = uuid.uuid4().hex
    stored = {
        **silence,
        "id": ident,
        "starts_at": iso(starts) if starts is not None else _iso_ms(now_ms),
        "ends_at": iso(ends),
        "created_at": _iso_ms(now_ms),
    }
    conn.execute(
        sa.insert(t.silences).values(
            id=ident,
            created_at_ms=now_ms,
            starts_at_ms=starts_ms,
            ends_at_ms=to_ms(ends),
            body=dumps(stored),
        )
    )
    return stored


def _iso_ms(ms: int) -> str:
    return iso(from_ms(ms))


def list_silences(conn: sa.Connection, include_expired: bool, now_ms: int) -> list[dict[str, Any]]:
    query = sa.select(t.silences.c.body).order_by(t.silences.c.starts_at_ms, t.silences.c.id)
    if not include_expired:
        query = query.where(t.silences.c.ends_at_ms > now_ms)
    return [json.loads(body) for (body,) in conn.execute(query)]


def expire_silence(conn: sa.Connection, silence_id: str, now_ms: int) -> bool:
    """End an active silence now; False when unknown or already over."""
    row = conn.execute(
        sa.select(t.silences.c.body).where(
            t.silences.c.id == silence_id, t.silences.c.ends_at_ms > now_ms
        )
    ).first()
    if row is None:
        return False
    body = {**json.loads(row[0]), "ends_at": _iso_ms(now_ms)}
    conn.execute(
        sa.update(t.silences)
        .where(t.silences.c.id == silence_id)
        .values(ends_at_ms=now_ms, body=dumps(body))
    )
    return True
