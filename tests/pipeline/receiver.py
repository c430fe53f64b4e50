"""A real HTTP ingest receiver for consumer tests: tornado on 127.0.0.1 in its own thread.

It stores batches idempotently by (host_id, timestamp), like the server, and can be told
to fail (any status), to be slow, or to reject chosen hosts with a 4xx envelope.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

import tornado.httpserver
import tornado.web

from srvmon_core.codec import decode_batch
from srvmon_core.errors import DecodeError
from tests.helpers import free_port


class _IngestHandler(tornado.web.RequestHandler):
    def initialize(self, receiver: Receiver) -> None:
        self.receiver = receiver

    async def post(self) -> None:
        receiver = self.receiver
        if receiver.delay_seconds:
            await asyncio.sleep(receiver.delay_seconds)
        if self.request.headers.get("Authorization") != f"Bearer {receiver.token}":
            self._error(401, "unauthorized", "bad token")
            return
        if receiver.fail_status is not None:
            receiver.count_failure()
            self._error(receiver.fail_status, "unavailable", "told to fail")
            return
        try:
            batch = decode_batch(self.request.body)
        except DecodeError as exc:
            self._error(400, "invalid_body", exc.message, exc.path)
            return
        if batch.host_id in receiver.reject_hosts:
            self._error(422, "invalid_body", "host refused by test", "$.host_id")
            return
        stored, duplicates = receiver.store(batch.host_id, batch.timestamp.isoformat())
        self.write({"stored": stored, "duplicates": duplicates})

    def _error(self, status: int, code: str, message: str, field: str | None = None) -> None:
        self.set_status(status)
        self.write({"error": {"status": status, "code": code, "message": message, "field": field}})


class Receiver:
    """Start with :meth:`start`, stop with :meth:`stop`; ``url`` is the base URL."""

    def __init__(self, token: str = "test-token") -> None:
        self.token = token
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.fail_status: int | None = None
        self.delay_seconds = 0.0
        self.reject_hosts: set[str] = set()
        self.posts: Counter[tuple[str, str]] = Counter()
        self.failures = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._server: tornado.httpserver.HTTPServer | None = None

    def store(self, host_id: str, timestamp: str) -> tuple[int, int]:
        with self._lock:
            key = (host_id, timestamp)
            self.posts[key] += 1
            return (1, 0) if self.posts[key] == 1 else (0, 1)

    def count_failure(self) -> None:
        with self._lock:
            self.failures += 1

    def stored_keys(self) -> set[tuple[str, str]]:
        with self._lock:
            return set(self.posts)

    def _serve(self) -> None:
        async def main() -> None:
            app = tornado.web.Application([(r"/api/v1/ingest", _IngestHandler, {"receiver": self})])
            self._server = tornado.httpserver.HTTPServer(app)
            self._server.listen(self.port, address="127.0.0.1")
            self._loop = asyncio.get_running_loop()
            self._stopped = asyncio.Event()
            self._ready.set()
            await self._stopped.wait()
            self._server.stop()
            await self._server.close_all_connections()

        asyncio.run(main())

    def start(self) -> Receiver:
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("receiver did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(10)
