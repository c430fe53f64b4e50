"""Bearer tokens with scopes: ``ingest``, ``read`` and ``admin``. Pure.

- ``ingest``: ``POST /api/v1/ingest`` and nothing else (collectors, consumers);
- ``read``: every read (with ``--read-auth``; reads are open without it);
- ``admin``: everything: rules, silences, tokens, deleting machines, plus ingest and reads.

Tokens are known by their SHA-256 digest only (:func:`token_digest`): the server keeps
the digests of the tokens given as options in memory and those of API-created tokens in
the database, never a token itself. A presented token is hashed and looked up; the digest
of a high-entropy token reveals nothing to compare against.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from collections.abc import Iterable, Mapping
from enum import Enum

from attrs import field, frozen


class Scope(Enum):
    INGEST = "ingest"
    READ = "read"
    ADMIN = "admin"


class Access(Enum):
    """What a request needs (``WRITE`` is the older name of ``ADMIN``)."""

    INGEST = "ingest"
    READ = "read"
    ADMIN = "admin"
    WRITE = "admin"  # noqa: PIE796 - an alias: the older name of ADMIN


SATISFIES: Mapping[Scope, frozenset[Access]] = {
    Scope.INGEST: frozenset({Access.INGEST}),
    Scope.READ: frozenset({Access.READ}),
    Scope.ADMIN: frozenset({Access.INGEST, Access.READ, Access.ADMIN}),
}
"""Which needs each scope meets."""


def token_digest(token: str) -> str:
    """The SHA-256 hex digest a token is known by."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


@frozen(kw_only=True)
class Grant:
    """What one token may do."""

    id: str
    """``opt-<8 hex of the digest>`` for a token given as an option, else its stored id."""
    name: str
    scopes: frozenset[Scope]
    source: str
    """``option`` (a server option, changed by restarting) or ``api`` (created through the
    API or ``srvmon token``; rotated and revoked without a restart)."""

    def allows(self, needed: Access) -> bool:
        return any(needed in SATISFIES[scope] for scope in self.scopes)


@frozen
class Denied:
    """Why a request is refused: 401 (no or unknown token) or 403 (token lacks the scope)."""

    status: int
    code: str
    message: str


def _digests(values: Iterable[str]) -> frozenset[str]:
    return frozenset(token_digest(v) for v in values)


def option_grants(
    *, admin: Iterable[str] = (), ingest: Iterable[str] = (), read: Iterable[str] = ()
) -> dict[str, Grant]:
    """Digest → grant for the tokens given as options."""
    grants: dict[str, Grant] = {}
    for tokens, scope in ((read, Scope.READ), (ingest, Scope.INGEST), (admin, Scope.ADMIN)):
        for digest in _digests(tokens):
            grants[digest] = Grant(
                id=f"opt-{digest[:8]}",
                name=f"--{'token' if scope is Scope.ADMIN else f'{scope.value}-token'}",
                scopes=frozenset({scope}),
                source="option",
            )
    return grants


@frozen(kw_only=True)
class TokenPolicy:
    """Who may do what: grants by token digest, and whether reads need a token."""

    grants: Mapping[str, Grant] = field(factory=dict)
    read_auth: bool = False
    """When False, reads are open to anyone."""

    @classmethod
    def of_options(
        cls,
        *,
        write_tokens: Iterable[str] = (),
        ingest_tokens: Iterable[str] = (),
        read_tokens: Iterable[str] = (),
        read_auth: bool = False,
    ) -> TokenPolicy:
        grants = option_grants(admin=write_tokens, ingest=ingest_tokens, read=read_tokens)
        return cls(grants=grants, read_auth=read_auth)

    def grant(self, token: str | None) -> Grant | None:
        return None if not token else self.grants.get(token_digest(token))

    def check(self, needed: Access, token: str | None) -> Denied | None:
        """None when allowed, else the refusal to send."""
        if needed is Access.READ and not self.read_auth:
            return None
        if not token:
            return Denied(401, "unauthorized", "a bearer token is required")
        grant = self.grant(token)
        if grant is None:
            return Denied(401, "unauthorized", "the token is not valid")
        if not grant.allows(needed):
            held = ", ".join(sorted(s.value for s in grant.scopes))
            return Denied(
                403, "forbidden", f"this token may {held} only; this needs the {needed.value} scope"
            )
        return None


def bearer_token(header: str | None) -> str | None:
    """The token from an ``Authorization: Bearer <token>`` header, or None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


PLACEHOLDER_TOKENS = frozenset(
    {
        "change-me-token",
        "change-me",
        "changeme",
        "change_me",
        "replace-me",
        "secret",
        "token",
        "password",
        "admin",
        "test",
        "ingest-token",
        "read-token",
        "admin-token",
    }
)
"""Tokens copied from examples rather than generated: refused at start."""


def placeholder_problem(token: str) -> str | None:
    """Why ``token`` looks like a placeholder from an example file, or None."""
    lowered = token.strip().lower()
    if lowered in PLACEHOLDER_TOKENS or lowered.startswith(("change-me", "changeme")):
        return f"{token!r} is a placeholder (as in compose/.env.example), not a secret"
    return None


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` keeps the server to this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
