"""The consumer speaks for itself about Kafka: broker reachability and librdkafka's logs.

librdkafka reports a dead broker with a raw log line per reconnect attempt (hundreds a
minute). Here its log lines go through Python logging (logger ``srvmon.consumer.kafka``),
at most one per kind (level and facility) per ``interval_seconds``, the next one saying how
many were suppressed. :class:`BrokerWatch` turns librdkafka's statistics and errors into
one state, *reachable or not*, logs one line when it changes, and offers it to /metrics.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

LOG = logging.getLogger("srvmon.consumer")
KAFKA_LOG = logging.getLogger("srvmon.consumer.kafka")

STATISTICS_INTERVAL_MS = 1000
"""How often librdkafka hands over its statistics (the broker states BrokerWatch reads)."""


class RateLimitFilter(logging.Filter):
    """Lets through the first record of each (level, kind) and then one per interval; the
    next one let through says how many were suppressed in between."""

    def __init__(
        self, interval_seconds: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self._interval = interval_seconds
        self._clock = clock
        self._last: dict[tuple[int, str], float] = {}
        self._suppressed: dict[tuple[int, str], int] = {}
        self._lock = threading.Lock()

    @staticmethod
    def kind(record: logging.LogRecord) -> str:
        """librdkafka's facility (``FAIL``, ``REQTMOUT``…) or the message template."""
        args = record.args
        if isinstance(args, tuple) and len(args) == 3 and record.msg == "%s [%s] %s":
            return str(args[0])
        return str(record.msg)

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.levelno, self.kind(record))
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            self._last[key] = now
            suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            record.msg = f"{record.msg} ({suppressed} similar line(s) suppressed)"
        return True


def rate_limited_kafka_logger(interval_seconds: float = 30.0) -> logging.Logger:
    """The ``logger`` to give librdkafka clients (confluent-kafka's ``logger`` setting)."""
    if not any(isinstance(f, RateLimitFilter) for f in KAFKA_LOG.filters):
        KAFKA_LOG.addFilter(RateLimitFilter(interval_seconds))
    return KAFKA_LOG


def log_kafka_error(error: Any) -> None:
    """An ``error_cb`` that logs through the rate-limited logger."""
    name = error.name() if callable(getattr(error, "name", None)) else type(error).__name__
    text = error.str() if callable(getattr(error, "str", None)) else str(error)
    KAFKA_LOG.warning("%s [%s] %s", name, "error_cb", text)  # rate-limited per error name


class BrokerWatch:
    """Whether any Kafka broker is reachable, from librdkafka's statistics (a broker in
    state ``UP``) and errors (``_ALL_BROKERS_DOWN``); logs each change once.

    Wire ``on_stats`` as the consumer's ``stats_cb`` (with ``statistics.interval.ms``) and
    ``on_error`` as its ``error_cb``. ``reachable`` is None until the first verdict; a
    broker not up for ``grace_seconds`` (from the start, or since it was last up) counts
    as unreachable.
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        grace_seconds: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bootstrap = bootstrap
        self._grace = grace_seconds
        self._clock = clock
        self._since = clock()
        """When the current "not up" stretch started (or the watch did)."""
        self.reachable: bool | None = None
        self._lost_at: float | None = None
        self.changes = 0
        """How many times the state changed after the first verdict."""

    def on_stats(self, stats_json: str) -> None:
        try:
            data = json.loads(stats_json)
        except ValueError:
            return
        brokers = data.get("brokers") if isinstance(data, dict) else None
        states = [b.get("state") for b in (brokers or {}).values() if isinstance(b, dict)]
        self.observe(up=any(state == "UP" for state in states), reason="no broker connection")

    def on_error(self, error: Any) -> None:
        log_kafka_error(error)
        name = error.name() if callable(getattr(error, "name", None)) else ""
        if name == "_ALL_BROKERS_DOWN":
            text = error.str() if callable(getattr(error, "str", None)) else str(error)
            self._mark(False, text)

    def observe(self, *, up: bool, reason: str) -> None:
        now = self._clock()
        if up:
            self._since = now
            self._mark(True, "")
        elif self.reachable is not False and now - self._since >= self._grace:
            self._mark(False, f"{reason} for {now - self._since:.0f} s")

    def _mark(self, reachable: bool, reason: str) -> None:
        previous = self.reachable
        if previous is reachable:
            return
        now = self._clock()
        self.reachable = reachable
        if previous is not None:
            self.changes += 1
        if reachable and previous is None:
            LOG.info("connected to Kafka at %s", self.bootstrap)
        elif reachable:
            down = now - self._lost_at if self._lost_at is not None else 0.0
            LOG.info("Kafka reachable again at %s after %.0f s", self.bootstrap, down)
        else:
            self._lost_at = now
            LOG.warning(
                "Kafka unreachable at %s (%s); consuming and committing resume when it is back",
                self.bootstrap,
                reason,
            )
