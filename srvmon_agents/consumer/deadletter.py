"""The dead-letter topic: poison messages with the reason attached.

A dead-lettered record keeps the original key and value byte for byte. Headers:
``error`` (why), ``source.topic``, ``source.partition``, ``source.offset`` and
``source.timestamp_ms`` (all UTF-8 text). A message counts as finished only once the
broker acknowledged its dead-letter copy, so nothing is committed past a poison message
that is not safely parked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from srvmon_agents.consumer.backoff import Backoff

MAX_ERROR_HEADER_BYTES = 4000


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


class DeadLetterSink:
    """Produces poison messages to the dead-letter topic and waits for the broker's ack."""

    def __init__(self, producer: Any, topic: str, backoff: Backoff | None = None) -> None:
        self._producer = producer
        self.topic = topic
        self._backoff = backoff or Backoff(initial_seconds=0.1, max_seconds=5.0)
        self._lock = threading.Lock()

    def park(
        self,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        should_stop: Callable[[], bool],
    ) -> bool:
        """Produce one record and wait until the broker has it. False if told to stop first."""
        attempt = 0
        while not should_stop():
            attempt += 1
            done = threading.Event()
            outcome: list[Any] = []

            def on_delivery(
                err: Any, _msg: Any, done: threading.Event = done, outcome: list[Any] = outcome
            ) -> None:
                outcome.append(err)
                done.set()

            try:
                with self._lock:
                    self._producer.produce(
                        self.topic, value=value, key=key, headers=headers, on_delivery=on_delivery
                    )
            except BufferError:
                self._producer.poll(0.1)
                continue
            while not done.is_set() and not should_stop():
                self._producer.poll(0.1)
            if done.is_set() and outcome and outcome[0] is None:
                return True
            if should_stop():
                return False
            time.sleep(self._backoff.delay(attempt))
        return False

    def close(self, timeout_seconds: float = 5.0) -> None:
        self._producer.flush(timeout_seconds)
