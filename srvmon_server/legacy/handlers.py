"""The original back end's HTTP routes (docs/migration.md lists each with its shape).

Every handler derives from the server's ``BaseHandler``: the same auth, CORS, body limit and
JSON error envelope; domain errors (``DecodeError``, ``ConfigError`` such as
:class:`~srvmon_server.legacy.thresholds.InvalidLimits`, storage's errors) pass to the
base handler, which maps them to HTTP in one place (``srvmon_server.errors.http_error``).
What they need from the rest of the server:

* ``srvmon_server.ingest.ingest_batch`` (``POST /api/metrics``);
* storage's split stores, run on the DB thread: ``rules.all``/``rules.put`` (limits),
  ``history.page`` (history), ``samples.machines``/``samples.latest_sample`` (inventory,
  container ids); and ``ServerContext.reload_rules``;
* ``ServerContext.alerting.rules`` (the live rules, to type an alert event) and
  ``ServerContext.latest`` (host names of events stored without one), through
  :class:`~srvmon_server.legacy.live.LegacyLive`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

from tornado.iostream import StreamClosedError

from srvmon_core import codec
from srvmon_core.alert_state import AlertEvent
from srvmon_core.rules import Rule
from srvmon_server.auth import Access
from srvmon_server.handlers.base import ApiError, BaseHandler
from srvmon_server.handlers.ingest import refuse_in_replica_mode
from srvmon_server.handlers.stream import StreamHandler
from srvmon_server.ingest import ingest_batch
from srvmon_server.legacy.live import LegacyLive
from srvmon_server.legacy.messages import (
    MESSAGE_TYPES,
    history_item,
    message_type,
    metric_name,
)
from srvmon_server.legacy.thresholds import (
    Side,
    apply_limits,
    conflict_message,
    conflicts,
    limits,
    parse_limits,
)
from srvmon_server.sse import format_comment
from srvmon_server.storage import Storage

TARGET_HISTORY = 20
ALL_HISTORY = 50
DAY_HISTORY_MAX = 10_000
"""Most items ``GET /api/metrics/history`` answers for one day."""
PAGE = 500
SCAN_MAX = 50_000
"""Most stored events one history request reads before it answers with what it found."""
OTHER: dict[Side, Side] = {"over": "under", "under": "over"}


def breach_events(
    storage: Storage,
    rules: Sequence[Rule],
    *,
    want: int,
    machine: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    keep: Callable[[AlertEvent], bool] = lambda _event: True,
) -> list[AlertEvent]:
    """Newest first, up to ``want`` stored events that have a legacy type and pass ``keep``
    (DB thread). Pages through the history's ``to_state=firing`` events."""
    out: list[AlertEvent] = []
    cursor: str | None = None
    scanned = 0
    by_id = {rule.id: rule for rule in rules}
    while True:
        page = storage.history.page(
            start=start, end=end, machine=machine, state="firing", limit=PAGE, cursor=cursor
        )
        scanned += len(page.entries)
        for entry in page.entries:
            event = entry.event
            if message_type(event, by_id.get(event.rule_id)) and keep(event):
                out.append(event)
                if len(out) >= want:
                    return out
        cursor = page.next_cursor
        if cursor is None or scanned >= SCAN_MAX:
            return out


class LegacyHandler(BaseHandler):
    @property
    def live(self) -> LegacyLive:
        live = self.application.settings["srvmon_legacy"]
        assert isinstance(live, LegacyLive)
        return live

    async def container_ids(self, keys: set[str]) -> None:
        """Learn the Docker ids of containers not seen since this process started."""
        known = self.live.container_ids
        unknown = sorted(k for k in keys if k not in known)
        if not unknown:
            return
        samples = self.ctx.storage.samples

        def read() -> dict[str, str]:
            found = {}
            for key in unknown:
                sample = samples.latest_sample(key)
                if sample is not None and isinstance(sample.get("id"), str):
                    found[key] = sample["id"]
            return found

        for key, docker_id in (await self.db(read)).items():
            known.setdefault(key, docker_id)

    async def items(self, events: list[AlertEvent]) -> list[dict[str, Any]]:
        """History items of stored events (every one has a legacy type)."""
        live = self.live
        await self.container_ids({e.machine_key for e in events if e.machine_kind == "container"})
        rules = {rule.id: rule for rule in live.rules()}
        config = live.config
        out = []
        for event in events:
            kind = message_type(event, rules.get(event.rule_id))
            if kind is None:  # the rule changed since the page was read
                continue
            machine = live.machine(event)
            out.append(history_item(event, kind, machine, config.tz, config.interval_seconds))
        return out


