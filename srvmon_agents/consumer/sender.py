"""Delivering one lane: decode its messages, post them in offset order, settle each one.

A worker takes what its lane holds (at most ``max_request_batches`` messages, at most
``max_request_bytes`` of envelopes per request) and posts it as ONE ``{"batches": [...]}``
request. Each message is then acked, or dead-lettered with the server's message when its
envelope alone was refused. Nothing here can stall a partition: an undecodable message, a
refused one and one that cannot even be dead-lettered are all moved past (see
deadletter.py), and an unexpected error dead-letters the messages it hit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from attrs import Factory, frozen

from srvmon_agents.consumer.backoff import Backoff
from srvmon_agents.consumer.deadletter import DeadLetterSink, ParkOutcome, dead_letter_headers
from srvmon_agents.consumer.delivery import (
    BATCHES_BODY_OVERHEAD,
    IngestAnswer,
    Verdict,
)
from srvmon_agents.consumer.lanes import Lanes
from srvmon_agents.consumer.stats import RelayStats
from srvmon_agents.consumer.work import PartitionKey, Ready, Work
from srvmon_core.errors import SrvmonError
from srvmon_core.schema import Batch

LOG = logging.getLogger("srvmon.consumer")

Decoder = Callable[[bytes], tuple[Batch, bytes]]
"""A message's bytes → its batch and the srvmon envelope to post for it (e.g.
``srvmon_core.codec.decode_for_forwarding``); raises ``SrvmonError`` when undecodable."""

Answers = list[IngestAnswer] | IngestAnswer


class Ingest(Protocol):
    """Where a lane's messages go: ``IngestClient`` (HTTP to a server), or a server in
    the same process (``srvmon_cli.replica``). One attempt per call: an answer per
    message, or one for the whole group; never raises for an unavailable server."""

    def post_ready(self, group: list[Ready]) -> Answers: ...


@frozen(kw_only=True)
class SendLimits:
    max_request_batches: int = 500
    max_request_bytes: int = 4 * 1024 * 1024
    backoff: Backoff = Factory(Backoff)


def request_groups(ready: list[Ready], limits: SendLimits) -> list[list[Ready]]:
    """Consecutive runs of at most max_request_batches envelopes and max_request_bytes of
    body; an envelope larger than the byte limit is a group of its own."""
    groups: list[list[Ready]] = []
    size = 0
    for item in ready:
        grown = size + len(item.body) + 1
        current = groups[-1] if groups else None
        if (
            current is None
            or len(current) >= limits.max_request_batches
            or grown + BATCHES_BODY_OVERHEAD > limits.max_request_bytes
        ):
            groups.append([item])
            size = len(item.body) + 1
        else:
            current.append(item)
            size = grown
    return groups


def retry_reason(answers: Answers) -> str:
    """What the log says when a request must be repeated: the first retryable answer's
    detail (e.g. ``ConnectionRefusedError: …`` or ``HTTP 503: …``)."""
    if isinstance(answers, IngestAnswer):
        return answers.detail
    for answer in answers:
        if answer.verdict is Verdict.RETRY:
            return answer.detail
    return "no answer"


class Sender:
    """Drains lanes on the worker threads (one worker per lane at a time)."""

    def __init__(
        self,
        *,
        lanes: Lanes,
        ingest: Ingest,
        dead_letter: DeadLetterSink,
        decode: Decoder,
        stats: RelayStats,
        limits: SendLimits,
    ) -> None:
        self._lanes = lanes
        self._ingest = ingest
        self._dead_letter = dead_letter
        self._decode = decode
        self._stats = stats
        self._limits = limits

    def drain(self, lane: PartitionKey) -> None:
        """Deliver what ``lane`` holds until it is empty (a worker thread's task)."""
        while works := self._lanes.take(lane, self._limits.max_request_batches):
            self._send(lane, works)

    def _send(self, lane: PartitionKey, works: list[Work]) -> None:
        ready: list[Ready] = []
        for work in works:
            try:
                if work.value is None:
                    raise SrvmonError("empty message (no value)")
                batch, body = self._decode(work.value)
            except SrvmonError as exc:
                self._park(work, f"undecodable: {exc}")
                continue
            except Exception as exc:  # a decoder bug is this message's problem only
                LOG.exception("decoding %s failed unexpectedly", work.label)
                self._park(work, f"undecodable: {type(exc).__name__}: {exc}")
                continue
            ready.append(Ready(work, batch, body))
        for group in request_groups(ready, self._limits):
            try:
                self._deliver(lane, group)
            except Exception as exc:  # never leave a partition stuck behind a bug
                LOG.exception(
                    "delivery of %s..%d failed unexpectedly; dead-lettering those messages",
                    group[0].work.label,
                    group[-1].work.offset,
                )
                for item in group:
                    self._park(item.work, f"internal error: {type(exc).__name__}: {exc}")

    def _post(self, group: list[Ready]) -> Answers:
        return self._ingest.post_ready(group)

    def _deliver(self, lane: PartitionKey, group: list[Ready]) -> None:
        """Post ``group`` until every message is acked or parked; retry the whole request
        on 5xx, timeouts and network errors. A request the server refuses as a whole (e.g.
        a server without batched ingest) is retried envelope by envelope."""
        attempt = 0
        while not any(self._lanes.stale(item.work) for item in group):
            answers = self._post(group)
            if isinstance(answers, IngestAnswer) and answers.verdict is Verdict.REJECTED:
                for item in group:
                    self._deliver(lane, [item])
                return
            if isinstance(answers, list) and all(a.verdict is not Verdict.RETRY for a in answers):
                for item, answer in zip(group, answers, strict=True):
                    self._settle(item, answer)
                return
            attempt += 1
            self._stats.add(retries=1)
            self._lanes.set_retrying(lane, True)
            delay = self._limits.backoff.delay(attempt)
            if attempt == 1 or attempt % 10 == 0:
                LOG.warning(
                    "ingest not available (%s); retry %d in %.2fs",
                    retry_reason(answers),
                    attempt,
                    delay,
                )
            self._lanes.hard_stop.wait(delay)

    def _settle(self, item: Ready, answer: IngestAnswer) -> None:
        """Ack an accepted message, dead-letter a refused one with the server's message."""
        if answer.verdict is Verdict.ACCEPTED:
            self._stats.add(batches=1, samples=item.samples, duplicates=answer.duplicates)
            self._lanes.finish(item.work)
            return
        self._park(item.work, f"rejected by server (HTTP {answer.status}): {answer.detail}")

    def _park(self, work: Work, error: str) -> None:
        """Dead-letter ``work`` (or a truncated copy, or count the failure) and finish it."""
        topic, partition = work.key
        headers = dead_letter_headers(error, topic, partition, work.offset, work.timestamp_ms)
        parked = self._dead_letter.park(
            key=work.message_key,
            value=work.value,
            headers=headers,
            should_stop=lambda: self._lanes.stale(work),
        )
        if parked.outcome is ParkOutcome.STOPPED:
            return  # not finished: the partition's next owner (or next run) sees it again
        size = len(work.value) if work.value is not None else 0
        if parked.outcome is ParkOutcome.FULL:
            self._stats.add(dead_lettered=1)
            LOG.warning("dead-lettered %s: %s", work.label, error[:300])
        elif parked.outcome is ParkOutcome.TRUNCATED:
            self._stats.add(dead_lettered=1, dead_letter_truncated=1)
            LOG.warning(
                "dead-lettered a truncated copy of %s (%d bytes; full copy failed: %s): %s",
                work.label,
                size,
                parked.detail[:200],
                error[:300],
            )
        else:
            self._stats.add(dead_letter_failures=1)
            LOG.error(
                "could not dead-letter %s (%d bytes), moving past it: %s; it was poison "
                "because: %s",
                work.label,
                size,
                parked.detail[:300],
                error[:300],
            )
        self._lanes.finish(work)
