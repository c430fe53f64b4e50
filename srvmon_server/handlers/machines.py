"""Machines: the fleet's hosts (paged summaries), a host's containers, one machine, its
series and its rules."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from srvmon_core.metrics import CONTAINER_METRIC_NAMES, HOST_METRIC_NAMES
from srvmon_server.errors import http_error
from srvmon_server.handlers.base import ApiError, BaseHandler, parse_time
from srvmon_server.names import AmbiguousMachine, UnknownMachine
from srvmon_server.payloads import rule_json, summary_json
from srvmon_server.storage import MachineRecord

MAX_POINTS_LIMIT = 10_000
DEFAULT_HOSTS_PAGE = 500
MAX_HOSTS_PAGE = 1000
"""Hosts per ``GET /api/v1/machines`` page: about 0.5 KB each, so a page stays under 1 MB."""
MAX_CURSOR_LENGTH = 1000
DEFAULT_SERIES_SPAN = timedelta(hours=1)


def machine_status(
    record: MachineRecord, levels: dict[str, str], now: datetime, silent_after_seconds: float
) -> str:
    """``silent`` when not heard from recently, else the worst firing level, else ``ok``."""
    heard = record.last_received or record.last_seen
    if (now - heard).total_seconds() > silent_after_seconds:
        return "silent"
    return levels.get(record.key, "ok")


def machine_json(record: MachineRecord, status: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "key": record.key,
        "kind": record.kind,
        "host_id": record.host_id,
        "hostname": record.hostname,
        "name": record.name,
        "status": status,
        "first_seen": record.first_seen,
        "last_seen": record.last_seen,
        "metrics": record.metrics,
    }
    if record.kind == "container":
        data.update(
            image=record.image,
            state=record.state,
            health=record.health,
            restart_count=record.restart_count,
            labels=record.labels,
        )
    return data


class MachineBase(BaseHandler):
    def levels(self) -> dict[str, str]:
        return self.ctx.alerting.firing_levels()

    def status_of(self, record: MachineRecord) -> str:
        return machine_status(
            record, self.levels(), self.ctx.clock(), self.ctx.config.silent_after_seconds
        )

    def named(self, name: str) -> str:
        """The key of the one machine called ``name`` (``vm``, ``vm/db``), from the names
        kept in memory: 404 when none, 409 when several share the name."""
        try:
            return self.ctx.names.one(name).key
        except (UnknownMachine, AmbiguousMachine) as exc:
            mapped = http_error(exc)
            assert mapped is not None
            raise ApiError(mapped.status, mapped.code, mapped.message, "key") from None

    async def record(self, key: str) -> MachineRecord:
        """A machine by key, or by name through the resolver (``vm``, ``vm/db``): 404 when
        none, 409 when several share the name. ``key`` arrives percent-decoded already
        (Tornado decodes path arguments)."""
        record = await self.db(self.ctx.storage.samples.machine, key)
        if record is None:
            record = await self.db(self.ctx.storage.samples.machine, self.named(key))
        if record is None:
            raise ApiError(404, "unknown_machine", f"no machine with key {key!r}", "key")
        return record


class MachinesHandler(MachineBase):
    """Hosts only, one summary each, in pages: the fleet at a glance without its
    containers (``/machines/{key}/containers`` has a host's containers)."""

    def get(self) -> None:
        limit = self.int_argument("limit", DEFAULT_HOSTS_PAGE, MAX_HOSTS_PAGE)
        # strip=False: the length limit is the OpenAPI document's, on the value as sent
        cursor = self.get_query_argument("cursor", None, strip=False) or None
        if cursor is not None and len(cursor) > MAX_CURSOR_LENGTH:
            raise ApiError(400, "invalid_parameter", "cursor is not one this server gave", "cursor")
        fleet = self.ctx.live.fleet
        page, next_cursor = fleet.page(cursor, limit)
        self.write_json(
            {
                "hosts": [summary_json(s) for s in page],
                "next_cursor": next_cursor,
                "total": len(fleet),
            }
        )

    def int_argument(self, name: str, default: int, most: int) -> int:
        raw = self.get_query_argument(name, None)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if not 1 <= value <= most:
            message = f"{name} must be an integer from 1 to {most}"
            raise ApiError(400, "invalid_parameter", message, name)
        return value


class ContainersHandler(MachineBase):
    """One host's containers, each with its status and latest flat metrics."""

    async def get(self, raw_key: str) -> None:
        """``{key}`` is a host key or a host's name (``vm``)."""
        samples = self.ctx.storage.samples
        records = await self.db(samples.machines, raw_key)
        if not records:
            named = await self.record(raw_key)  # 404 / 409 as on every machine path
            if named.kind != "host":
                raise ApiError(404, "unknown_machine", f"no host with key {raw_key!r}", "key")
            raw_key = named.key
            records = await self.db(samples.machines, named.host_id)
        levels = self.levels()
        now = self.ctx.clock()
        silent = self.ctx.config.silent_after_seconds
        containers = [
            machine_json(r, machine_status(r, levels, now, silent))
            for r in records
            if r.kind == "container"
        ]
        self.write_json({"key": raw_key, "containers": containers})


class MachineHandler(MachineBase):
    async def delete(self, raw_key: str) -> None:
        """Delete a machine (a host with its containers), by key or name; admin scope.
        204, 404 unknown, 409 when a name is ambiguous."""
        record = await self.record(raw_key)
        if await self.ctx.delete_machine(record.key) is None:  # deleted meanwhile
            raise ApiError(404, "unknown_machine", f"no machine with key {raw_key!r}", "key")
        self.set_status(204)
        self.finish()

    async def get(self, raw_key: str) -> None:
        """A machine with its newest sample. By key: one job on the DB thread (an API call
        waits behind the running ingest once, not once per read); by name, a second."""
        read = self.ctx.storage.samples.machine_with_sample
        found = await self.db(read, raw_key)
        if found is None:
            found = await self.db(read, self.named(raw_key))
        if found is None:  # deleted meanwhile
            raise ApiError(404, "unknown_machine", f"no machine with key {raw_key!r}", "key")
        record, sample = found
        data = machine_json(record, self.status_of(record))
        data["sample"] = sample
        self.write_json(data)


class SeriesHandler(MachineBase):
    async def get(self, raw_key: str) -> None:
        record = await self.record(raw_key)
        metric = self.get_query_argument("metric", "")
        known = HOST_METRIC_NAMES if record.kind == "host" else CONTAINER_METRIC_NAMES
        if metric not in known:
            raise ApiError(
                400,
                "unknown_metric",
                f"unknown {record.kind} metric {metric!r}; see docs/metrics.md",
                "metric",
            )
        now = self.ctx.clock()
        raw_to = self.get_query_argument("to", None)
        end = parse_time(raw_to, "to") if raw_to else now
        raw_from = self.get_query_argument("from", None)
        start = parse_time(raw_from, "from") if raw_from else end - DEFAULT_SERIES_SPAN
        if start >= end:
            raise ApiError(400, "invalid_parameter", "from must be before to", "from")
        raw_max = self.get_query_argument("max_points", "1000")
        try:
            max_points = int(raw_max)
        except ValueError:
            max_points = 0
        if not 1 <= max_points <= MAX_POINTS_LIMIT:
            raise ApiError(
                400,
                "invalid_parameter",
                f"max_points must be an integer from 1 to {MAX_POINTS_LIMIT}",
                "max_points",
            )
        samples = self.ctx.storage.samples
        series = await self.db(samples.series, record.key, metric, start, end, max_points)
        await self.write_large_json(
            lambda: {
                "key": record.key,
                "metric": metric,
                "resolution": series.resolution,
                "points": [list(p) for p in series.points],
            }
        )


class MachineRulesHandler(MachineBase):
    async def get(self, raw_key: str) -> None:
        record = await self.record(raw_key)
        rules = self.ctx.alerting.rules_for(record)
        self.write_json({"key": record.key, "rules": [rule_json(r) for r in rules]})