class MetricsHandler(LegacyHandler):
    """``POST /api/metrics``: one original document (or a srvmon envelope); 200, no body.
    An ingest token is enough, as for ``POST /api/v1/ingest``."""

    needs = {"POST": Access.INGEST}

    def prepare(self) -> None:
        try:
            super().prepare()
        except ApiError as refused:
            tokenless = self.live.config.tokenless(self.request.remote_ip)
            if refused.status != 401 or self.token() is not None or not tokenless:
                raise
            self.clear_header("WWW-Authenticate")

    async def post(self) -> None:
        refuse_in_replica_mode(self.ctx)
        self._check_size()
        config = self.live.config
        batch = codec.message_from_dict(  # a DecodeError is answered 400 with its field
            codec.parse_json(self.body),
            legacy_tz=config.tz,
            legacy_interval_seconds=config.interval_seconds,
        )
        await ingest_batch(self.ctx, batch)
        self.clear_header("Content-Type")
        self.set_status(200)
        self.finish()


class LimitsHandler(LegacyHandler):
    """GET/POST of one side's seven limits (``side`` set by the two subclasses)."""

    side: Side = "over"

    async def get(self) -> None:
        rules = await self.db(self.ctx.storage.rules.all)
        self.write_json(limits(rules, self.side, self.live.config.interval_seconds))

    async def post(self) -> None:
        posted = parse_limits(self.json_body())  # InvalidLimits: 400 naming the field
        store, side = self.ctx.storage.rules, self.side
        interval = self.live.config.interval_seconds

        def check_and_store() -> tuple[list[str], dict[str, str | None]]:
            rules = store.all()
            other = limits(rules, OTHER[side], interval)
            refused = conflicts(side, posted, other)
            if refused:
                return refused, other
            for rule in apply_limits(rules, side, posted, interval):
                store.put(rule)
            return [], limits(store.all(), side, interval)

        refused, answer = await self.db(check_and_store)
        if refused:
            body = {"error": conflict_message(side, refused), "thresholdValues": answer}
            self.write_json(body, status=400)
            return
        await self.ctx.reload_rules()
        self.write_json(answer)


class OverLimitsHandler(LimitsHandler):
    side: Side = "over"


class UnderLimitsHandler(LimitsHandler):
    side: Side = "under"


class TargetHistoryHandler(LegacyHandler):
    """``POST /api/metrics/threshold-history``: a read, so it follows the read-token rule."""

    needs = {"POST": Access.READ}

    async def post(self) -> None:
        body = self.json_body()
        target = body.get("targetId") if isinstance(body, dict) else None
        if not isinstance(target, str) or not target:
            raise ApiError(400, "invalid_body", "must be a non-empty string", "$.targetId")
        key = self.live.key_of(target)
        storage, rules = self.ctx.storage, self.live.rules()
        events = await self.db(
            lambda: breach_events(storage, rules, want=TARGET_HISTORY, machine=key)
        )
        self.write_json(await self.items(events))


class AllHistoryHandler(LegacyHandler):
    async def get(self) -> None:
        storage, rules = self.ctx.storage, self.live.rules()
        events = await self.db(lambda: breach_events(storage, rules, want=ALL_HISTORY))
        self.write_json(await self.items(events))


