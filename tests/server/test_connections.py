"""Connection hygiene (issue 17): idle and slow connections cannot lock out health, early
answers say ``Connection: close``, every oversize body is a 413 envelope, big heads are
answered, 405 carries ``Allow`` and HEAD works on GET routes."""

from __future__ import annotations

import contextlib
import errno
import http.client
import json
import logging
import socket
import threading
import time
from typing import Any

import pytest
import tornado.web

from srvmon_server.httpserver import GuardedHTTPServer
from tests.server.harness import WRITE, RunningServer, SseReader


def raw(port: int, data: bytes, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """Send bytes on a fresh connection; read one answer (status, headers, body by
    Content-Length). The socket is closed afterwards."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        return read_answer(sock)


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before an answer: {buffer!r}")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return int(status_line.split()[1]), headers, rest[:length]


def closed_by_server(sock: socket.socket, timeout: float = 2.0) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def health_latency(port: int) -> float:
    began = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/api/v1/health")
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    return time.perf_counter() - began


def test_early_errors_say_connection_close_and_pooled_clients_go_on(
    server: RunningServer,
) -> None:
    """A 401, 403 or 404 answered before the body was read closes the connection and says
    so; a keep-alive client (http.client reuses its socket unless told to close) sends its
    next request without an error. A normal answer keeps the connection. A body over the
    limit is read and answered 413 on a connection that stays usable."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    early = [
        ("POST", "/api/v1/rules", {}, b"{}", 401),
        ("POST", "/api/v1/rules", {"Authorization": "Bearer read-token"}, b"{}", 403),
        ("GET", "/api/v1/nowhere", {}, None, 404),
    ]
    for method, path, headers, body, status in early:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        payload = resp.read()
        assert resp.status == status, (path, payload)
        assert resp.getheader("Connection") == "close", (path, resp.getheaders())
        assert json.loads(payload)["error"]["status"] == status
        conn.request("GET", "/api/v1/health")  # the same client object, next request
        follow = conn.getresponse()
        assert follow.status == 200 and follow.read()
        assert follow.getheader("Connection") is None  # kept alive
        sock = conn.sock
        conn.request("GET", "/api/v1/health")
        assert conn.getresponse().read() and conn.sock is sock  # reused, not reopened
    big = b"x" * 9_000_000  # over the 8 MiB limit, under four times it
    conn.request("POST", "/api/v1/ingest", body=big, headers={"Authorization": f"Bearer {WRITE}"})
    resp = conn.getresponse()
    assert (resp.status, resp.getheader("Connection")) == (413, None)
    assert json.loads(resp.read())["error"]["code"] == "body_too_large"
    sock = conn.sock
    conn.request("GET", "/api/v1/health")
    assert conn.getresponse().status == 200 and conn.sock is sock
    conn.close()


def test_every_oversize_body_is_a_413_envelope(start_server: Any) -> None:
    """With a 1 KiB limit, on any route (API, static files, unknown paths): a body over
    the limit, declared or chunked, is read, dropped and answered 413 on a connection that
    stays usable; one declared or sent past four times the limit is answered 413 at once
    with ``Connection: close``, never a bare 400."""
    server = start_server(max_body_bytes=1024)
    auth = f"Authorization: Bearer {WRITE}\r\n".encode()

    def fixed(path: bytes, size: int, declared: int | None = None) -> bytes:
        length = str(size if declared is None else declared).encode()
        head = b"POST " + path + b" HTTP/1.1\r\nHost: x\r\n" + auth
        return head + b"Content-Length: " + length + b"\r\n\r\n" + b"x" * size

    def chunked(path: bytes, total: int) -> bytes:
        chunks = b"".join(b"200\r\n" + b"x" * 512 + b"\r\n" for _ in range(total // 512))
        head = b"POST " + path + b" HTTP/1.1\r\nHost: x\r\n" + auth
        return head + b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"

    # an unknown route answers 404 from the request head, before a chunk arrives
    for path, chunks_checked in ((b"/api/v1/ingest", True), (b"/static/app.js", True),
                                 (b"/api/v1/nowhere", False)):  # fmt: skip
        usable = [fixed(path, 2048)] + ([chunked(path, 2048)] if chunks_checked else [])
        for request in usable:
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
                sock.sendall(request)
                status, headers, body = read_answer(sock)
                assert (status, headers.get("connection")) == (413, None), (path, body)
                assert json.loads(body)["error"]["code"] == "body_too_large"
                sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
                assert read_answer(sock)[0] == 200  # the same connection goes on
        cut = [fixed(path, 0, declared=10_000)]
        cut += [chunked(path, 64 * 1024)] if chunks_checked else []
        for request in cut:
            status, headers, body = raw(server.port, request)
            assert (status, headers.get("connection")) == (413, "close"), path
            assert json.loads(body)["error"]["code"] == "body_too_large"


def test_big_request_heads_are_answered_431(server: RunningServer) -> None:
    """A 100 KiB header (over the 64 KiB limit) gets a 431 envelope and
    ``Connection: close`` instead of a silent close."""
    head = b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
    status, headers, body = raw(server.port, head)
    assert (status, headers.get("connection")) == (431, "close")
    assert json.loads(body)["error"]["code"] == "headers_too_large"


GET_ROUTES = [
    "/api/v1/health",
    "/api/v1/machines",
    "/api/v1/rules",
    "/api/v1/alerts",
    "/api/v1/alerts/history",
    "/api/v1/silences",
    "/api/v1/openapi.json",
    "/metrics",
    "/",
    "/static/app.js",
]


@pytest.mark.parametrize("path", GET_ROUTES)
def test_head_works_on_get_routes(server: RunningServer, path: str) -> None:
    """HEAD answers the GET's status and headers (its Content-Length) with no body."""
    get = server.request("GET", path)
    head = server.request("HEAD", path)
    assert get.status == head.status == 200
    assert head.body == b""
    if path == "/metrics":  # its figures (database latency) move between two calls
        assert int(head.headers["content-length"]) > 0
    elif "content-length" in get.headers:
        assert head.headers["content-length"] == str(len(get.body))


def test_head_on_the_event_stream_does_not_subscribe(server: RunningServer) -> None:
    """HEAD /api/v1/events gives the stream's headers and ends at once."""
    head = server.request("HEAD", "/api/v1/events")
    assert head.status == 200 and head.body == b""
    assert head.headers["content-type"].startswith("text/event-stream")
    assert server.context is not None and server.context.hub.client_count == 0


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("HEAD", "/api/v1/ingest", "POST, OPTIONS"),
        ("GET", "/api/v1/ingest", "POST, OPTIONS"),
        ("DELETE", "/api/v1/health", "GET, HEAD, OPTIONS"),
        ("POST", "/api/v1/alerts", "GET, HEAD, OPTIONS"),
        ("PATCH", "/api/v1/rules/r1", "GET, HEAD, PUT, DELETE, OPTIONS"),
        ("POST", "/static/app.js", "GET, HEAD"),
    ],
)
def test_405_says_allow(server: RunningServer, method: str, path: str, allow: str) -> None:
    """Every 405 lists the methods the route serves."""
    resp = server.request(method, path, b"{}" if method in ("POST", "PATCH") else None)
    assert resp.status == 405, resp.body
    assert resp.headers["allow"] == allow
    if method != "HEAD":
        assert resp.json()["error"]["code"] == "method_not_allowed"


