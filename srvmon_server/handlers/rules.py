"""Rules CRUD. The rules stored in the DB are the ones applied: every write reloads the engine."""

from __future__ import annotations

import uuid
from typing import Any

from srvmon_core.errors import ConfigError
from srvmon_server.handlers.base import ApiError, BaseHandler


def validated_rule(data: Any, rule_id: str | None = None) -> dict[str, Any]:
    """The rule in its canonical dict form, or a 400 naming the bad field."""
    from srvmon_core.rules import rule_from_dict, rule_to_dict

    if not isinstance(data, dict):
        raise ApiError(400, "invalid_rule", "a rule must be a JSON object", "$")
    data = dict(data)
    if rule_id is not None:
        if "id" in data and data["id"] != rule_id:
            raise ApiError(400, "invalid_rule", "the body's id differs from the URL's", "$.id")
        data["id"] = rule_id
    data.setdefault("id", uuid.uuid4().hex[:12])
    try:
        return rule_to_dict(rule_from_dict(data))
    except ConfigError as exc:
        raise ApiError(400, "invalid_rule", exc.message, exc.path) from None


class RulesHandler(BaseHandler):
    async def get(self) -> None:
        self.write_json({"rules": await self.db(self.ctx.storage.list_rules)})

    async def post(self) -> None:
        rule = validated_rule(self.json_body())
        if await self.db(self.ctx.storage.get_rule, rule["id"]) is not None:
            raise ApiError(
                409, "conflict", f"rule {rule['id']!r} exists; PUT to replace it", "$.id"
            )
        await self.db(self.ctx.storage.put_rule, rule)
        await self.ctx.reload_rules()
        self.set_header("Location", f"/api/v1/rules/{rule['id']}")
        self.write_json(rule, status=201)


class RuleHandler(BaseHandler):
    async def existing(self, rule_id: str) -> dict[str, Any]:
        rule = await self.db(self.ctx.storage.get_rule, rule_id)
        if rule is None:
            raise ApiError(404, "unknown_rule", f"no rule with id {rule_id!r}", "id")
        return dict(rule)

    async def get(self, rule_id: str) -> None:
        self.write_json(await self.existing(rule_id))

    async def put(self, rule_id: str) -> None:
        rule = validated_rule(self.json_body(), rule_id)
        await self.db(self.ctx.storage.put_rule, rule)
        await self.ctx.reload_rules()
        self.write_json(rule)

    async def delete(self, rule_id: str) -> None:
        await self.existing(rule_id)
        await self.db(self.ctx.storage.delete_rule, rule_id)
        await self.ctx.reload_rules()
        self.set_status(204)
        self.finish()
