"""The ingest pipeline shared by POST /api/v1/ingest and standalone mode.

Store the batch durably, then publish `sample` and `machine` events, then evaluate the
alert rules and publish their transitions. One path, whichever way a batch arrives.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any

from srvmon_core import codec
from srvmon_core.errors import DecodeError
from srvmon_core.metrics import container_metrics, host_metrics
from srvmon_core.schema import Batch, container_key, host_key
from srvmon_server.handlers.base import ApiError, iso

if TYPE_CHECKING:
    from srvmon_server.alerting import Alerting
    from srvmon_server.context import ServerContext
    from srvmon_server.storage import IngestResult


MAX_BATCHES_PER_REQUEST = 1000
"""Most envelopes one ``{"batches": [...]}`` body may carry."""


def decode_body(body: bytes) -> Batch:
    """A srvmon envelope or a legacy Java collector document; 400 naming the bad field."""
    try:
        return codec.decode_message(body)
    except DecodeError as exc:
        raise ApiError(400, "invalid_body", exc.message, exc.path) from None


def decode_request(
    body: bytes, *, legacy_tz: tzinfo = UTC, legacy_interval_seconds: float = 1.0
) -> Batch | list[Batch | ApiError]:
    """One envelope (or legacy document) → a Batch; ``{"batches": [...]}`` → one Batch or
    one ``ApiError(400)`` per envelope, in order (its field path under ``$.batches[i]``).
    Legacy documents are read in ``legacy_tz`` with ``legacy_interval_seconds`` loops.

    Raises ``ApiError(400)`` when the body as a whole is not JSON, or ``batches`` is not a
    list of 1 to ``MAX_BATCHES_PER_REQUEST`` items.
    """
    legacy: dict[str, Any] = {
        "legacy_tz": legacy_tz,
        "legacy_interval_seconds": legacy_interval_seconds,
    }
    try:
        data = codec.parse_json(body)
    except DecodeError as exc:
        raise ApiError(400, "invalid_body", exc.message, exc.path) from None
    if type(data) is not dict or "batches" not in data:
        try:
            return codec.message_from_dict(data, **legacy)
        except DecodeError as exc:
            raise ApiError(400, "invalid_body", exc.message, exc.path) from None
    items = data["batches"]
    if type(items) is not list or not items:
        raise ApiError(400, "invalid_body", "must be a non-empty list of envelopes", "$.batches")
    if len(items) > MAX_BATCHES_PER_REQUEST:
        message = f"at most {MAX_BATCHES_PER_REQUEST} envelopes per request, got {len(items)}"
        raise ApiError(400, "invalid_body", message, "$.batches")
    if len(data) != 1:
        extra = sorted(k for k in data if k != "batches")[0]
        raise ApiError(400, "invalid_body", "unknown field beside batches", f"$.{extra}")
    decoded: list[Batch | ApiError] = []
    for index, item in enumerate(items):
        try:
            decoded.append(codec.message_from_dict(item, **legacy))
        except DecodeError as exc:
            path = f"$.batches[{index}]{exc.path[1:]}"
            decoded.append(ApiError(400, "invalid_body", exc.message, path))
    return decoded


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


def _publish_stored(
    ctx: ServerContext, batch: Batch, received_at: datetime, levels: dict[str, str]
) -> None:
    """The ``sample`` events of a stored batch, then ``machine`` events for machines that
    are new or back (``levels``: firing levels before this batch was evaluated)."""
    samples_by_key = sample_events(batch)
    for key, data in samples_by_key:
        ctx.hub.publish("sample", data, key)
    ctx.hub.batch_stored(batch)
    for key, _ in samples_by_key:
        if ctx.presence.seen(key, received_at) is not None:
            status = levels.get(key, "ok")
            data = {"key": key, "status": status, "last_seen": iso(batch.timestamp)}
            ctx.hub.publish("machine", data, key)


def _record(ctx: ServerContext, batch: Batch, result: IngestResult) -> None:
    samples = (1 if batch.host is not None else 0) + len(batch.containers)
    ctx.stats.record_ingest(samples, result.duplicates, time.monotonic())


async def ingest_batch(ctx: ServerContext, batch: Batch) -> IngestResult:
    """Store ``batch`` (durable when this returns), then publish and evaluate alerts.

    Raises ``ApiError(503)`` when the database is unavailable; nothing is published then.
    """
    received_at = ctx.clock()
    result: IngestResult = await ctx.run_db(ctx.storage.ingest, batch, received_at)
    _record(ctx, batch, result)
    if not result.stored:
        return result
    levels = ctx.alerting.firing_levels() if ctx.alerting is not None else {}
    _publish_stored(ctx, batch, received_at, levels)
    if ctx.alerting is not None:
        events = await ctx.run_db(ctx.alerting.on_batch, batch, received_at)
        ctx.publish_alerts(events)
    return result


def _evaluate_in_order(
    alerting: Alerting | None, batches: list[Batch], received_at: datetime
) -> list[tuple[dict[str, str], list[dict[str, Any]]]]:
    """On the DB thread: per batch, the firing levels before it and its alert events."""
    out: list[tuple[dict[str, str], list[dict[str, Any]]]] = []
    for batch in batches:
        if alerting is None:
            out.append(({}, []))
            continue
        levels = alerting.firing_levels()
        out.append((levels, alerting.on_batch(batch, received_at)))
    return out


async def ingest_batches(ctx: ServerContext, batches: Sequence[Batch]) -> list[IngestResult]:
    """Store many batches in one transaction, then for each stored batch in order publish
    its ``sample``/``machine`` events and its alert transitions, exactly as
    :func:`ingest_batch` would one by one. Raises ``ApiError(503)`` when the database is
    unavailable; nothing is stored or published then.
    """
    if not batches:
        return []
    received_at = ctx.clock()
    results: list[IngestResult] = await ctx.run_db(
        ctx.storage.ingest_many, list(batches), received_at
    )
    stored: list[Batch] = []
    for batch, result in zip(batches, results, strict=True):
        _record(ctx, batch, result)
        if result.stored:
            stored.append(batch)
    if not stored:
        return results
    evaluated = await ctx.run_db(_evaluate_in_order, ctx.alerting, stored, received_at)
    for batch, (levels, events) in zip(stored, evaluated, strict=True):
        _publish_stored(ctx, batch, received_at, levels)
        ctx.publish_alerts(events)
    return results
