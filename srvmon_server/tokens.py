"""The live token policy: the tokens given as options plus the API tokens in the database.

Handlers read :attr:`Tokens.policy` (an immutable ``TokenPolicy``, replaced whole, so the
IOLoop never sees a half-made one). Every change through the API reloads it before the
answer is sent; the server also reloads it every few seconds, so ``srvmon token`` changes
made directly in the database take effect without a restart.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from attrs import frozen

from srvmon_server.auth import Grant, Scope, TokenPolicy, new_token, token_digest
from srvmon_server.storage import Storage
from srvmon_server.storage.tokens import TokenRecord

RELOAD_SECONDS = 5.0
"""How often the stored tokens are read again (changes made outside this server)."""
NAME_MAX = 128


@frozen(kw_only=True)
class Issued:
    """A token just created or rotated: its record and the token itself (shown once)."""

    record: TokenRecord
    token: str


def stored_grant(record: TokenRecord) -> Grant:
    return Grant(
        id=record.id,
        name=record.name,
        scopes=frozenset(Scope(s) for s in record.scopes if s in Scope._value2member_map_),
        source="api",
    )


class Tokens:
    def __init__(self, storage: Storage, options: TokenPolicy) -> None:
        self._storage = storage
        self._options = options
        self.policy = options
        self.records: list[TokenRecord] = []

    def reload(self) -> None:
        """Read the active stored tokens and replace the policy (DB thread)."""
        records = self._storage.tokens.active()
        grants = {r.digest: stored_grant(r) for r in records}
        grants.update(self._options.grants)  # an option's scope wins over a stored one
        self.records = records
        self.policy = TokenPolicy(grants=grants, read_auth=self._options.read_auth)

    def listed(self) -> list[Grant]:
        """The option tokens, then the stored ones (DB thread: reloads first)."""
        self.reload()
        stored = [stored_grant(r) for r in self.records]
        return [*sorted(self._options.grants.values(), key=lambda g: g.id), *stored]

    def record(self, token_id: str) -> TokenRecord | None:
        return next((r for r in self.records if r.id == token_id), None)

    def is_option(self, token_id: str) -> bool:
        return any(g.id == token_id for g in self._options.grants.values())

    def create(self, name: str, scopes: Iterable[Scope], now: datetime) -> Issued:
        token = new_token()
        values = [s.value for s in scopes]
        record = self._storage.tokens.create(name, values, token_digest(token), now)
        self.reload()
        return Issued(record=record, token=token)

    def rotate(self, token_id: str, now: datetime) -> Issued | None:
        token = new_token()
        record = self._storage.tokens.rotate(token_id, token_digest(token), now)
        self.reload()
        return None if record is None else Issued(record=record, token=token)

    def revoke(self, token_id: str, now: datetime) -> bool:
        revoked = self._storage.tokens.revoke(token_id, now)
        self.reload()
        return revoked
