"""The ingest pipeline shared by POST /api/v1/ingest and standalone mode.

View the batch once (``srvmon_core.view``), check its timestamp against the server's
clock, store it durably, evaluate the alert rules, then publish its ``sample`` and
``machine`` events, the alert transitions and the host's ``summary``. One path, whichever
way a batch arrives. Errors are domain errors (``DecodeError`` for a bad body,
``TimestampRejected`` for a batch outside the accepted window, ``StorageUnavailable`` when
the database is down); the handler maps them to HTTP.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from attrs import frozen

from srvmon_core import codec
from srvmon_core.errors import DecodeError, SrvmonError
from srvmon_core.legacy import is_legacy_document
from srvmon_core.schema import Batch
from srvmon_core.view import BatchView, batch_view
from srvmon_server import wirejson

if TYPE_CHECKING:
    from srvmon_server.config import ServerConfig
    from srvmon_server.context import ServerContext
    from srvmon_server.storage import IngestResult


MAX_BATCHES_PER_REQUEST = 1000
"""Most envelopes one ``{"batches": [...]}`` body may carry."""


class TimestampRejected(SrvmonError):
    """A batch's timestamp lies outside the window the server accepts around its clock
    (``$.timestamp``). Nothing of the batch is stored; sending it again changes nothing."""

    path = "$.timestamp"

    def __init__(self, message: str, samples: int) -> None:
        super().__init__(message)
        self.message = message
        self.samples = samples
        """Machine samples the batch carried (counted in the rejected-samples metric)."""


@frozen(kw_only=True)
class TimeWindow:
    """Timestamps ingest accepts: from ``max_age`` before the server's clock to
    ``max_ahead`` after it. Anything else is a wrong clock: a sample dated 1970 would make
    the roll-up walk 56 years, one dated 2099 would hold the machine's inventory."""

    max_age: timedelta
    max_ahead: timedelta

    @classmethod
    def of(cls, config: ServerConfig) -> TimeWindow:
        return cls(
            max_age=timedelta(seconds=config.max_sample_age_seconds),
            max_ahead=timedelta(seconds=config.max_sample_ahead_seconds),
        )

    def problem(self, timestamp: datetime, now: datetime) -> str | None:
        """Why ``timestamp`` is refused at ``now``, or None."""
        lead = timestamp - now
        if -self.max_age <= lead <= self.max_ahead:
            return None
        when = "before" if lead < timedelta(0) else "after"
        return (
            f"timestamp {codec.unstructure(timestamp)} is {_span(abs(lead))} {when} the "
            f"server's clock ({codec.unstructure(now)}); the server accepts samples from "
            f"{_span(self.max_age)} before to {_span(self.max_ahead)} after it: check the "
            "sending host's clock"
        )

    def check(self, view: BatchView, now: datetime) -> None:
        """Raise TimestampRejected when ``view``'s timestamp is outside the window."""
        problem = self.problem(view.timestamp, now)
        if problem is not None:
            raise TimestampRejected(problem, view.sample_count)


def _span(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.0f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.0f} hours"
    return f"{seconds:.0f} s"


def decode_request(
    body: bytes, *, legacy_tz: tzinfo = UTC, legacy_interval_seconds: float = 1.0
) -> Batch | list[Batch | DecodeError]:
    """One envelope (or legacy document) → a Batch; ``{"batches": [...]}`` → one Batch or
    one ``DecodeError`` per envelope, in order (its field path under ``$.batches[i]``).
    Legacy Java documents are read in ``legacy_tz`` with ``legacy_interval_seconds`` loops.

    Raises ``DecodeError`` when the body as a whole is not JSON, is not a valid envelope,
    or ``batches`` is not a list of 1 to ``MAX_BATCHES_PER_REQUEST`` items.

    The body is parsed by orjson when it accepts it (``srvmon_server.wirejson``). A body
    orjson refuses, or one that then fails to decode anywhere, is decoded from
    ``codec.parse_json`` (the standard library's parse): the result and every error are
    the ones that parse gives.
    """
    read = functools.partial(
        _decode_parsed, legacy_tz=legacy_tz, legacy_interval_seconds=legacy_interval_seconds
    )
    data = wirejson.parse(body)
    if data is not wirejson.REFUSED:
        try:
            decoded = read(data)
        except DecodeError:
            pass
        else:
            if isinstance(decoded, Batch) or not any(
                isinstance(item, DecodeError) for item in decoded
            ):
                return decoded
    return read(codec.parse_json(body))


