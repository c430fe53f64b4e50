"""An old-style client of the original Java back end, and Java-shaped documents as text.

The client talks as the original front end and consumer did: plain HTTP/1.1 requests
(``http.client``), an EventSource-like line parser for the alert stream, and tornado's
WebSocket client for ``/ws/metrics``. Documents are hand-written JSON text shaped like the
Java collector's output (doubles with exponents, ``eth0_1`` keys, ``/name`` containers,
zone-less local timestamps), never produced by srvmon's encoder.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from srvmon_server.legacy.config import LegacyConfig

T = TypeVar("T")

HOST_ID = "6f1c2e0a-rack3-u12"
MYSQL_ID = "4f7c2d0e9a1b3c5d7e9f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d"
NGINX_ID = "9b3e4f0c2d1a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c"


def java_document(
    local_time: str, *, cpu: str = "37.5", nginx_id: str = NGINX_ID, host_id: str = HOST_ID
) -> bytes:
    """One 5-second loop of host db-01 (mysql-db and nginx), as Jackson re-serialised it."""
    return f"""{{"type":"host","hostId":"{host_id}","name":"db-01","timeStamp":"{local_time}",
"cpuUsagePercent":{cpu},"memoryUsedBytes":1.551929344E10,
"diskReadBytesDelta":4096.0,"diskWriteBytesDelta":1.2288E4,
"networkDelta":{{"lo_0":{{"rxBytesDelta":9.99E8,"txBytesDelta":9.99E8}},
"eth0_1":{{"rxBytesDelta":2.5E6,"txBytesDelta":500000.0}},
"docker0_2":{{"rxBytesDelta":0.0,"txBytesDelta":-1.0E3}}}},
"temperatures":{{"Package id 0":61.0,"Core 0":58.5}},
"containers":{{
"{MYSQL_ID}":{{"name":"/mysql-db","cpuUsagePercent":140.25,"memoryUsedBytes":1.073741824E9,
"diskReadBytesDelta":2.048E5,"diskWriteBytesDelta":1024000.0,
"networkDelta":{{"lo_0":{{"rxBytesDelta":7.0E7,"txBytesDelta":7.0E7}},
"eth0_1":{{"rxBytesDelta":1.0E6,"txBytesDelta":4.0E6}}}}}},
"{nginx_id}":{{"name":"/nginx","cpuUsagePercent":0.0,"memoryUsedBytes":5.24288E7,
"diskReadBytesDelta":0.0,"diskWriteBytesDelta":-5.0E2,"networkDelta":{{}}}}}}}}""".encode()


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


class OldClient:
    """Plain HTTP/1.1, one connection per request, as the original front end's fetch calls."""

    def __init__(self, port: int, token: str | None = None) -> None:
        self.port = port
        self.token = token

    def call(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        sent = {"Content-Type": "application/json", **(headers or {})}
        bearer = token if token is not None else self.token
        if bearer:
            sent["Authorization"] = f"Bearer {bearer}"
        try:
            conn.request(method, path, body=body.encode() if isinstance(body, str) else body,
                         headers=sent)  # fmt: skip
            resp = conn.getresponse()
            return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def get(self, path: str, **kw: Any) -> Answer:
        return self.call("GET", path, **kw)

    def post_json(self, path: str, data: Any, **kw: Any) -> Answer:
        return self.call("POST", path, json.dumps(data), **kw)


class SseLines:
    """An EventSource-like reader over a raw socket: HTTP/1.1 GET, chunked decoding, then
    lines; a blank line dispatches the event; comment lines are counted.

    Unnamed events only (``data:`` lines); an ``event:`` line would be recorded as the name.
    """

    def __init__(self, port: int, path: str, headers: dict[str, str] | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Accept: text/event-stream"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self._raw = b""
        self._text = b""
        while b"\r\n\r\n" not in self._raw:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed before the headers")
            self._raw += chunk
        head, _, self._raw = self._raw.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode().split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self._chunked = self.headers.get("transfer-encoding") == "chunked"
        self.comments: list[str] = []
        self.names: list[str] = []
        self._data: list[str] = []
        self._decode()

    def _decode(self) -> None:
        if not self._chunked:
            self._text, self._raw = self._text + self._raw, b""
            return
        while True:
            size_line, sep, rest = self._raw.partition(b"\r\n")
            if not sep:
                return
            size = int(size_line, 16)
            if len(rest) < size + 2:
                return
            self._text += rest[:size]
            self._raw = rest[size + 2 :]

    def next_event(self, timeout: float = 5.0) -> Any:
        """The next event's data as parsed JSON; TimeoutError when none comes in time."""
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self._text:
                raw, _, self._text = self._text.partition(b"\n")
                line = raw.decode().rstrip("\r")
                if line == "":
                    if self._data:
                        data, self._data = self._data, []
                        return json.loads("\n".join(data))
                    continue
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "":
                    self.comments.append(value)
                elif field == "data":
                    self._data.append(value)
                elif field == "event":
                    self.names.append(value)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no SSE event in time")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                raise TimeoutError("no SSE event in time") from None
            if not chunk:
                raise ConnectionError("the stream ended")
            self._raw += chunk
            self._decode()

    def events(self, quiet: float = 1.0, limit: int = 100) -> list[Any]:
        """Every event until none came for ``quiet`` seconds."""
        out = []
        while len(out) < limit:
            try:
                out.append(self.next_event(quiet))
            except TimeoutError:
                return out
        return out

    def close(self) -> None:
        self.sock.close()


# --- a server as the migration tests run it -----------------------------------------

BERLIN = ZoneInfo("Europe/Berlin")
FRONTEND = "http://old-frontend.example"
OVER = {
    "cpuPercent": "90.0",
    "memoryUsage": "1.0E9",
    "diskReadDelta": "2048.0",
    "diskWriteDelta": "1.0E12",
    "networkRx": "1.0E12",
    "networkTx": "1.0E12",
    "temperature": "85.0",
}
UNDER = {
    "cpuPercent": "1.0",
    "memoryUsage": "0.0",
    "diskReadDelta": "-1.0",
    "diskWriteDelta": "-1.0",
    "networkRx": "-1.0",
    "networkTx": "-1.0",
    "temperature": "-50.0",
}


def legacy_server(start: Callable[..., Any], **legacy: Any) -> Any:
    """A RunningServer (tests/server/harness.py) with the legacy routes on: Berlin time, a
    5 s Java loop, tokenless ingest from 127.0.0.1, the old front end's origin allowed."""
    options: dict[str, Any] = dict(
        enabled=True, tz=BERLIN, interval_seconds=5.0, tokenless_networks="127.0.0.1/32"
    )
    options.update(legacy)
    return start(
        legacy=LegacyConfig(**options),
        cors_allowed_origins={FRONTEND},
        heartbeat_seconds=0.3,
        silence_check_seconds=0.1,
    )


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on a thread of its own: the test thread may already run a loop (the
    session's playwright browser does), and tornado's WebSocket client needs one."""
    box: list[T] = []
    failure: list[BaseException] = []

    def main() -> None:
        try:
            box.append(asyncio.run(coroutine))
        except BaseException as exc:  # re-raised on the test thread
            failure.append(exc)

    thread = threading.Thread(target=main, name="legacy-test-client")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return box[0]
