"""Committing offsets: the finished prefix of each partition, synchronously, at most every
``interval_seconds`` (always on rebalance and shutdown). A failed commit is retried on the
next turn; the log says so once per failure streak, and once when commits work again."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from srvmon_agents.consumer.lanes import Lanes
from srvmon_agents.consumer.work import PartitionKey

LOG = logging.getLogger("srvmon.consumer")


class OffsetCommitter:
    def __init__(
        self,
        consumer: Any,
        lanes: Lanes,
        *,
        interval_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        self._consumer = consumer
        self._lanes = lanes
        self._interval = interval_seconds
        self._clock = clock
        self._last = 0.0
        self.failures = 0
        """Commit attempts failed in a row (0 once one succeeds)."""

    def maybe_commit(self, *, force: bool, keys: set[PartitionKey] | None = None) -> None:
        now = self._clock()
        if not force and now - self._last < self._interval:
            return
        self._last = now
        offsets = self._lanes.to_commit(keys)
        if not offsets:
            return
        from confluent_kafka import KafkaException, TopicPartition

        partitions = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        try:
            self._consumer.commit(offsets=partitions, asynchronous=False)
        except KafkaException as exc:
            self.failures += 1
            if self.failures == 1:
                LOG.warning("commit failed (retrying until it works): %s", exc)
            return
        if self.failures:
            LOG.info("commits work again after %d failed attempt(s)", self.failures)
            self.failures = 0
        self._lanes.mark_committed(offsets)
