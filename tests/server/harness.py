"""Run the real server on 127.0.0.1 in a background thread; talk to it over real sockets."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import tornado.netutil
import tornado.web

from srvmon_core.codec import encode_batch
from srvmon_core.schema import Batch, ContainerSample, HostSample
from srvmon_server.app import make_app
from srvmon_server.config import ServerConfig
from srvmon_server.context import ServerContext
from srvmon_server.httpserver import make_http_server
from srvmon_server.storage import Storage

WRITE = "write-token"
READ = "read-token"
T0 = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)


class FakeClock:
    """A settable UTC clock shared by the server and its storage."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def make_batch(
    host_id: str = "h1",
    at: datetime = T0,
    cpu: float = 10.0,
    containers: tuple[tuple[str, float], ...] = (),
) -> Batch:
    return Batch(
        host_id=host_id,
        hostname=f"{host_id}.example",
        timestamp=at,
        host=HostSample(
            cpu_percent=cpu,
            load_1=0.5,
            load_5=0.4,
            load_15=0.3,
            memory_total_bytes=8_000,
            memory_used_bytes=2_000,
            memory_available_bytes=6_000,
            memory_percent=25.0,
        ),
        containers=tuple(
            ContainerSample(id=f"id-{name}", name=name, cpu_percent=c) for name, c in containers
        ),
    )


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


class RunningServer:
    """One server instance on a free port, with its own IOLoop thread."""

    def __init__(
        self, storage: Storage, config: ServerConfig, clock: Callable[[], datetime]
    ) -> None:
        self.storage = storage
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self.context: ServerContext | None = None
        self.app: tornado.web.Application | None = None
        self.port = 0

        def run() -> None:
            async def main() -> None:
                app = make_app(config, storage, clock=clock)
                self.app = app
                self.context = app.settings["srvmon"]
                sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
                self.port = sockets[0].getsockname()[1]
                server = make_http_server(app, config)
                server.add_sockets(sockets)
                self._loop = asyncio.get_running_loop()
                self._stop = asyncio.Event()
                self._ready.set()
                await self._stop.wait()
                server.stop()
                await server.close_all_connections()
                assert self.context is not None
                self.context.close()

            try:
                asyncio.run(main())
            except BaseException as exc:  # surfaced to the test thread
                self._error = exc
                self._ready.set()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the server's loop thread and return its result."""
        assert self._loop is not None
        done = threading.Event()
        box: list[Any] = []

        def invoke() -> None:
            box.append(fn())
            done.set()

        self._loop.call_soon_threadsafe(invoke)
        done.wait(5)
        return box[0]

    def stop(self) -> None:
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        token: str | None = WRITE,
        headers: dict[str, str] | None = None,
    ) -> Response:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        if isinstance(body, str):
            body = body.encode()
        try:
            conn.request(method, path, body=body, headers=all_headers)
            resp = conn.getresponse()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def ingest(self, batch: Batch, token: str | None = WRITE) -> Response:
        return self.request("POST", "/api/v1/ingest", encode_batch(batch), token=token)


class SseReader:
    """A raw-socket SSE client: parses frames into (id, event, data) tuples and comments."""

    def __init__(self, port: int, path: str, headers: dict[str, str] | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Accept: text/event-stream"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buffer = b""
        self.status = 0
        self.headers: dict[str, str] = {}
        self.chunked = False
        self._raw = b""
        self._read_head()

    def _read_head(self) -> None:
        while b"\r\n\r\n" not in self._raw:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed before headers")
            self._raw += chunk
        head, _, rest = self._raw.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode().split("\r\n")
        self.status = int(status_line.split()[1])
        for line in header_lines:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self.chunked = self.headers.get("transfer-encoding") == "chunked"
        self._raw = rest
        self._decode()

    def _decode(self) -> None:
        if not self.chunked:
            self.buffer += self._raw
            self._raw = b""
            return
        while True:
            size_line, sep, rest = self._raw.partition(b"\r\n")
            if not sep:
                return
            size = int(size_line, 16)
            if len(rest) < size + 2:
                return
            self.buffer += rest[:size]
            self._raw = rest[size + 2 :]
            if size == 0:
                return

    def frames(self, deadline: float) -> Iterator[dict[str, Any]]:
        """Yield parsed frames until the deadline; raise TimeoutError at the deadline."""
        while True:
            while b"\n\n" in self.buffer:
                raw, _, self.buffer = self.buffer.partition(b"\n\n")
                frame: dict[str, Any] = {}
                for line in raw.decode().split("\n"):
                    field, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if field == "":
                        frame["comment"] = value
                    elif field == "data":
                        frame["data"] = json.loads(value)
                    elif field == "id":
                        frame["id"] = int(value)
                    else:
                        frame[field] = value
                yield frame
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no SSE frame before the deadline")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                raise TimeoutError("no SSE frame before the deadline") from None
            if not chunk:
                raise ConnectionError("stream closed")
            self._raw += chunk
            self._decode()

    def until(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        """Frames read up to and including the first one matching ``predicate``."""
        seen = []
        for frame in self.frames(time.monotonic() + timeout):
            seen.append(frame)
            if predicate(frame):
                return seen
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.sock.close()


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError("condition not met before the deadline")
