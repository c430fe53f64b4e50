"""API tokens: list, create, rotate, revoke (admin scope for all, reads included)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from srvmon_core.schema import text_problem
from srvmon_server.auth import Access, Grant, Scope
from srvmon_server.handlers.base import ApiError, BaseHandler
from srvmon_server.storage.tokens import TokenRecord
from srvmon_server.tokens import NAME_MAX, Issued

SCOPES = [s.value for s in Scope]


def grant_json(grant: Grant, record: TokenRecord | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": grant.id,
        "name": grant.name,
        "scopes": sorted(s.value for s in grant.scopes),
        "source": grant.source,
        "created_at": None,
        "rotated_at": None,
    }
    if record is not None:
        data.update(created_at=record.created_at, rotated_at=record.rotated_at)
    return data


def issued_json(issued: Issued) -> dict[str, Any]:
    record = issued.record
    scopes = frozenset(Scope(s) for s in record.scopes)
    grant = Grant(id=record.id, name=record.name, scopes=scopes, source="api")
    return {**grant_json(grant, record), "token": issued.token}


def requested_token(data: object) -> tuple[str, list[Scope]]:
    """``{"name": str, "scopes": [...]}`` → (name, scopes), or a 400 naming the field."""
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_token", "the body must be a JSON object", "$")
    extra = sorted(set(data) - {"name", "scopes"})
    if extra:
        raise ApiError(400, "invalid_token", "unknown field", f"$.{extra[0]}")
    name = data.get("name")
    if not isinstance(name, str):
        raise ApiError(400, "invalid_token", "must be a string", "$.name")
    problem = text_problem(name, NAME_MAX, empty=False)
    if problem is not None:
        raise ApiError(400, "invalid_token", problem, "$.name")
    scopes = data.get("scopes")
    if not isinstance(scopes, list) or not scopes or len(scopes) > len(SCOPES):
        raise ApiError(400, "invalid_token", f"must be a list of 1 to 3 of {SCOPES}", "$.scopes")
    for index, scope in enumerate(scopes):
        if scope not in SCOPES:
            raise ApiError(400, "invalid_token", f"must be one of {SCOPES}", f"$.scopes[{index}]")
    if len(set(scopes)) != len(scopes):
        raise ApiError(400, "invalid_token", "must not repeat a scope", "$.scopes")
    return name, [Scope(s) for s in scopes]


class TokenBase(BaseHandler):
    needs = {"GET": Access.ADMIN, "HEAD": Access.ADMIN}

    def now(self) -> datetime:
        return self.ctx.clock()

    def refuse_option(self, token_id: str) -> None:
        if self.ctx.tokens.is_option(token_id):
            raise ApiError(
                409,
                "token_from_options",
                "this token is a server option; change it in the server's options and restart",
                "id",
            )


class TokensHandler(TokenBase):
    async def get(self) -> None:
        tokens = self.ctx.tokens
        grants = await self.db(tokens.listed)
        self.write_json({"tokens": [grant_json(g, tokens.record(g.id)) for g in grants]})

    async def post(self) -> None:
        name, scopes = requested_token(self.json_body())
        issued = await self.db(self.ctx.tokens.create, name, scopes, self.now())
        self.set_header("Cache-Control", "no-store")
        self.write_json(issued_json(issued), status=201)


class TokenHandler(TokenBase):
    async def delete(self, token_id: str) -> None:
        self.refuse_option(token_id)
        if not await self.db(self.ctx.tokens.revoke, token_id, self.now()):
            raise ApiError(404, "unknown_token", f"no active token with id {token_id!r}", "id")
        self.set_status(204)
        self.finish()


class TokenRotateHandler(TokenBase):
    async def post(self, token_id: str) -> None:
        self.refuse_option(token_id)
        issued = await self.db(self.ctx.tokens.rotate, token_id, self.now())
        if issued is None:
            raise ApiError(404, "unknown_token", f"no active token with id {token_id!r}", "id")
        self.set_header("Cache-Control", "no-store")
        self.write_json(issued_json(issued))