def test_busy_connections_at_the_limit_get_503(start_server: Any) -> None:
    """At the limit with every connection busy (SSE streams), a new connection is told 503
    ``too_many_connections`` with ``Connection: close``; when one closes, it works again."""
    server = start_server(max_connections=3)
    streams = [SseReader(server.port, "/api/v1/events") for _ in range(3)]
    try:
        status, headers, body = raw(server.port, b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (status, headers.get("connection")) == (503, "close")
        assert json.loads(body)["error"]["code"] == "too_many_connections"
        streams.pop().close()
        time.sleep(0.2)
        assert health_latency(server.port) < 1.0
    finally:
        for stream in streams:
            stream.close()


def test_slow_headers_are_timed_out_and_evicted(start_server: Any) -> None:
    """300 connections dribbling a request head (a byte every 0.3 s) against a limit of 50:
    health answers within a second throughout (the longest-waiting head is evicted for each
    new connection), and the idle timeout (1.5 s) closes the dribblers it kept."""
    server = start_server(max_connections=50, idle_timeout_seconds=1.5)
    socks = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(300)]
    latencies: list[float] = []
    try:
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            for sock in socks:
                with contextlib.suppress(OSError):
                    sock.send(b"G")
            latencies.append(health_latency(server.port))
            time.sleep(0.3)
        closed = sum(closed_by_server(sock, 0.5) for sock in socks[-50:])
    finally:
        for sock in socks:
            sock.close()
    assert max(latencies) < 1.0, latencies
    assert closed == 50  # even the 50 kept were closed by the idle timeout


def test_out_of_descriptors_pauses_accepting_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """EMFILE from accept() pauses the listener for half a second and logs one line per
    10 s, instead of the accept loop spinning and logging a traceback per attempt."""
    import asyncio

    attempts: list[float] = []

    class Exhausted(socket.socket):
        def accept(self) -> Any:
            attempts.append(time.monotonic())
            raise OSError(errno.EMFILE, "Too many open files")

    async def main() -> GuardedHTTPServer:
        listener = Exhausted(socket.AF_INET, socket.SOCK_STREAM)
        listener.setblocking(False)
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        app = tornado.web.Application([])
        http = GuardedHTTPServer(app, max_connections=10, max_body_bytes=1024)
        http.add_sockets([listener])
        clients = [socket.create_connection(listener.getsockname()) for _ in range(3)]
        await asyncio.sleep(1.8)
        http.stop()
        for client in clients:
            client.close()
        return http

    servers: list[GuardedHTTPServer] = []
    with caplog.at_level(logging.WARNING, logger="srvmon_server.httpserver"):
        # a loop of its own on its own thread (another test's loop may run on this one)
        runner = threading.Thread(target=lambda: servers.append(asyncio.run(main())))
        runner.start()
        runner.join(10)
    (http,) = servers
    assert 2 <= len(attempts) <= 6, len(attempts)  # one per pause, not a spin
    assert http.accept_errors == len(attempts)
    lines = [r for r in caplog.records if "cannot accept connections" in r.getMessage()]
    assert len(lines) == 1 and not any(r.exc_info for r in caplog.records)


def test_many_idle_connections_leave_health_answering(start_server: Any) -> None:
    """2,000 idle connections against a limit of 200 (the full 20,000 run against a
    real process is tests/deploy/test_connection_flood.py): health answers within 1 s
    while they are held."""
    server = start_server(max_connections=200)
    socks: list[socket.socket] = []
    stop = threading.Event()
    try:
        for _ in range(2000):
            socks.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
        latencies = [health_latency(server.port) for _ in range(20)]
    finally:
        stop.set()
        for sock in socks:
            sock.close()
    assert max(latencies) < 1.0, latencies