DAY_FILTERS = ("machineType", "hostName", "machineName", "messageType", "metricName")


class DayHistoryHandler(LegacyHandler):
    """``GET /api/metrics/history?date=yyyy-MM-dd`` with optional filters."""

    def day(self) -> tuple[datetime, datetime]:
        raw = self.get_query_argument("date", "") or ""
        try:
            day = date.fromisoformat(raw) if len(raw) == 10 else None
        except ValueError:
            day = None
        if day is None:
            raise ApiError(400, "invalid_parameter", "date must be yyyy-MM-dd", "date")
        tz = self.live.config.tz
        start = datetime.combine(day, time(), tzinfo=tz)
        end = datetime.combine(day + timedelta(days=1), time(), tzinfo=tz)
        return start, end - timedelta(milliseconds=1)

    def filters(self) -> dict[str, str]:
        chosen = {n: v for n in DAY_FILTERS if (v := self.get_query_argument(n, "") or "")}
        if chosen.get("machineType", "host") not in ("host", "container"):
            message = "machineType is host or container"
            raise ApiError(400, "invalid_parameter", message, "machineType")
        if chosen.get("messageType", MESSAGE_TYPES[0]) not in MESSAGE_TYPES:
            message = f"messageType is one of {', '.join(MESSAGE_TYPES)}"
            raise ApiError(400, "invalid_parameter", message, "messageType")
        return chosen

    async def get(self) -> None:
        start, end = self.day()
        chosen = self.filters()
        rules = self.live.rules()
        by_id = {rule.id: rule for rule in rules}
        hostnames: dict[str, str] = {}
        if "hostName" in chosen:  # for events stored without a hostname (read on the IOLoop)
            machines = self.ctx.latest.machines()
            hostnames = {m.host_id: m.hostname for m in machines if m.kind == "host"}

        def keep(event: AlertEvent) -> bool:  # on the DB thread: reads only local values
            wanted = {
                "machineType": event.machine_kind,
                "machineName": event.machine_name,
                "metricName": metric_name(event.metric),
                "messageType": message_type(event, by_id.get(event.rule_id)),
                "hostName": event.hostname or hostnames.get(event.host_id, event.host_id),
            }
            return all(chosen[n] == v for n, v in wanted.items() if n in chosen)

        storage = self.ctx.storage
        events = await self.db(
            lambda: breach_events(
                storage, rules, want=DAY_HISTORY_MAX, start=start, end=end, keep=keep
            )
        )
        self.write_json(await self.items(events))


class InventoryHandler(LegacyHandler):
    """``GET /api/inventory/list``: hosts and containers as the original listed them."""

    async def get(self) -> None:
        records = await self.db(self.ctx.storage.samples.machines)
        await self.container_ids({r.key for r in records if r.kind == "container"})
        ids = self.live.container_ids
        hosts = [{"id": r.host_id, "name": r.hostname} for r in records if r.kind == "host"]
        containers = [
            {"host": r.host_id, "id": ids.get(r.key, r.key), "name": r.name}
            for r in records
            if r.kind == "container"
        ]
        self.write_json({"host": hosts, "container": containers})


class AlertStreamHandler(StreamHandler, LegacyHandler):
    """``GET /api/metrics/threshold-alert``: unnamed SSE events, keep-alive comments."""

    async def get(self) -> None:
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        fanout = self.live.alerts
        handle, client = fanout.subscribe(self._wake.set, self._drop)
        heartbeat = self.ctx.config.heartbeat_seconds
        try:
            self.write(format_comment("connected"))
            await self.flush()
            while not self._closed:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=heartbeat)
                except TimeoutError:
                    self.write(format_comment("keep-alive"))
                self._wake.clear()
                if self._closed or client.dropped:
                    break
                frames = client.take_all()
                if frames:
                    self.write(frames)
                await self.flush()
        except StreamClosedError:
            self._closed = True
        finally:
            fanout.unsubscribe(handle)
        if not self._finished and not self._closed:
            self.finish()
