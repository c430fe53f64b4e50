"""Active alerts, alert history and silences."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from srvmon_server.handlers.base import ApiError, BaseHandler, iso, parse_time

HISTORY_LIMIT_MAX = 1000
SILENCE_MATCHERS = ("machine", "rule", "host")
HISTORY_FILTERS = ("machine", "host", "rule", "severity", "state")


class ActiveAlertsHandler(BaseHandler):
    async def get(self) -> None:
        alerting = self.ctx.alerting
        alerts = await self.db(alerting.active) if alerting is not None else []
        self.write_json({"alerts": alerts})


class HistoryHandler(BaseHandler):
    async def get(self) -> None:
        now = self.ctx.clock()
        raw_to = self.get_query_argument("to", None)
        end = parse_time(raw_to, "to") if raw_to else now
        raw_from = self.get_query_argument("from", None)
        start = parse_time(raw_from, "from") if raw_from else end - timedelta(days=7)
        if start > end:
            raise ApiError(400, "invalid_parameter", "from must not be after to", "from")
        raw_limit = self.get_query_argument("limit", "100")
        try:
            limit = int(raw_limit)
        except ValueError:
            limit = 0
        if not 1 <= limit <= HISTORY_LIMIT_MAX:
            raise ApiError(
                400,
                "invalid_parameter",
                f"limit must be an integer from 1 to {HISTORY_LIMIT_MAX}",
                "limit",
            )
        filters = {name: self.get_query_argument(name, None) or None for name in HISTORY_FILTERS}
        cursor = self.get_query_argument("cursor", None) or None
        storage = self.ctx.storage
        events, next_cursor = await self.db(
            lambda: storage.alert_history(
                start=start, end=end, limit=limit, cursor=cursor, **filters
            )
        )
        self.write_json({"events": events, "next_cursor": next_cursor})


def validated_silence(data: Any, now: datetime) -> dict[str, Any]:
    """A silence as stored: matchers (globs), starts_at, ends_at, comment."""
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_silence", "a silence must be a JSON object", "$")
    matchers = data.get("matchers")
    if not isinstance(matchers, dict) or not matchers:
        raise ApiError(400, "invalid_silence", "matchers must be a non-empty object", "$.matchers")
    for name, value in matchers.items():
        if name not in SILENCE_MATCHERS:
            raise ApiError(
                400,
                "invalid_silence",
                f"unknown matcher {name!r}; use {', '.join(SILENCE_MATCHERS)}",
                f"$.matchers.{name}",
            )
        if not isinstance(value, str) or not value or len(value) > 200:
            raise ApiError(
                400,
                "invalid_silence",
                "a matcher is a glob string of 1 to 200 characters",
                f"$.matchers.{name}",
            )
    times = {}
    for name in ("starts_at", "ends_at"):
        raw = data.get(name)
        if raw is None and name == "starts_at":
            times[name] = now
            continue
        if not isinstance(raw, str | int | float) or isinstance(raw, bool):
            raise ApiError(
                400, "invalid_silence", f"{name} must be ISO 8601 or epoch seconds", f"$.{name}"
            )
        try:
            times[name] = parse_time(str(raw), name)
        except ApiError:
            raise ApiError(
                400, "invalid_silence", f"{name} must be ISO 8601 or epoch seconds", f"$.{name}"
            ) from None
    if times["ends_at"] <= times["starts_at"]:
        raise ApiError(400, "invalid_silence", "ends_at must be after starts_at", "$.ends_at")
    comment = data.get("comment", "")
    if not isinstance(comment, str):
        raise ApiError(400, "invalid_silence", "comment must be a string", "$.comment")
    return {
        "matchers": dict(matchers),
        "starts_at": iso(times["starts_at"]),
        "ends_at": iso(times["ends_at"]),
        "comment": comment,
    }


class SilencesHandler(BaseHandler):
    async def get(self) -> None:
        self.write_json({"silences": await self.db(self.ctx.storage.list_silences)})

    async def post(self) -> None:
        silence = validated_silence(self.json_body(), self.ctx.clock())
        created = await self.db(self.ctx.storage.create_silence, silence)
        await self.ctx.reload_silences()
        self.write_json(created, status=201)


class SilenceHandler(BaseHandler):
    async def delete(self, silence_id: str) -> None:
        found = await self.db(self.ctx.storage.expire_silence, silence_id, self.ctx.clock())
        if found is False:
            raise ApiError(404, "unknown_silence", f"no silence with id {silence_id!r}", "id")
        await self.ctx.reload_silences()
        self.set_status(204)
        self.finish()