def decode_message(
    data: bytes, *, legacy_tz: tzinfo = UTC, legacy_interval_seconds: float = 1.0
) -> tuple[Batch, bytes]:
    """A Kafka message → its batch and the envelope bytes, as
    ``codec.decode_for_forwarding`` gives them (what a server replica's relay decodes).

    A srvmon envelope that orjson parses and that then decodes is returned with its own
    bytes. Anything else (a legacy Java document, read in ``legacy_tz`` with
    ``legacy_interval_seconds`` loops; another encoding; a message that does not decode)
    goes through ``decode_for_forwarding``, so every result and error is its own.
    """
    parsed = wirejson.parse(data)
    if parsed is not wirejson.REFUSED and not is_legacy_document(parsed):
        try:
            return codec.message_from_dict(parsed), bytes(data)
        except DecodeError:
            pass
    return codec.decode_for_forwarding(
        data, legacy_tz=legacy_tz, legacy_interval_seconds=legacy_interval_seconds
    )


def _decode_parsed(
    data: Any, *, legacy_tz: tzinfo, legacy_interval_seconds: float
) -> Batch | list[Batch | DecodeError]:
    if type(data) is not dict or "batches" not in data:
        return codec.message_from_dict(
            data, legacy_tz=legacy_tz, legacy_interval_seconds=legacy_interval_seconds
        )
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
            decoded.append(
                codec.message_from_dict(
                    item, legacy_tz=legacy_tz, legacy_interval_seconds=legacy_interval_seconds
                )
            )
        except DecodeError as exc:
            decoded.append(DecodeError(exc.message, f"$.batches[{index}]{exc.path[1:]}"))
    return decoded


def _record(ctx: ServerContext, view: BatchView, result: IngestResult) -> None:
    ctx.stats.record_ingest(view.sample_count, result.duplicates, time.monotonic())


def _in_window(ctx: ServerContext, view: BatchView, now: datetime) -> None:
    try:
        TimeWindow.of(ctx.config).check(view, now)
    except TimestampRejected as rejected:
        ctx.stats.record_rejected("timestamp", rejected.samples)
        raise


DECODE_OFF_LOOP_BYTES = 128 * 1024
"""Bodies larger than this (a consumer's ``{"batches": [...]}``) are decoded and viewed on
the decode thread: the IOLoop goes on serving streams, pages and REST meanwhile."""


@functools.cache
def _decode_thread() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="srvmon-decode")


Decoded = BatchView | list[BatchView | DecodeError]


def decode_and_view(
    body: bytes, *, legacy_tz: tzinfo = UTC, legacy_interval_seconds: float = 1.0
) -> Decoded:
    """:func:`decode_request`, then each batch's machine view (``srvmon_core.view``)."""
    decoded = decode_request(
        body, legacy_tz=legacy_tz, legacy_interval_seconds=legacy_interval_seconds
    )
    if isinstance(decoded, Batch):
        return batch_view(decoded)
    return [batch_view(item) if isinstance(item, Batch) else item for item in decoded]


async def decode_body(
    body: bytes, *, legacy_tz: tzinfo = UTC, legacy_interval_seconds: float = 1.0
) -> Decoded:
    """Decode and view a request body: on the IOLoop when small, else on the one decode
    thread (a large body holds the interpreter for tens of milliseconds; off the loop it
    only takes turns with it). Legacy Java documents are read as :func:`decode_request`
    reads them. Raises ``DecodeError`` as :func:`decode_request` does."""
    work = functools.partial(
        decode_and_view,
        body,
        legacy_tz=legacy_tz,
        legacy_interval_seconds=legacy_interval_seconds,
    )
    if len(body) <= DECODE_OFF_LOOP_BYTES:
        return work()
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_decode_thread(), work)


