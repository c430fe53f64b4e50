"""The ingest pipeline shared by POST /api/v1/ingest and standalone mode.

Store the batch durably, then publish `sample` and `machine` events, then evaluate the
alert rules and publish their transitions. One path, whichever way a batch arrives.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from srvmon_core import codec
from srvmon_core.errors import DecodeError
from srvmon_core.metrics import container_metrics, host_metrics
from srvmon_core.schema import Batch, container_key, host_key
from srvmon_server.handlers.base import ApiError, iso

if TYPE_CHECKING:
    from srvmon_server.context import ServerContext
    from srvmon_server.storage import IngestResult


def decode_body(body: bytes) -> Batch:
    """A srvmon envelope or a legacy Java collector document; 400 naming the bad field."""
    try:
        return codec.decode_message(body)
    except DecodeError as exc:
        raise ApiError(400, "invalid_body", exc.message, exc.path) from None


def sample_events(batch: Batch) -> list[tuple[str, dict[str, Any]]]:
    """One ``sample`` SSE payload per machine in the batch, with its key."""
    timestamp = iso(batch.timestamp)
    events: list[tuple[str, dict[str, Any]]] = []
    if batch.host is not None:
        key = host_key(batch.host_id)
        events.append(
            (
                key,
                {
                    "key": key,
                    "kind": "host",
                    "host_id": batch.host_id,
                    "hostname": batch.hostname,
                    "name": batch.hostname,
                    "timestamp": timestamp,
                    "metrics": host_metrics(batch.host),
                    "state": "running",
                    "health": None,
                },
            )
        )
    for container in batch.containers:
        key = container_key(batch.host_id, container.name)
        events.append(
            (
                key,
                {
                    "key": key,
                    "kind": "container",
                    "host_id": batch.host_id,
                    "hostname": batch.hostname,
                    "name": container.name,
                    "timestamp": timestamp,
                    "metrics": container_metrics(container),
                    "state": container.state,
                    "health": container.health,
                },
            )
        )
    return events


async def ingest_batch(ctx: ServerContext, batch: Batch) -> IngestResult:
    """Store ``batch`` (durable when this returns), then publish and evaluate alerts.

    Raises ``ApiError(503)`` when the database is unavailable; nothing is published then.
    """
    received_at = ctx.clock()
    result: IngestResult = await ctx.run_db(ctx.storage.ingest, batch, received_at)
    samples = (1 if batch.host is not None else 0) + len(batch.containers)
    ctx.stats.record_ingest(samples, result.duplicates, time.monotonic())
    if not result.stored:
        return result
    samples_by_key = sample_events(batch)
    for key, data in samples_by_key:
        ctx.hub.publish("sample", data, key)
    levels = ctx.alerting.firing_levels() if ctx.alerting is not None else {}
    for key, _ in samples_by_key:
        if ctx.presence.seen(key, received_at) is not None:
            status = levels.get(key, "ok")
            data = {"key": key, "status": status, "last_seen": iso(batch.timestamp)}
            ctx.hub.publish("machine", data, key)
    if ctx.alerting is not None:
        events = await ctx.run_db(ctx.alerting.on_batch, batch, received_at)
        ctx.publish_alerts(events)
    return result
