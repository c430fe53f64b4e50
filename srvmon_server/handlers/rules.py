"""Rules CRUD. The rules stored in the DB are the ones applied: every write reloads the engine."""

from __future__ import annotations

import uuid
from urllib.parse import quote

from srvmon_core.errors import ConfigError
from srvmon_core.rules import Rule, rule_from_dict
from srvmon_server.handlers.base import ApiError, BaseHandler
from srvmon_server.payloads import rule_json


def requested_rule(data: object, rule_id: str | None = None) -> Rule:
    """The rule a body asks for (structured by srvmon_core), or a 400 naming the bad field."""
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_rule", "a rule must be a JSON object", "$")
    data = dict(data)
    if rule_id is not None:
        if "id" in data and data["id"] != rule_id:
            raise ApiError(400, "invalid_rule", "the body's id differs from the URL's", "$.id")
        data["id"] = rule_id
    data.setdefault("id", uuid.uuid4().hex[:12])
    try:
        return rule_from_dict(data)
    except ConfigError as exc:
        raise ApiError(400, "invalid_rule", exc.message, exc.path) from None


class RulesHandler(BaseHandler):
    async def get(self) -> None:
        rules = await self.db(self.ctx.storage.rules.all)
        self.write_json({"rules": [rule_json(r) for r in rules]})

    async def post(self) -> None:
        rule = requested_rule(self.json_body())
        if await self.db(self.ctx.storage.rules.get, rule.id) is not None:
            raise ApiError(409, "conflict", f"rule {rule.id!r} exists; PUT to replace it", "$.id")
        await self.db(self.ctx.storage.rules.put, rule)
        await self.ctx.reload_rules()
        self.set_header("Location", f"/api/v1/rules/{quote(rule.id, safe='')}")
        self.write_json(rule_json(rule), status=201)


class RuleHandler(BaseHandler):
    async def existing(self, rule_id: str) -> Rule:
        rule = await self.db(self.ctx.storage.rules.get, rule_id)
        if rule is None:
            raise ApiError(404, "unknown_rule", f"no rule with id {rule_id!r}", "id")
        return rule

    async def get(self, rule_id: str) -> None:
        self.write_json(rule_json(await self.existing(rule_id)))

    async def put(self, rule_id: str) -> None:
        rule = requested_rule(self.json_body(), rule_id)
        await self.db(self.ctx.storage.rules.put, rule)
        await self.ctx.reload_rules()
        self.write_json(rule_json(rule))

    async def delete(self, rule_id: str) -> None:
        await self.existing(rule_id)
        await self.db(self.ctx.storage.rules.delete, rule_id)
        await self.ctx.reload_rules()
        self.set_status(204)
        self.finish()
