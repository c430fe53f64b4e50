"""The rules the engine applies, in their order, stored as JSON documents of ``Rule``.

The stored rules are the applied ones: the alerting service reloads them after every write.
Default rules are seeded once per database (``seed``); a changed or deleted default stays
changed or deleted across restarts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

import sqlalchemy as sa

from srvmon_core.errors import ConfigError
from srvmon_core.rules import Rule, rule_from_dict, rule_to_dict
from srvmon_server.storage import tables as t
from srvmon_server.storage.base import Database

log = logging.getLogger(__name__)

SEEDED_MARKER = "rules_seeded"


def _body(rule: Rule) -> str:
    return json.dumps(rule_to_dict(rule), sort_keys=True, separators=(",", ":"))


def _rule(rule_id: str, body: str) -> Rule | None:
    try:
        return rule_from_dict(json.loads(body))
    except (ConfigError, ValueError) as exc:
        log.error("stored rule %r no longer parses, skipped: %s", rule_id, exc)
        return None


def _put(conn: sa.Connection, rule: Rule) -> None:
    body = _body(rule)
    updated = conn.execute(sa.update(t.rules).where(t.rules.c.id == rule.id).values(body=body))
    if updated.rowcount == 0:
        position = conn.execute(sa.select(sa.func.coalesce(sa.func.max(t.rules.c.position), 0)))
        conn.execute(
            sa.insert(t.rules).values(
                id=rule.id, body=body, position=int(position.scalar_one()) + 1
            )
        )


class RuleStore:
    """Rules CRUD; list order is insertion order (a replaced rule keeps its place)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def all(self) -> list[Rule]:
        """Every stored rule, in order (one that no longer parses is logged and skipped)."""
        with self._db.reading("list_rules") as conn:
            rows = conn.execute(
                sa.select(t.rules.c.id, t.rules.c.body).order_by(t.rules.c.position, t.rules.c.id)
            ).all()
        return [rule for rule_id, body in rows if (rule := _rule(rule_id, body)) is not None]

    def get(self, rule_id: str) -> Rule | None:
        with self._db.reading("get_rule") as conn:
            body = conn.execute(sa.select(t.rules.c.body).where(t.rules.c.id == rule_id)).scalar()
        return None if body is None else _rule(rule_id, body)

    def put(self, rule: Rule) -> None:
        """Insert the rule, or replace the one with the same ``id`` (keeping its position)."""
        with self._db.writing("put_rule") as conn:
            _put(conn, rule)

    def delete(self, rule_id: str) -> bool:
        with self._db.writing("delete_rule") as conn:
            return bool(conn.execute(sa.delete(t.rules).where(t.rules.c.id == rule_id)).rowcount)

    def seed(self, rules: Sequence[Rule]) -> int:
        """Insert ``rules`` on the first start of a database only; return how many (one
        process at a time: replicas may start together)."""
        with self._db.exclusive("srvmon.seed_rules"), self._db.writing("seed_rules") as conn:
            marker = conn.execute(
                sa.select(t.meta.c.value).where(t.meta.c.name == SEEDED_MARKER)
            ).scalar()
            if marker is not None:
                return 0
            existing = set(conn.execute(sa.select(t.rules.c.id)).scalars())
            inserted = 0
            for rule in rules:
                if rule.id not in existing:
                    _put(conn, rule)
                    inserted += 1
            conn.execute(sa.insert(t.meta).values(name=SEEDED_MARKER, value=str(self._db.now_ms())))
            return inserted
