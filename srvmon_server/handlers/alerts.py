"""Active alerts, alert history and silences."""

from __future__ import annotations

from datetime import datetime, timedelta

from attrs import evolve

from srvmon_core.errors import ConfigError
from srvmon_core.silences import SilenceRequest, silence_request
from srvmon_server.handlers.base import ApiError, BaseHandler, parse_time
from srvmon_server.handlers.names import MAX_PATTERN_LENGTH
from srvmon_server.payloads import (
    active_alert_json,
    history_json,
    resolution_json,
    silence_json,
)

HISTORY_LIMIT_MAX = 1000
HISTORY_FILTERS = ("machine", "host", "rule", "severity", "state")
MACHINES_LISTED = 50
"""Machines a history answer lists of what its ``machine`` filter picked."""


class ActiveAlertsHandler(BaseHandler):
    def get(self) -> None:
        """Read from the alerting service's snapshot: no database call."""
        self.write_json({"alerts": [active_alert_json(a) for a in self.ctx.alerting.active()]})


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
        filters.pop("machine")
        pattern = self.get_query_argument("machine", None, strip=False) or None  # bounded as sent
        if pattern is not None and len(pattern) > MAX_PATTERN_LENGTH:
            raise ApiError(
                400, "invalid_parameter", f"machine is longer than {MAX_PATTERN_LENGTH}", "machine"
            )
        machines, resolution = (
            self.ctx.names.filter_keys(pattern) if pattern is not None else (None, None)
        )
        cursor = self.get_query_argument("cursor", None) or None
        history = self.ctx.storage.history
        page = await self.db(
            lambda: history.page(
                start=start, end=end, limit=limit, cursor=cursor, machine=machines, **filters
            )
        )
        names = self.ctx.names

        def build() -> dict[str, object]:
            answer: dict[str, object] = {
                "events": [history_json(e, names.hostname) for e in page.entries],
                "next_cursor": page.next_cursor,
            }
            if resolution is not None:
                answer["machines"] = resolution_json(resolution, MACHINES_LISTED)
            return answer

        await self.write_large_json(build)  # built and encoded off the IOLoop


def requested_silence(data: object, now: datetime) -> SilenceRequest:
    """The silence a body asks for (structured by srvmon_core; ``starts_at`` defaults to
    ``now``), or a 400 naming the bad field."""
    try:
        request = silence_request(data)
        return evolve(request, starts_at=request.starts_at or now)
    except ConfigError as exc:
        raise ApiError(400, "invalid_silence", exc.message, exc.path) from None


class SilencesHandler(BaseHandler):
    async def get(self) -> None:
        silences = await self.db(self.ctx.storage.silences.all)
        self.write_json({"silences": [silence_json(s) for s in silences]})

    async def post(self) -> None:
        request = requested_silence(self.json_body(), self.ctx.clock())
        created = await self.db(self.ctx.storage.silences.create, request)
        await self.ctx.reload_silences()
        self.write_json(silence_json(created), status=201)


class SilenceHandler(BaseHandler):
    async def delete(self, silence_id: str) -> None:
        found = await self.db(self.ctx.storage.silences.expire, silence_id, self.ctx.clock())
        if not found:
            raise ApiError(404, "unknown_silence", f"no silence with id {silence_id!r}", "id")
        await self.ctx.reload_silences()
        self.set_status(204)
        self.finish()
