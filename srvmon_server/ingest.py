"""The ingest pipeline shared by POST /api/v1/ingest and standalone mode.

View the batch once (``srvmon_core.view``), store it durably, then publish its ``sample``
and ``machine`` events, then evaluate the alert rules and publish their transitions. One
path, whichever way a batch arrives. Errors are domain errors (``DecodeError`` for a bad
body, ``StorageUnavailable`` when the database is down); the handler maps them to HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from srvmon_core import codec
from srvmon_core.errors import DecodeError
from srvmon_core.schema import Batch
from srvmon_core.view import BatchView, batch_view

if TYPE_CHECKING:
    from srvmon_server.context import ServerContext
    from srvmon_server.storage import IngestResult


MAX_BATCHES_PER_REQUEST = 1000
"""Most envelopes one ``{"batches": [...]}`` body may carry."""


def decode_request(body: bytes) -> Batch | list[Batch | DecodeError]:
    """One envelope (or legacy document) → a Batch; ``{"batches": [...]}`` → one Batch or
    one ``DecodeError`` per envelope, in order (its field path under ``$.batches[i]``).

    Raises ``DecodeError`` when the body as a whole is not JSON, is not a valid envelope,
    or ``batches`` is not a list of 1 to ``MAX_BATCHES_PER_REQUEST`` items.
    """
    data = codec.parse_json(body)
    if type(data) is not dict or "batches" not in data:
        return codec.message_from_dict(data)
    items = data["batches"]
    if type(items) is not list or not items:
        raise DecodeError("must be a non-empty list of envelopes", "$.batches")
    if len(items) > MAX_BATCHES_PER_REQUEST:
        message = f"at most {MAX_BATCHES_PER_REQUEST} envelopes per request, got {len(items)}"
        raise DecodeError(message, "$.batches")
    if len(data) != 1:
        extra = sorted(k for k in data if k != "batches")[0]
        raise DecodeError("unknown field beside batches", f"$.{extra}")
    decoded: list[Batch | DecodeError] = []
    for index, item in enumerate(items):
        try:
            decoded.append(codec.message_from_dict(item))
        except DecodeError as exc:
            decoded.append(DecodeError(exc.message, f"$.batches[{index}]{exc.path[1:]}"))
    return decoded


def _record(ctx: ServerContext, view: BatchView, result: IngestResult) -> None:
    ctx.stats.record_ingest(view.sample_count, result.duplicates, time.monotonic())


async def ingest_batch(ctx: ServerContext, batch: Batch) -> IngestResult:
    """Store ``batch`` (durable when this returns), then publish and evaluate alerts.

    The batch is viewed once; storage, the ``sample`` events and the engine all read that
    one view. Raises ``StorageUnavailable`` when the database is down; nothing is
    published then.
    """
    received_at = ctx.clock()
    view = batch_view(batch)
    result = await ctx.db.run_bulk(ctx.storage.samples.ingest, view, received_at)
    _record(ctx, view, result)
    if not result.stored:
        return result
    ctx.live.stored(view, received_at, ctx.alerting.firing_levels())
    ctx.live.alerts(await ctx.db.run_bulk(ctx.alerting.on_batch, view, received_at))
    return result


async def ingest_batches(ctx: ServerContext, batches: Sequence[Batch]) -> list[IngestResult]:
    """Store many batches in one transaction, then for each stored batch in order publish
    its ``sample``/``machine`` events and its alert transitions, exactly as
    :func:`ingest_batch` would one by one. Raises ``StorageUnavailable`` when the database
    is down; nothing is stored or published then.
    """
    if not batches:
        return []
    received_at = ctx.clock()
    views = [batch_view(batch) for batch in batches]
    results = await ctx.db.run_bulk(ctx.storage.samples.ingest_many, views, received_at)
    stored: list[BatchView] = []
    for view, result in zip(views, results, strict=True):
        _record(ctx, view, result)
        if result.stored:
            stored.append(view)
    if not stored:
        return results
    evaluated = await ctx.db.run_bulk(ctx.alerting.on_batches, stored, received_at)
    for view, (levels, events) in zip(stored, evaluated, strict=True):
        ctx.live.stored(view, received_at, levels)
        ctx.live.alerts(events)
    return results


async def ingest_partitioned(
    ctx: ServerContext, arrivals: Sequence[tuple[Batch, int]]
) -> list[IngestResult]:
    """Replica mode: batches taken from the metrics topic, each with its partition. The
    partitions are noted first (a host newly seen on a partition this replica holds is
    adopted, its saved alert state loaded), then the batches take :func:`ingest_batches`;
    the alert rules run only for hosts this replica evaluates."""
    replica = ctx.replica
    if replica is None:
        raise RuntimeError("ingest_partitioned needs replica mode (config.replica)")
    pairs = [(batch.host_id, partition) for batch, partition in arrivals]
    adopted = await ctx.db.run_bulk(replica.ownership.arrived, pairs, ctx.clock())
    if adopted:
        replica.adopted(adopted, ())
    return await ingest_batches(ctx, [batch for batch, _ in arrivals])
