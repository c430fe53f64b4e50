"""The ingest pipeline shared by POST /api/v1/ingest and standalone mode.

View the batch once (``srvmon_core.view``), store it durably, evaluate the alert rules,
then publish its ``sample`` and ``machine`` events, the alert transitions and the host's
``summary``. One
path, whichever way a batch arrives. Errors are domain errors (``DecodeError`` for a bad
body, ``StorageUnavailable`` when the database is down); the handler maps them to HTTP.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING

from srvmon_core import codec
from srvmon_core.alert_state import AlertEvent
from srvmon_core.errors import DecodeError
from srvmon_core.schema import Batch
from srvmon_core.view import BatchView, batch_view

if TYPE_CHECKING:
    from srvmon_server.alerting import Alerting
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


DECODE_OFF_LOOP_BYTES = 128 * 1024
"""Bodies larger than this (a consumer's ``{"batches": [...]}``) are decoded and viewed on
the decode thread: the IOLoop goes on serving streams, pages and REST meanwhile."""


@functools.cache
def _decode_thread() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="srvmon-decode")


Decoded = BatchView | list[BatchView | DecodeError]


def decode_and_view(body: bytes) -> Decoded:
    """:func:`decode_request`, then each batch's machine view (``srvmon_core.view``)."""
    decoded = decode_request(body)
    if isinstance(decoded, Batch):
        return batch_view(decoded)
    return [batch_view(item) if isinstance(item, Batch) else item for item in decoded]


async def decode_body(body: bytes) -> Decoded:
    """Decode and view a request body: on the IOLoop when small, else on the one decode
    thread (a large body holds the interpreter for tens of milliseconds; off the loop it
    only takes turns with it). Raises ``DecodeError`` as :func:`decode_request` does."""
    if len(body) <= DECODE_OFF_LOOP_BYTES:
        return decode_and_view(body)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_decode_thread(), decode_and_view, body)


async def ingest_batch(ctx: ServerContext, batch: Batch | BatchView) -> IngestResult:
    """Store ``batch`` (durable when this returns), evaluate the alert rules, then publish
    its events and alert transitions (in that order, so the host's summary carries the
    alerts this sample caused).

    The batch is viewed once; storage, the engine, the ``sample`` events and the host's
    summary all read that one view. Raises ``StorageUnavailable`` when the database is
    down; nothing is published then.
    """
    received_at = ctx.clock()
    view = batch if isinstance(batch, BatchView) else batch_view(batch)
    result = await ctx.db.run(ctx.storage.samples.ingest, view, received_at)
    _record(ctx, view, result)
    if not result.stored:
        return result
    levels = ctx.alerting.firing_levels()
    events = await ctx.db.run(ctx.alerting.on_batch, view, received_at)
    ctx.live.stored(view, received_at, levels)
    ctx.live.alerts(events)
    return result


def _evaluate_in_order(
    alerting: Alerting, views: list[BatchView], received_at: datetime
) -> list[tuple[dict[str, str], list[AlertEvent]]]:
    """On the DB thread: per batch, the firing levels before it and its alert events."""
    out: list[tuple[dict[str, str], list[AlertEvent]]] = []
    for view in views:
        levels = alerting.firing_levels()
        out.append((levels, alerting.on_batch(view, received_at)))
    return out


async def ingest_batches(
    ctx: ServerContext, batches: Sequence[Batch | BatchView]
) -> list[IngestResult]:
    """Store many batches in one transaction, then for each stored batch in order publish
    its ``sample``/``machine`` events and its alert transitions, exactly as
    :func:`ingest_batch` would one by one. Raises ``StorageUnavailable`` when the database
    is down; nothing is stored or published then.
    """
    if not batches:
        return []
    received_at = ctx.clock()
    views = [b if isinstance(b, BatchView) else batch_view(b) for b in batches]
    results = await ctx.db.run(ctx.storage.samples.ingest_many, views, received_at)
    stored: list[BatchView] = []
    for view, result in zip(views, results, strict=True):
        _record(ctx, view, result)
        if result.stored:
            stored.append(view)
    if not stored:
        return results
    evaluated = await ctx.db.run(_evaluate_in_order, ctx.alerting, stored, received_at)
    for view, (levels, events) in zip(stored, evaluated, strict=True):
        ctx.live.stored(view, received_at, levels)
        ctx.live.alerts(events)
    return results