async def ingest_batch(ctx: ServerContext, batch: Batch | BatchView) -> IngestResult:
    """Store ``batch`` (durable when this returns), evaluate the alert rules, then publish
    its events and alert transitions (in that order, so the host's summary carries the
    alerts this sample caused).

    The batch is viewed once; storage, the engine, the ``sample`` events and the host's
    summary all read that one view. Raises ``TimestampRejected`` (counted) when its
    timestamp is outside the accepted window, ``StorageUnavailable`` when the database is
    down; nothing is published then.
    """
    with ctx.backlog.held():
        return await _ingest_one(ctx, batch)


async def _ingest_one(ctx: ServerContext, batch: Batch | BatchView) -> IngestResult:
    received_at = ctx.clock()
    view = batch if isinstance(batch, BatchView) else batch_view(batch)
    _in_window(ctx, view, received_at)
    result = await ctx.db.run_bulk(ctx.storage.samples.ingest, view, received_at)
    _record(ctx, view, result)
    if not result.stored:
        return result
    levels = ctx.alerting.firing_levels()
    heard_at = ctx.clock()  # stored: the time it waited in the server is no silence
    events = await ctx.db.run_bulk(ctx.alerting.on_batch, view, heard_at)
    ctx.names.seen(view)
    ctx.live.stored(view, heard_at, levels)
    ctx.live.alerts(events)
    return result


async def ingest_batches(
    ctx: ServerContext, batches: Sequence[Batch | BatchView]
) -> list[IngestResult | TimestampRejected]:
    """Store many batches in one transaction, then for each stored batch in order publish
    its ``sample``/``machine`` events and its alert transitions, exactly as
    :func:`ingest_batch` would one by one. A batch outside the accepted time window is
    not stored; its entry is the ``TimestampRejected`` (counted). Raises
    ``StorageUnavailable`` when the database is down; nothing is stored or published then.
    """
    if not batches:
        return []
    with ctx.backlog.held():
        return await _ingest_many(ctx, batches)


async def _ingest_many(
    ctx: ServerContext, batches: Sequence[Batch | BatchView]
) -> list[IngestResult | TimestampRejected]:
    received_at = ctx.clock()
    answers: list[IngestResult | TimestampRejected | BatchView] = []
    for batch in batches:
        view = batch if isinstance(batch, BatchView) else batch_view(batch)
        try:
            _in_window(ctx, view, received_at)
        except TimestampRejected as rejected:
            answers.append(rejected)
        else:
            answers.append(view)
    views = [a for a in answers if isinstance(a, BatchView)]
    results = iter(
        await ctx.db.run_bulk(ctx.storage.samples.ingest_many, views, received_at) if views else []
    )
    stored: list[BatchView] = []
    out: list[IngestResult | TimestampRejected] = []
    for answer in answers:
        if not isinstance(answer, BatchView):
            out.append(answer)
            continue
        result = next(results)
        out.append(result)
        _record(ctx, answer, result)
        if result.stored:
            stored.append(answer)
    if not stored:
        return out
    heard_at = ctx.clock()  # stored: the time they waited in the server is no silence
    evaluated = await ctx.db.run_bulk(ctx.alerting.on_batches, stored, heard_at)
    for view, (levels, events) in zip(stored, evaluated, strict=True):
        ctx.names.seen(view)
        ctx.live.stored(view, heard_at, levels)
        ctx.live.alerts(events)
    return out


async def ingest_partitioned(
    ctx: ServerContext, arrivals: Sequence[tuple[Batch, int]]
) -> list[IngestResult | TimestampRejected]:
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
