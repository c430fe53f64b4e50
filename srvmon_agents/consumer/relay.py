"""The relay loop: Kafka → decode → POST ingest → commit, with pause/resume and dead letters.

Threads: the caller's thread owns the Kafka consumer (poll, commit, pause, rebalance
callbacks). A pool of delivery workers posts batches. The messages of one partition form a
*lane* (lanes.py) and are posted strictly in offset order; different lanes are posted in
parallel (sender.py). Offsets are committed only for the finished prefix of each partition
(ledger.py, offsets.py). Poison messages are dead-lettered, or moved past when even that
fails (deadletter.py), so no message can stall a partition.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from attrs import Factory, frozen

from srvmon_agents.consumer.backoff import Backoff
from srvmon_agents.consumer.brokers import KAFKA_LOG, BrokerWatch
from srvmon_agents.consumer.deadletter import DeadLetterSink
from srvmon_agents.consumer.lag import partition_lag
from srvmon_agents.consumer.lanes import Lanes
from srvmon_agents.consumer.offsets import OffsetCommitter
from srvmon_agents.consumer.sender import Decoder, Ingest, Sender, SendLimits
from srvmon_agents.consumer.stats import RelayStats, StatsSnapshot, rate_per_second
from srvmon_agents.consumer.work import PartitionKey
from srvmon_core.errors import SrvmonError

LOG = logging.getLogger("srvmon.consumer")

__all__ = ["Decoder", "PartitionHook", "Relay", "RelayError", "RelaySettings"]

PartitionHook = Callable[[set[PartitionKey]], None]
"""Called on the Kafka thread with the partitions of a rebalance (see ``Relay``)."""


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
    max_in_flight: int = 8000
    """Most messages handed out and not yet finished; above it consumption waits. Room
    for every partition's lane to have a full request in flight and the next one queued
    (at 2,000, four lanes of 500 paused consumption at every round: see bench_pipeline)."""
    max_in_flight_bytes: int = 64 * 1024 * 1024
    """Most bytes of those messages; above it consumption waits too (large envelopes)."""
    backoff: Backoff = Factory(Backoff)
    commit_interval_seconds: float = 0.2
    revoke_grace_seconds: float = 5.0
    """On rebalance, how long to let in-flight work of revoked partitions finish."""
    shutdown_grace_seconds: float = 30.0
    """On shutdown, how long to let in-flight work finish before abandoning it."""
    stats_interval_seconds: float = 10.0
    poll_timeout_seconds: float = 0.2


class RelayError(SrvmonError):
    """The relay cannot go on (e.g. a fatal Kafka error)."""


def _keys(partitions: list[Any]) -> set[PartitionKey]:
    return {(tp.topic, tp.partition) for tp in partitions}


class Relay:
    """Runs the consumer loop until ``stop`` is set. Build it with the real or a test consumer.

    ``on_assigned`` runs when partitions are assigned, before any of their messages is
    taken; ``on_revoked`` after revoked partitions were finished (or given up) and
    committed, ``on_lost`` after lost ones were abandoned. A server replica
    (``srvmon_cli.replica``) adopts and releases the partitions' hosts there.
    """

    def __init__(
        self,
        consumer: Any,
        *,
        ingest: Ingest,
        dead_letter: DeadLetterSink,
        decode: Decoder,
        settings: RelaySettings,
        clock: Callable[[], float] = time.monotonic,
        broker: BrokerWatch | None = None,
        on_assigned: PartitionHook | None = None,
        on_revoked: PartitionHook | None = None,
        on_lost: PartitionHook | None = None,
    ) -> None:
        self._consumer = consumer
        self._hooks = (on_assigned, on_revoked, on_lost)
        self._dead_letter = dead_letter
        self.settings = settings
        self._clock = clock
        self._broker = broker
        self.stats = RelayStats()
        self._pool = ThreadPoolExecutor(settings.parallelism, thread_name_prefix="srvmon-deliver")
        self._lanes = Lanes(self._schedule)
        self._sender = Sender(
            lanes=self._lanes,
            ingest=ingest,
            dead_letter=dead_letter,
            decode=decode,
            stats=self.stats,
            limits=SendLimits(
                max_request_batches=settings.max_request_batches,
                max_request_bytes=settings.max_request_bytes,
                backoff=settings.backoff,
            ),
        )
        self._offsets = OffsetCommitter(
            consumer, self._lanes, interval_seconds=settings.commit_interval_seconds, clock=clock
        )
        self._paused = False
        self._last_stats: StatsSnapshot | None = None
        self.latest: StatsSnapshot | None = None
        self._lag: dict[str, int] = {}

    def _schedule(self, lane: PartitionKey) -> None:
        self._pool.submit(self._sender.drain, lane)

    # ---- the loop (caller's thread) ---------------------------------------------------

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
            self._lanes.hard_stop.set()
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _step(self) -> None:
        in_flight = self._lanes.in_flight()
        in_bytes = self._lanes.in_flight_bytes()
        retrying = self._lanes.any_retrying()
        limit, byte_limit = self.settings.max_in_flight, self.settings.max_in_flight_bytes
        if not self._paused and (retrying or in_flight >= limit or in_bytes >= byte_limit):
            if retrying:
                reason = "the server is failing or unreachable (ingest retrying)"
            elif in_flight >= limit:
                reason = f"{in_flight} messages in flight (limit {limit})"
            else:
                reason = f"{in_bytes} bytes of messages in flight (limit {byte_limit})"
            self._pause(reason)
        elif (
            self._paused and not retrying and in_flight < limit // 2 and in_bytes < byte_limit // 2
        ):
            self._resume()
        if self._paused:
            # Keep polling so rebalances and the group session are served; nothing is fetched
            # for paused partitions. Anything that still arrives is tracked normally.
            messages = self._consumer.consume(self.settings.batch_size, 0.1)
        else:
            messages = self._take()
        for message in messages:
            self._accept(message)
        self._offsets.maybe_commit(force=False)
        self._dead_letter.poll()

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
            KAFKA_LOG.warning("%s [%s] %s", error.name(), "consume", error.str())
            return
        _kind, timestamp = message.timestamp()
        self._lanes.accept(
            (message.topic(), message.partition()),
            message.offset(),
            message.key(),
            message.value(),
            timestamp if timestamp > 0 else None,
        )

    def _assigned_partitions(self) -> list[Any]:
        from confluent_kafka import TopicPartition

        return [TopicPartition(t, p) for t, p in self._lanes.assigned()]

    def _pause(self, reason: str | None) -> None:
        partitions = self._assigned_partitions()
        if partitions:
            self._consumer.pause(partitions)
        self._paused = True
        if reason is not None:
            LOG.info("paused consumption of %d partition(s): %s", len(partitions), reason)

    def _resume(self) -> None:
        partitions = self._assigned_partitions()
        if partitions:
            self._consumer.resume(partitions)
        self._paused = False
        LOG.info("resumed consumption of %d partition(s)", len(partitions))

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        keys = _keys(partitions)
        if self._hooks[0] is not None:
            self._hooks[0](keys)
        self._lanes.assign(keys)
        LOG.info("assigned %s", sorted(keys))
        if self._paused:
            consumer.assign(partitions)
            consumer.pause(partitions)

    def _on_revoke(self, _consumer: Any, partitions: list[Any]) -> None:
        keys = _keys(partitions)
        if not self._lanes.hard_stop.is_set():  # after a shutdown timeout nothing finishes
            until = self._clock() + self.settings.revoke_grace_seconds
            self._lanes.wait_finished(keys, until, self._clock)
        self._offsets.maybe_commit(force=True, keys=keys)
        self._lanes.abandon(keys)
        LOG.info("revoked %s", sorted(keys))
        if self._hooks[1] is not None:
            self._hooks[1](keys)

    def _on_lost(self, _consumer: Any, partitions: list[Any]) -> None:
        keys = _keys(partitions)
        self._lanes.abandon(keys)
        LOG.warning("lost %s without a chance to commit; the new owner re-delivers", sorted(keys))
        if self._hooks[2] is not None:
            self._hooks[2](keys)

    def _shutdown(self) -> None:
        LOG.info("shutting down: finishing %d in-flight message(s)", self._lanes.in_flight())
        if not self._paused:
            self._pause(None)
        until = self._clock() + self.settings.shutdown_grace_seconds
        while self._clock() < until and self._lanes.in_flight():
            self._consumer.consume(self.settings.batch_size, 0.05)  # serve callbacks only
            self._offsets.maybe_commit(force=False)
        left = self._lanes.in_flight()
        if left:
            LOG.warning("shutdown timeout: %d message(s) left uncommitted for redelivery", left)
        self._lanes.hard_stop.set()
        self._offsets.maybe_commit(force=True)
        self.log_stats()
        self._consumer.close()

    # ---- figures ----------------------------------------------------------------------

    def lag(self) -> dict[str, int]:
        """Per assigned partition, messages behind the high watermark (see lag.py).
        Talks to the consumer: call from the relay's thread only."""
        return partition_lag(self._consumer, self._assigned_partitions())

    def snapshot(self) -> StatsSnapshot:
        """The current figures; safe from any thread (lag is as of the last stats log line)."""
        return self.stats.snapshot(
            at=self._clock(),
            in_flight=self._lanes.in_flight(),
            uncommitted=self._lanes.uncommitted(),
            paused=self._paused,
            lag=dict(self._lag),
            broker_reachable=self._broker.reachable if self._broker is not None else None,
        )

    def log_stats(self) -> StatsSnapshot:
        """Refresh lag (talks to the consumer: call from the relay's thread) and log a line."""
        self._lag = self.lag()
        current = self.snapshot()
        rate = rate_per_second(self._last_stats, current) if self._last_stats else 0.0
        LOG.info(
            "delivered=%d samples=%d rate=%.1f samples/s duplicates=%d retries=%d "
            "dead_lettered=%d dead_letter_failures=%d in_flight=%d uncommitted=%d paused=%s "
            "lag=%s",
            current.delivered_batches,
            current.delivered_samples,
            rate,
            current.duplicate_samples,
            current.retries,
            current.dead_lettered,
            current.dead_letter_failures,
            current.in_flight,
            current.uncommitted,
            current.paused,
            current.lag,
        )
        self._last_stats = current
        self.latest = current
        return current
