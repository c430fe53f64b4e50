"""Bearer tokens: write tokens (ingest, every write) and read-only tokens. Pure."""

from __future__ import annotations

import hmac
from enum import Enum

from attrs import frozen


class Access(Enum):
    READ = "read"
    WRITE = "write"


@frozen
class Denied:
    """Why a request is refused: 401 (no or unknown token) or 403 (token lacks the right)."""

    status: int
    code: str
    message: str


@frozen(kw_only=True)
class TokenPolicy:
    write_tokens: frozenset[str]
    read_tokens: frozenset[str] = frozenset()
    read_auth: bool = False
    """When False, reads are open to anyone."""

    def _grant(self, token: str) -> Access | None:
        # compare every token in constant time so timing tells nothing about which is close
        found: Access | None = None
        for candidate in self.write_tokens:
            if hmac.compare_digest(candidate.encode(), token.encode()):
                found = Access.WRITE
        if found is None:
            for candidate in self.read_tokens:
                if hmac.compare_digest(candidate.encode(), token.encode()):
                    found = Access.READ
        return found

    def check(self, needed: Access, token: str | None) -> Denied | None:
        """None when allowed, else the refusal to send."""
        if needed is Access.READ and not self.read_auth:
            return None
        if not token:
            return Denied(401, "unauthorized", "a bearer token is required")
        granted = self._grant(token)
        if granted is None:
            return Denied(401, "unauthorized", "the token is not valid")
        if needed is Access.WRITE and granted is not Access.WRITE:
            return Denied(403, "forbidden", "this token is read-only; writes need a write token")
        return None


def bearer_token(header: str | None) -> str | None:
    """The token from an ``Authorization: Bearer <token>`` header, or None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
