"""The HTTP sink: POST each batch to the server's ingest endpoint, with backoff.

``POST {server_url}/api/v1/ingest`` with ``Authorization: Bearer <token>`` and the
``encode_batch`` JSON body (docs/api.md). Batches wait in the same bounded buffer as the
Kafka sink (oldest dropped and counted on overflow). A failed POST (connection error,
timeout, 5xx, 401/403/429) leaves the batch queued and backs off exponentially (0.5 s
doubling to 30 s); a batch the server rejects as invalid (other 4xx) is dropped and counted
in ``dropped_batches`` and ``delivery_errors`` so one bad batch cannot block the queue.
"""

from __future__ import annotations

import http.client
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from attrs import define, field

from srvmon_agents.sinks.base import SinkStats
from srvmon_agents.sinks.buffer import BatchBuffer

log = logging.getLogger(__name__)

INGEST_PATH = "/api/v1/ingest"
RETRYABLE_CLIENT_ERRORS = frozenset({401, 403, 408, 429})
BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0


@define
class HttpSink:
    server_url: str
    token: str | None = None
    capacity: int = 3600
    timeout_seconds: float = 5.0
    pump_budget_seconds: float = 0.5
    clock: Callable[[], float] = time.monotonic
    _buffer: BatchBuffer = field(init=False)
    _backoff: float = 0.0
    _next_attempt: float = 0.0
    delivered: int = 0
    delivery_errors: int = 0
    rejected: int = 0

    def __attrs_post_init__(self) -> None:
        self._buffer = BatchBuffer(self.capacity)

    @property
    def url(self) -> str:
        return self.server_url.rstrip("/") + INGEST_PATH

    def send(self, key: str, payload: bytes) -> None:
        self._buffer.append(key, payload)

    def pump(self) -> None:
        started = self.clock()
        while self._buffer.peek() is not None and self.clock() >= self._next_attempt:
            if self.clock() - started > self.pump_budget_seconds:
                return
            item = self._buffer.peek()
            assert item is not None
            status = self._post(item.payload)
            if status is not None and 200 <= status < 300:
                self._buffer.pop()
                self.delivered += 1
                self._backoff = 0.0
                continue
            self.delivery_errors += 1
            if status is not None and 400 <= status < 500 and status not in RETRYABLE_CLIENT_ERRORS:
                self._buffer.pop()
                self.rejected += 1
                continue
            self._backoff = min(BACKOFF_MAX_SECONDS, max(BACKOFF_FIRST_SECONDS, self._backoff * 2))
            self._next_attempt = self.clock() + self._backoff
            return

    def _post(self, payload: bytes) -> int | None:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url, data=payload, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                response.read()
                return int(response.status)
        except urllib.error.HTTPError as exc:
            log.debug("ingest answered %s", exc.code)
            return int(exc.code)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            log.debug("ingest failed: %s", exc)
            return None

    def stats(self) -> SinkStats:
        return SinkStats(
            queue_depth=len(self._buffer),
            backlog=len(self._buffer),
            dropped_batches=self._buffer.dropped + self.rejected,
            delivery_errors=self.delivery_errors,
            delivered_batches=self.delivered,
        )

    def close(self, timeout: float) -> None:
        deadline = self.clock() + timeout
        self._next_attempt = 0.0
        while self._buffer.peek() is not None and self.clock() < deadline:
            before = len(self._buffer)
            self.pump()
            if len(self._buffer) == before:
                return
