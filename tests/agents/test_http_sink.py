"""The HTTP sink against a real local HTTP receiver that records what it is sent."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from srvmon_agents.sinks.http import HttpSink
from srvmon_core.codec import decode_batch, encode_batch
from srvmon_core.schema import Batch
from tests.helpers import free_port

EPOCH = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def batch(n: int) -> bytes:
    return encode_batch(Batch(host_id="h1", hostname="h", timestamp=EPOCH + timedelta(seconds=n)))


def number(body: bytes) -> int:
    return int((decode_batch(body).timestamp - EPOCH).total_seconds())


class Receiver:
    """Records (path, authorization, body); answers ``statuses`` in turn, then 200."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.requests: list[tuple[str, str | None, bytes]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if status == 200:
                    receiver.requests.append((self.path, self.headers.get("Authorization"), body))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"stored": 1, "duplicates": 0}')

            def log_message(self, *_: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def receiver(port: int) -> Iterator[Receiver]:
    r = Receiver(port)
    yield r
    r.close()


def pump_until(sink: HttpSink, delivered: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sink.pump()
        if sink.stats().delivered_batches >= delivered:
            return
        time.sleep(0.05)
    raise AssertionError(f"{delivered} deliveries not reached: {sink.stats()}")


def test_posts_batches_with_bearer_token_in_order(receiver: Receiver, port: int) -> None:
    """Each batch is POSTed to /api/v1/ingest with the token; bodies decode, in order."""
    sink = HttpSink(server_url=f"http://127.0.0.1:{port}/", token="s3cret", capacity=10)
    for n in range(4):
        sink.send("h1", batch(n))
    pump_until(sink, 4, 10)
    assert [path for path, _, _ in receiver.requests] == ["/api/v1/ingest"] * 4
    assert {auth for _, auth, _ in receiver.requests} == {"Bearer s3cret"}
    assert [number(body) for _, _, body in receiver.requests] == [0, 1, 2, 3]
    assert sink.stats().queue_depth == 0


def test_server_errors_are_retried_with_backoff(receiver: Receiver, port: int) -> None:
    """503 twice: the batch stays queued, two delivery errors counted, then it arrives once."""
    receiver.statuses = [503, 503]
    sink = HttpSink(server_url=f"http://127.0.0.1:{port}", capacity=10)
    sink.send("h1", batch(7))
    started = time.monotonic()
    pump_until(sink, 1, 10)
    assert time.monotonic() - started >= 0.5 + 1.0 - 0.1, "backs off 0.5 s, then 1 s"
    assert sink.stats().delivery_errors == 2
    assert [number(body) for _, _, body in receiver.requests] == [7]


def test_rejected_batch_is_dropped_and_counted(receiver: Receiver, port: int) -> None:
    """A 400 (server says the batch is invalid) must not block the queue: dropped, counted."""
    receiver.statuses = [400]
    sink = HttpSink(server_url=f"http://127.0.0.1:{port}", capacity=10)
    sink.send("h1", batch(1))
    sink.send("h1", batch(2))
    pump_until(sink, 1, 10)
    assert [number(body) for _, _, body in receiver.requests] == [2]
    assert sink.stats().dropped_batches == 1


def test_server_down_overflow_drops_exactly_the_oldest(port: int) -> None:
    """Nothing listens; buffer 3, 5 batches: exactly 2 oldest dropped; the 3 newest arrive."""
    sink = HttpSink(server_url=f"http://127.0.0.1:{port}", capacity=3, timeout_seconds=1)
    for n in range(5):
        sink.send("h1", batch(n))
        sink.pump()
    assert sink.stats().dropped_batches == 2
    assert sink.stats().queue_depth == 3
    assert sink.stats().delivery_errors >= 1
    late = Receiver(port)
    try:
        pump_until(sink, 3, 70)
        assert [number(body) for _, _, body in late.requests] == [2, 3, 4]
    finally:
        late.close()
