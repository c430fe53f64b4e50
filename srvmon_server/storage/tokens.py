"""API tokens (``api_tokens``): created, rotated and revoked at run time, stored hashed.

A row holds the token's SHA-256 digest, never the token: whoever reads the database (a
backup, ``sqlite3``) learns no token. Revoked rows are kept (``revoked_at_ms``) so the
listing of past tokens stays auditable; they never authenticate.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from attrs import frozen

from srvmon_server.storage import tables as t
from srvmon_server.storage.base import Database
from srvmon_server.storage.clock import from_ms, to_ms


@frozen(kw_only=True)
class TokenRecord:
    id: str
    name: str
    scopes: tuple[str, ...]
    digest: str
    created_at: datetime
    rotated_at: datetime | None
    revoked_at: datetime | None


def _record(row: sa.Row[tuple[object, ...]]) -> TokenRecord:
    def when(ms: object) -> datetime | None:
        return None if ms is None else from_ms(int(ms))  # type: ignore[call-overload]

    created = when(row.created_at_ms)
    assert created is not None
    return TokenRecord(
        id=str(row.id),
        name=str(row.name),
        scopes=tuple(str(row.scopes).split(",")),
        digest=str(row.digest),
        created_at=created,
        rotated_at=when(row.rotated_at_ms),
        revoked_at=when(row.revoked_at_ms),
    )


class TokenStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, name: str, scopes: Iterable[str], digest: str, now: datetime) -> TokenRecord:
        """Store a new token's digest under a new id."""
        values = {
            "id": uuid.uuid4().hex[:16],
            "name": name,
            "scopes": ",".join(sorted(set(scopes))),
            "digest": digest,
            "created_at_ms": to_ms(now),
        }
        with self._db.writing("create_token") as conn:
            conn.execute(sa.insert(t.api_tokens).values(**values))
            row = conn.execute(sa.select(t.api_tokens).where(t.api_tokens.c.id == values["id"]))
            return _record(row.one())

    def active(self) -> list[TokenRecord]:
        """Tokens not revoked, oldest first."""
        c = t.api_tokens.c
        query = sa.select(t.api_tokens).where(c.revoked_at_ms.is_(None))
        with self._db.reading("list_tokens") as conn:
            return [_record(row) for row in conn.execute(query.order_by(c.created_at_ms, c.id))]

    def rotate(self, token_id: str, digest: str, now: datetime) -> TokenRecord | None:
        """Replace an active token's digest (the old token stops working); None if unknown."""
        c = t.api_tokens.c
        with self._db.writing("rotate_token") as conn:
            changed = conn.execute(
                sa.update(t.api_tokens)
                .where(c.id == token_id, c.revoked_at_ms.is_(None))
                .values(digest=digest, rotated_at_ms=to_ms(now))
            ).rowcount
            if not changed:
                return None
            return _record(conn.execute(sa.select(t.api_tokens).where(c.id == token_id)).one())

    def revoke(self, token_id: str, now: datetime) -> bool:
        """Revoke an active token; False when unknown or already revoked."""
        c = t.api_tokens.c
        with self._db.writing("revoke_token") as conn:
            return bool(
                conn.execute(
                    sa.update(t.api_tokens)
                    .where(c.id == token_id, c.revoked_at_ms.is_(None))
                    .values(revoked_at_ms=to_ms(now))
                ).rowcount
            )
