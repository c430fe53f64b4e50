"""The relay loop: Kafka → decode → POST ingest → commit, with pause/resume and dead letters.

Threads: the caller's thread owns the Kafka consumer (poll, commit, pause, rebalance
callbacks). A pool of delivery workers posts batches. The messages of one partition form a
*lane* and are posted strictly in offset order (so every host's batches stay in order);
different lanes are posted in parallel. A worker takes what its lane holds (at most
``max_request_batches`` messages, ``max_request_bytes`` of envelopes) and posts it as ONE
``{"batches": [...]}`` request; each message is then acked, or dead-lettered with the
server's message when its envelope alone was refused. Offsets are committed only for the
finished prefix of each partition (see ledger.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from attrs import Factory, frozen

from srvmon_agents.consumer.backoff import Backoff
from srvmon_agents.consumer.deadletter import DeadLetterSink, dead_letter_headers
from srvmon_agents.consumer.delivery import (
    BATCHES_BODY_OVERHEAD,
    IngestAnswer,
    IngestClient,
    Verdict,
)
from srvmon_agents.consumer.ledger import OffsetLedger, PartitionKey
from srvmon_agents.consumer.stats import RelayStats, StatsSnapshot, rate_per_second
from srvmon_core.errors import SrvmonError
from srvmon_core.schema import Batch

LOG = logging.getLogger("srvmon.consumer")

Decoder = Callable[[bytes], tuple[Batch, bytes]]
"""A message's bytes → its batch and the srvmon envelope to post for it (e.g.
``srvmon_core.codec.decode_for_forwarding``); raises ``SrvmonError`` when undecodable."""
LaneKey = PartitionKey


@frozen(kw_only=True)
class RelaySettings:
    topic: str
    batch_size: int = 500
    """Most messages taken per poll."""
    max_request_batches: int = 500
    """Most envelopes posted in one ingest request (the server takes up to 1,000)."""
    max_request_bytes: int = 4 * 1024 * 1024
    """Most body bytes of one multi-envelope request (keep below the server's body limit);
    a single envelope larger than this is still sent, alone."""
    parallelism: int = 8
    """Delivery workers (concurrent POSTs, one per lane, i.e. partition, at a time)."""
    max_in_flight: int = 2000
    """Most messages handed out and not yet finished; above it consumption waits."""
    backoff: Backoff = Factory(Backoff)
    commit_interval_seconds: float = 0.2
    revoke_grace_seconds: float = 5.0
    """On rebalance, how long to let in-flight work of revoked partitions finish."""
    shutdown_grace_seconds: float = 30.0
    """On shutdown, how long to let in-flight work finish before abandoning it."""
    stats_interval_seconds: float = 10.0
    poll_timeout_seconds: float = 0.2


@frozen
class _Work:
    key: PartitionKey
    offset: int
    message_key: bytes | None
    value: bytes | None
    timestamp_ms: int | None
    epoch: int


@frozen
class _Ready:
    """A decoded message and its request body."""

    work: _Work
    batch: Batch
    body: bytes


class RelayError(SrvmonError):
    """The relay cannot go on (e.g. a fatal Kafka error)."""


class Relay:
    """Runs the consumer loop until ``stop`` is set. Build it with the real or a test consumer."""

    def __init__(
        self,
        consumer: Any,
        *,
        ingest: IngestClient,
        dead_letter: DeadLetterSink,
        decode: Decoder,
        settings: RelaySettings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._consumer = consumer
        self._ingest = ingest
        self._dead_letter = dead_letter
        self._decode = decode
        self.settings = settings
        self._clock = clock
        self.stats = RelayStats()
        self._ledger = OffsetLedger()
        self._lock = threading.Condition()
        self._lanes: dict[LaneKey, deque[_Work]] = {}
        self._active_lanes: set[LaneKey] = set()
        self._epochs: dict[PartitionKey, int] = {}
        self._retrying_lanes: set[LaneKey] = set()
        self._assigned: set[PartitionKey] = set()
        self._paused = False
        self._hard_stop = threading.Event()
        self._pool = ThreadPoolExecutor(settings.parallelism, thread_name_prefix="srvmon-deliver")
        self._last_commit = 0.0
        self._last_stats: StatsSnapshot | None = None
        self.latest: StatsSnapshot | None = None
        self._lag: dict[str, int] = {}

    # ---- Kafka side (caller's thread) -------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Consume and relay until ``stop`` is set, then drain, commit and close."""
        self._consumer.subscribe(
            [self.settings.topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        next_stats = self._clock() + self.settings.stats_interval_seconds
        try:
            while not stop.is_set():
                self._step()
                if self._clock() >= next_stats:
                    self.log_stats()
                    next_stats = self._clock() + self.settings.stats_interval_seconds
            self._shutdown()
        finally:
            self._hard_stop.set()
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _step(self) -> None:
        with self._lock:
            in_flight = self._ledger.in_flight()
            retrying = bool(self._retrying_lanes)
        should_pause = retrying or in_flight >= self.settings.max_in_flight
        if should_pause and not self._paused:
            self._pause()
        elif self._paused and not retrying and in_flight < self.settings.max_in_flight // 2:
            self._resume()
        if self._paused:
            # Keep polling so rebalances and the group session are served; nothing is fetched
            # for paused partitions. Anything that still arrives is tracked normally.
            messages = self._consumer.consume(self.settings.batch_size, 0.1)
        else:
            messages = self._take()
        for message in messages:
            self._accept(message)
        self._maybe_commit(force=False)

    def _take(self) -> list[Any]:
        """Up to batch_size messages, without waiting for a full batch.

        ``consume(n, timeout)`` waits until n messages or the timeout, which would add up to
        the timeout to every alert's latency on a quiet topic. So: take what is there now;
        when nothing is, block for the first message only, then take what came with it.
        """
        size = self.settings.batch_size
        messages: list[Any] = self._consumer.consume(size, 0)
        if messages:
            return messages
        first = self._consumer.poll(self.settings.poll_timeout_seconds)
        if first is None:
            return []
        return [first, *self._consumer.consume(size - 1, 0)] if size > 1 else [first]

    def _accept(self, message: Any) -> None:
        error = message.error()
        if error is not None:
            if error.fatal():
                raise RelayError(f"fatal Kafka error: {error}")
            LOG.warning("Kafka reports: %s", error)
            return
        key: PartitionKey = (message.topic(), message.partition())
        with self._lock:
            if key not in self._assigned:
                return
            _kind, timestamp = message.timestamp()
            work = _Work(
                key=key,
                offset=message.offset(),
                message_key=message.key(),
                value=message.value(),
                timestamp_ms=timestamp if timestamp > 0 else None,
                epoch=self._epochs.get(key, 0),
            )
            self._ledger.track(key, work.offset)
            lane: LaneKey = key
            self._lanes.setdefault(lane, deque()).append(work)
            if lane not in self._active_lanes:
                self._active_lanes.add(lane)
                self._pool.submit(self._drain, lane)

    def _maybe_commit(self, *, force: bool, keys: set[PartitionKey] | None = None) -> None:
        now = self._clock()
        if not force and now - self._last_commit < self.settings.commit_interval_seconds:
            return
        self._last_commit = now
        with self._lock:
            offsets = self._ledger.to_commit(keys if keys is not None else set(self._assigned))
        if not offsets:
            return
        from confluent_kafka import KafkaException, TopicPartition

        partitions = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        try:
            self._consumer.commit(offsets=partitions, asynchronous=False)
        except KafkaException as exc:
            LOG.warning("commit failed (will retry): %s", exc)
            return
        with self._lock:
            self._ledger.mark_committed(offsets)

    def _assigned_partitions(self) -> list[Any]:
        from confluent_kafka import TopicPartition

        return [TopicPartition(t, p) for t, p in sorted(self._assigned)]

    def _pause(self) -> None:
        partitions = self._assigned_partitions()
        if partitions:
            self._consumer.pause(partitions)
        self._paused = True
        LOG.info(
            "paused consumption of %d partition(s): server slow or unreachable", len(partitions)
        )

    def _resume(self) -> None:
        partitions = self._assigned_partitions()
        if partitions:
            self._consumer.resume(partitions)
        self._paused = False
        LOG.info("resumed consumption of %d partition(s)", len(partitions))

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        keys = {(tp.topic, tp.partition) for tp in partitions}
        with self._lock:
            self._assigned |= keys
            for key in keys:
                self._epochs[key] = self._epochs.get(key, 0) + 1
        LOG.info("assigned %s", sorted(keys))
        if self._paused:
            consumer.assign(partitions)
            consumer.pause(partitions)

    def _on_revoke(self, _consumer: Any, partitions: list[Any]) -> None:
        keys = {(tp.topic, tp.partition) for tp in partitions}
        deadline = self._clock() + self.settings.revoke_grace_seconds
        with self._lock:
            while self._ledger.in_flight(keys) and self._clock() < deadline:
                self._lock.wait(0.05)
        self._maybe_commit(force=True, keys=keys)
        self._abandon(keys)
        LOG.info("revoked %s", sorted(keys))

    def _on_lost(self, _consumer: Any, partitions: list[Any]) -> None:
        keys = {(tp.topic, tp.partition) for tp in partitions}
        self._abandon(keys)
        LOG.warning("lost %s without a chance to commit; the new owner re-delivers", sorted(keys))

    def _abandon(self, keys: set[PartitionKey]) -> None:
        with self._lock:
            self._assigned -= keys
            for key in keys:
                self._epochs[key] = self._epochs.get(key, 0) + 1
            for lane in [lane for lane in self._lanes if lane in keys]:
                self._lanes[lane].clear()
                self._retrying_lanes.discard(lane)
            self._ledger.forget(keys)
            self._lock.notify_all()

    def _shutdown(self) -> None:
        LOG.info("shutting down: finishing in-flight work")
        if not self._paused:
            self._pause()
        deadline = self._clock() + self.settings.shutdown_grace_seconds
        while self._clock() < deadline:
            with self._lock:
                if not self._ledger.in_flight():
                    break
            self._consumer.consume(self.settings.batch_size, 0.05)  # serve callbacks only
            self._maybe_commit(force=False)
        self._hard_stop.set()
        self._maybe_commit(force=True)
        self.log_stats()
        self._consumer.close()

    def lag(self) -> dict[str, int]:
        """Per assigned partition, messages behind the high watermark.

        Position is the next offset to consume; before anything was consumed from a
        partition it is the committed offset, or the low watermark when there is none.
        Watermarks come from the last fetch, or from the broker when none is cached yet.
        Talks to the consumer: call from the relay's thread only.
        """
        result: dict[str, int] = {}
        partitions = self._assigned_partitions()
        if not partitions:
            return result
        try:
            positions = self._consumer.position(partitions)
            unconsumed = [tp for tp in positions if tp.offset < 0]
            committed = {
                (tp.topic, tp.partition): tp.offset
                for tp in (self._consumer.committed(unconsumed, 2) if unconsumed else [])
            }
        except Exception:  # figures must never stop the relay
            return result
        for tp in positions:
            try:
                low, high = self._consumer.get_watermark_offsets(tp, cached=True)
                if high is None or high < 0 or low is None or low < 0:
                    low, high = self._consumer.get_watermark_offsets(tp, timeout=1)
            except Exception:
                continue
            position = tp.offset
            if position < 0:
                position = committed.get((tp.topic, tp.partition), -1)
            if position < 0:
                position = low
            result[f"{tp.topic}[{tp.partition}]"] = max(0, high - position)
        return result

    def snapshot(self) -> StatsSnapshot:
        """The current figures; safe from any thread (lag is as of the last stats log line)."""
        with self._lock:
            in_flight = self._ledger.in_flight()
        return self.stats.snapshot(
            at=self._clock(), in_flight=in_flight, paused=self._paused, lag=dict(self._lag)
        )

    def log_stats(self) -> StatsSnapshot:
        """Refresh lag (talks to the consumer: call from the relay's thread) and log a line."""
        self._lag = self.lag()
        current = self.snapshot()
        rate = rate_per_second(self._last_stats, current) if self._last_stats else 0.0
        LOG.info(
            "delivered=%d samples=%d rate=%.1f samples/s duplicates=%d retries=%d "
            "dead_lettered=%d in_flight=%d paused=%s lag=%s",
            current.delivered_batches,
            current.delivered_samples,
            rate,
            current.duplicate_samples,
            current.retries,
            current.dead_lettered,
            current.in_flight,
            current.paused,
            current.lag,
        )
        self._last_stats = current
        self.latest = current
        return current

    # ---- delivery side (worker threads) -----------------------------------------------

    def _drain(self, lane: LaneKey) -> None:
        while True:
            with self._lock:
                queue = self._lanes.get(lane)
                if not queue:
                    self._active_lanes.discard(lane)
                    self._lanes.pop(lane, None)
                    return
                count = min(len(queue), max(1, self.settings.max_request_batches))
                works = [queue.popleft() for _ in range(count)]
            try:
                self._deliver_all(lane, works)
            except Exception:
                LOG.exception(
                    "delivery of %s@%d..%d failed unexpectedly",
                    works[0].key,
                    works[0].offset,
                    works[-1].offset,
                )
                with self._lock:
                    self._retrying_lanes.discard(lane)

    def _stale(self, work: _Work) -> bool:
        return self._hard_stop.is_set() or self._epochs.get(work.key) != work.epoch

    def _finish(self, lane: LaneKey, work: _Work) -> None:
        with self._lock:
            self._retrying_lanes.discard(lane)
            if self._epochs.get(work.key) == work.epoch:
                self._ledger.finish(work.key, work.offset)
            self._lock.notify_all()

    def _deliver_all(self, lane: LaneKey, works: list[_Work]) -> None:
        """Decode the lane's messages (parking undecodable ones), then post the others in
        offset order, as few requests as the size limits allow."""
        ready: list[_Ready] = []
        for work in works:
            try:
                if work.value is None:
                    raise SrvmonError("empty message (no value)")
                batch, body = self._decode(work.value)
            except SrvmonError as exc:
                self._park(lane, work, f"undecodable: {exc}")
                continue
            ready.append(_Ready(work, batch, body))
        for group in self._request_groups(ready):
            self._deliver_group(lane, group)

    def _request_groups(self, ready: list[_Ready]) -> list[list[_Ready]]:
        """Consecutive runs of at most max_request_batches / max_request_bytes."""
        groups: list[list[_Ready]] = []
        size = 0
        for item in ready:
            grown = size + len(item.body) + 1
            current = groups[-1] if groups else None
            if (
                current is None
                or len(current) >= self.settings.max_request_batches
                or grown + BATCHES_BODY_OVERHEAD > self.settings.max_request_bytes
            ):
                groups.append([item])
                size = len(item.body) + 1
            else:
                current.append(item)
                size = grown
        return groups

    def _deliver_group(self, lane: LaneKey, group: list[_Ready]) -> None:
        """Post ``group`` until every message is acked or parked; retry the whole request
        on 5xx, timeouts and network errors. A request the server refuses as a whole (e.g.
        a server without batched ingest) is retried envelope by envelope."""
        attempt = 0
        while not any(self._stale(item.work) for item in group):
            answer: list[IngestAnswer] | IngestAnswer
            if len(group) == 1:
                answer = [self._ingest.post(group[0].body)]
            else:
                answer = self._ingest.post_many([item.body for item in group])
            if isinstance(answer, IngestAnswer) and answer.verdict is Verdict.REJECTED:
                for item in group:
                    self._deliver_group(lane, [item])
                return
            if isinstance(answer, list) and all(a.verdict is not Verdict.RETRY for a in answer):
                for item, verdict in zip(group, answer, strict=True):
                    self._settle(lane, item, verdict)
                return
            whole = answer if isinstance(answer, IngestAnswer) else None
            detail = whole.detail if whole is not None else "a result entry was malformed"
            attempt += 1
            self.stats.add(retries=1)
            with self._lock:
                self._retrying_lanes.add(lane)
            delay = self.settings.backoff.delay(attempt)
            if attempt == 1 or attempt % 10 == 0:
                LOG.warning("ingest not available (%s); retry %d in %.2fs", detail, attempt, delay)
            self._hard_stop.wait(delay)

    def _settle(self, lane: LaneKey, item: _Ready, answer: IngestAnswer) -> None:
        """Ack an accepted message, dead-letter a refused one with the server's message."""
        if answer.verdict is Verdict.ACCEPTED:
            batch = item.batch
            samples = (1 if batch.host is not None else 0) + len(batch.containers)
            self.stats.add(batches=1, samples=samples, duplicates=answer.duplicates)
            self._finish(lane, item.work)
            return
        self._park(lane, item.work, f"rejected by server (HTTP {answer.status}): {answer.detail}")

    def _park(self, lane: LaneKey, work: _Work, error: str) -> None:
        headers = dead_letter_headers(
            error, work.key[0], work.key[1], work.offset, work.timestamp_ms
        )
        parked = self._dead_letter.park(
            key=work.message_key,
            value=work.value,
            headers=headers,
            should_stop=lambda: self._stale(work),
        )
        if parked:
            self.stats.add(dead_lettered=1)
            LOG.warning("dead-lettered %s@%d: %s", work.key, work.offset, error[:300])
            self._finish(lane, work)
