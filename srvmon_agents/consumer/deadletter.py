"""The dead-letter topic: poison messages with the reason attached, and never a stall.

A dead-lettered record keeps the original key and value byte for byte. Headers:
``error`` (why), ``source.topic``, ``source.partition``, ``source.offset`` and
``source.timestamp_ms`` (all UTF-8 text).

When the full copy cannot be produced (too large for the producer or the broker, a topic
the broker refuses, or a broker error that outlasts ``retry_seconds``), a *truncated* copy
is produced instead: the first ``truncate_bytes`` of the value, with the extra headers
``original.size`` (bytes), ``truncated.reason`` (why the full copy failed) and
``truncated.size``. When even that fails, :meth:`DeadLetterSink.park` says so
(``ParkOutcome.FAILED``) and the caller moves past the message with one log line and a
counted failure: a poison message can hold its partition for at most about twice
``retry_seconds``, never for good.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from attrs import frozen

from srvmon_agents.consumer.backoff import Backoff

LOG = logging.getLogger("srvmon.consumer")

MAX_ERROR_HEADER_BYTES = 4000
TRUNCATE_BYTES = 64 * 1024
"""How much of a value a truncated dead-letter copy keeps."""

_GIVE_UP_ON_TOPIC = frozenset(
    {
        "TOPIC_EXCEPTION",
        "UNKNOWN_TOPIC_OR_PART",
        "_UNKNOWN_TOPIC",
        "_UNKNOWN_PARTITION",
        "TOPIC_AUTHORIZATION_FAILED",
        "CLUSTER_AUTHORIZATION_FAILED",
        "INVALID_TOPIC_EXCEPTION",
    }
)
"""Errors about the dead-letter topic itself: a truncated copy would fail the same way."""

_TRANSIENT = frozenset(
    {
        "_MSG_TIMED_OUT",
        "_TIMED_OUT",
        "_TRANSPORT",
        "_ALL_BROKERS_DOWN",
        "REQUEST_TIMED_OUT",
        "NOT_ENOUGH_REPLICAS",
        "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
        "LEADER_NOT_AVAILABLE",
        "NOT_LEADER_FOR_PARTITION",
        "_QUEUE_FULL",
    }
)
"""Errors worth retrying (within ``retry_seconds``) before falling back."""


def dead_letter_headers(
    error: str, topic: str, partition: int, offset: int, timestamp_ms: int | None
) -> list[tuple[str, bytes]]:
    """The headers attached to a dead-lettered record."""
    headers = [
        ("error", error.encode("utf-8", "replace")[:MAX_ERROR_HEADER_BYTES]),
        ("source.topic", topic.encode()),
        ("source.partition", str(partition).encode()),
        ("source.offset", str(offset).encode()),
    ]
    if timestamp_ms is not None:
        headers.append(("source.timestamp_ms", str(timestamp_ms).encode()))
    return headers


class ParkOutcome(enum.Enum):
    FULL = "full"
    """The whole message is in the dead-letter topic."""
    TRUNCATED = "truncated"
    """A truncated copy is in the dead-letter topic (the full one could not be produced)."""
    FAILED = "failed"
    """No copy could be produced: move past the message, log it, count it."""
    STOPPED = "stopped"
    """Told to stop first (partition revoked, shutdown): the message is not finished."""


@frozen
class Parked:
    outcome: ParkOutcome
    detail: str = ""
    """Why the full copy (FULL: empty) or every copy (FAILED) could not be produced."""


@frozen
class _Attempt:
    ok: bool
    error: str = ""
    """The librdkafka error name (e.g. ``MSG_SIZE_TOO_LARGE``) and text, when not ok."""
    code: str = ""


def _describe(error: Any) -> tuple[str, str]:
    """(name, "NAME: text") of a KafkaError, or of anything else raised."""
    name = getattr(error, "name", None)
    if callable(name):
        code = str(name())
        text = error.str() if callable(getattr(error, "str", None)) else str(error)
        return code, f"{code}: {text}"
    return type(error).__name__, f"{type(error).__name__}: {error}"


class DeadLetterSink:
    """Produces poison messages to the dead-letter topic and waits for the broker's ack."""

    def __init__(
        self,
        producer: Any,
        topic: str,
        backoff: Backoff | None = None,
        *,
        retry_seconds: float = 30.0,
        truncate_bytes: int = TRUNCATE_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._producer = producer
        self.topic = topic
        self._backoff = backoff or Backoff(initial_seconds=0.1, max_seconds=5.0)
        self._retry_seconds = retry_seconds
        self._truncate_bytes = truncate_bytes
        self._clock = clock
        self._lock = threading.Lock()

    def park(
        self,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        should_stop: Callable[[], bool],
    ) -> Parked:
        """Produce the message (or else a truncated copy) and wait until the broker has it.

        Never raises: whatever goes wrong ends as FAILED with the reason.
        """
        try:
            return self._park(key, value, headers, should_stop)
        except Exception as exc:  # a bug here must not stall the partition either
            LOG.exception("dead-lettering failed unexpectedly")
            return Parked(ParkOutcome.FAILED, f"{type(exc).__name__}: {exc}")

    def _park(
        self,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        should_stop: Callable[[], bool],
    ) -> Parked:
        full = self._attempt(key, value, headers, should_stop)
        if full is None:
            return Parked(ParkOutcome.STOPPED)
        if full.ok:
            return Parked(ParkOutcome.FULL)
        if full.code in _GIVE_UP_ON_TOPIC:
            return Parked(ParkOutcome.FAILED, f"dead-letter topic {self.topic!r}: {full.error}")
        size = len(value) if value is not None else 0
        kept = (value or b"")[: self._truncate_bytes]
        extra = [
            ("original.size", str(size).encode()),
            ("truncated.size", str(len(kept)).encode()),
            ("truncated.reason", full.error.encode("utf-8", "replace")[:MAX_ERROR_HEADER_BYTES]),
        ]
        truncated = self._attempt(key, kept, [*headers, *extra], should_stop)
        if truncated is None:
            return Parked(ParkOutcome.STOPPED)
        if truncated.ok:
            return Parked(ParkOutcome.TRUNCATED, full.error)
        return Parked(
            ParkOutcome.FAILED, f"full copy: {full.error}; truncated copy: {truncated.error}"
        )

    def _attempt(
        self,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        should_stop: Callable[[], bool],
    ) -> _Attempt | None:
        """Produce one record, retrying transient errors for up to ``retry_seconds``.
        None when told to stop first."""
        deadline = self._clock() + self._retry_seconds
        attempt = 0
        last = _Attempt(ok=False, error="no attempt made", code="")
        while not should_stop():
            attempt += 1
            last = self._produce_once(key, value, headers, should_stop, deadline)
            if last.ok or last.code not in _TRANSIENT or self._clock() >= deadline:
                return last
            if should_stop():
                return None
            time.sleep(min(self._backoff.delay(attempt), max(0.0, deadline - self._clock())))
        return None

    def _produce_once(
        self,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        should_stop: Callable[[], bool],
        deadline: float,
    ) -> _Attempt:
        done = threading.Event()
        outcome: list[Any] = []

        def on_delivery(err: Any, _msg: Any) -> None:
            outcome.append(err)
            done.set()

        try:
            with self._lock:
                self._producer.produce(
                    self.topic, value=value, key=key, headers=headers, on_delivery=on_delivery
                )
        except BufferError:
            self._producer.poll(0.1)
            return _Attempt(False, "_QUEUE_FULL: local producer queue full", "_QUEUE_FULL")
        except Exception as exc:  # KafkaException (e.g. MSG_SIZE_TOO_LARGE), bad arguments
            error = exc.args[0] if exc.args else exc
            code, text = _describe(error)
            return _Attempt(ok=False, error=text, code=code)
        # The producer's message.timeout.ms bounds this wait; the deadline is a safety net.
        while not done.is_set() and not should_stop() and self._clock() < deadline + 5.0:
            self._producer.poll(0.1)
        if not done.is_set():
            return _Attempt(ok=False, error="_TIMED_OUT: no delivery report", code="_TIMED_OUT")
        if outcome[0] is None:
            return _Attempt(ok=True)
        code, text = _describe(outcome[0])
        return _Attempt(ok=False, error=text, code=code)

    def poll(self) -> None:
        """Serve the producer's callbacks and log lines (call now and then)."""
        self._producer.poll(0)

    def close(self, timeout_seconds: float = 5.0) -> None:
        self._producer.flush(timeout_seconds)
