"""The HTTP server with connection hygiene: Tornado's ``HTTPServer`` plus what a server
exposed to hostile clients needs.

- **A connection limit.** At ``max_connections`` open connections a new one takes the
  place of the connection that has waited longest for a request head (an idle keep-alive
  connection, or one still sending its headers slowly); when every connection is busy
  (a request in flight, an SSE stream), the new one is answered 503 with
  ``Connection: close``. So 20,000 idle connections cannot lock out a health probe.
- **Timeouts.** ``idle_timeout`` bounds how long a connection may wait for (or dribble)
  a request head, ``body_timeout`` how long a body may take.
- **Accept errors** (no file descriptor left, EMFILE) pause accepting for half a second
  and are logged at most once per 10 s, instead of a spinning accept loop that wrote a
  traceback per attempt.
- **Oversize requests get the envelope on every route**: a body over the limit is read
  and dropped up to four times the limit and answered 413 (the connection stays usable);
  one declared or sent beyond that is answered 413 at once, and a request head over
  ``max_header_bytes`` 431, both with ``Connection: close`` (the connection is closed
  after the answer).

The application (``make_app``) knows nothing of this; ``srvmon server`` and the tests
serve it through :func:`make_http_server`.
"""

from __future__ import annotations

import errno
import http.client
import logging
import socket
from collections import OrderedDict
from collections.abc import Awaitable, Iterable
from typing import Any

import tornado.httpserver
import tornado.web
from tornado import httputil
from tornado.http1connection import HTTP1ServerConnection
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream, StreamClosedError

from srvmon_server.config import ServerConfig
from srvmon_server.errors import CONTENT_TYPE, error_body
from srvmon_server.ratelog import RateLimitedLog

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024
"""A request head (start line and headers) larger than this is answered 431."""
HEAD_READ_LIMIT = 4 * MAX_HEADER_BYTES
"""Tornado reads at most this much looking for the end of a head; a longer one is cut
without an answer (nothing sane can be said to it)."""
BACKLOG = 1024
"""Listen backlog for the server's sockets (the kernel caps it at ``somaxconn``)."""
ACCEPT_PAUSE_SECONDS = 0.5
_FD_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_ACCEPT_BATCH = 128


Answer = tuple[httputil.ResponseStartLine, httputil.HTTPHeaders, bytes]


def _answer(status: int, code: str, message: str, *, closing: bool) -> Answer:
    """An envelope answer; ``closing``: the request was not read to its end, so Tornado
    closes the connection after the answer, which must say so."""
    body = error_body(status, code, message)
    headers = httputil.HTTPHeaders({"Content-Type": CONTENT_TYPE, "Content-Length": str(len(body))})
    if closing:
        headers["Connection"] = "close"
    reason = http.client.responses.get(status, "Error")
    return httputil.ResponseStartLine("HTTP/1.1", status, reason), headers, body


def _raw_answer(status: int, code: str, message: str) -> bytes:
    start, headers, body = _answer(status, code, message, closing=True)
    lines = [f"{start.version} {start.code} {start.reason}"]
    lines += [f"{name}: {value}" for name, value in headers.get_all()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class GuardedHTTPServer(tornado.httpserver.HTTPServer):
    """``HTTPServer`` with a connection limit, idle-connection eviction, bounded accept
    errors and enveloped early answers (see the module doc)."""

    def initialize(  # type: ignore[override]
        self,
        request_callback: Any,
        *,
        max_connections: int,
        max_body_bytes: int,
        max_header_bytes: int = MAX_HEADER_BYTES,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("max_header_size", max(HEAD_READ_LIMIT, 4 * max_header_bytes))
        # streaming handlers are fed by _Guard, which enforces the body limit for every
        # route; Tornado's own check would answer a bare 400 instead
        kwargs["max_body_size"] = 2**62
        super().initialize(request_callback, **kwargs)
        self.max_connections = max_connections
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes
        self._waiting: OrderedDict[IOStream, None] = OrderedDict()
        """Connections (by stream) waiting for a request head, the longest-waiting first;
        a new one from the moment it is accepted."""
        self._closing: set[IOStream] = set()
        """Evicted connections Tornado has not finished closing."""
        self._accept_log = RateLimitedLog(log)
        self.evicted = 0
        self.refused = 0
        self.accept_errors = 0

    # --- accepting -------------------------------------------------------------------------

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        for sock in sockets:
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = self._accept_on(sock)

    def _accept_on(self, sock: socket.socket) -> Any:
        """Like ``tornado.netutil.add_accept_handler``, but out of file descriptors it
        pauses instead of spinning; returns the function that stops accepting."""
        loop = IOLoop.current()
        state = {"removed": False, "paused": False}

        def accept(_fd: Any, _events: int) -> None:
            for _ in range(_ACCEPT_BATCH):
                if state["removed"] or state["paused"]:
                    return
                try:
                    connection, address = sock.accept()
                except BlockingIOError:
                    return
                except ConnectionAbortedError:
                    continue
                except OSError as exc:
                    if exc.errno not in _FD_ERRORS:
                        raise
                    self._out_of_descriptors(exc, loop, sock, accept, state)
                    return
                self._handle_connection(connection, address)

        def remove() -> None:
            if not state["paused"]:
                loop.remove_handler(sock)
            state["removed"] = True

        loop.add_handler(sock, accept, IOLoop.READ)
        return remove

    def _out_of_descriptors(
        self, exc: OSError, loop: IOLoop, sock: socket.socket, accept: Any, state: dict[str, bool]
    ) -> None:
        self.accept_errors += 1
        self._accept_log.warning(
            "cannot accept connections: %s; pausing %.1f s (%d open, limit %d)",
            exc.strerror,
            ACCEPT_PAUSE_SECONDS,
            len(self._connections),
            self.max_connections,
        )
        state["paused"] = True
        loop.remove_handler(sock)

        def resume() -> None:
            state["paused"] = False
            if not state["removed"]:
                loop.add_handler(sock, accept, IOLoop.READ)

        loop.call_later(ACCEPT_PAUSE_SECONDS, resume)

    def handle_stream(self, stream: IOStream, address: tuple[Any, ...]) -> None:
        if len(self._connections) - len(self._closing) >= self.max_connections:
            if not self._waiting:
                self._refuse(stream)
                return
            oldest, _ = self._waiting.popitem(last=False)
            self._closing.add(oldest)
            self.evicted += 1
            oldest.close()
        super().handle_stream(stream, address)
        self._waiting[stream] = None

    def _refuse(self, stream: IOStream) -> None:
        self.refused += 1
        answer = _raw_answer(
            503, "too_many_connections", "the server is at its connection limit; retry later"
        )
        try:
            written = stream.write(answer)
        except StreamClosedError:
            return

        def close(done: Any) -> None:
            if not done.cancelled():
                done.exception()  # a client already gone: nothing to report
            stream.close()

        written.add_done_callback(close)

    # --- per request -----------------------------------------------------------------------

    def start_request(
        self, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> httputil.HTTPMessageDelegate:
        assert isinstance(server_conn, HTTP1ServerConnection)
        watched = _WatchedConnection(request_conn)
        delegate = super().start_request(server_conn, watched)  # type: ignore[arg-type]
        self._waiting[server_conn.stream] = None  # the next request head is awaited now
        self._waiting.move_to_end(server_conn.stream)
        return _Guard(self, server_conn, watched, delegate)

    def on_close(self, server_conn: object) -> None:
        assert isinstance(server_conn, HTTP1ServerConnection)
        self._waiting.pop(server_conn.stream, None)
        self._closing.discard(server_conn.stream)
        super().on_close(server_conn)

    def busy(self, server_conn: HTTP1ServerConnection) -> None:
        self._waiting.pop(server_conn.stream, None)


class _WatchedConnection:
    """The request's connection as the application sees it; remembers whether the
    application started its answer."""

    def __init__(self, inner: httputil.HTTPConnection) -> None:
        self._inner = inner
        self.answered = False

    def write_headers(self, *args: Any, **kwargs: Any) -> Any:
        self.answered = True
        return self._inner.write_headers(*args, **kwargs)

    def set_max_body_size(self, _size: int) -> None:
        """Ignored: the guard enforces the server's body limit on every route."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _Guard(httputil.HTTPMessageDelegate):
    """Sits before the application's delegate for one request: marks the connection busy,
    answers oversize heads and bodies itself.

    A body over the limit is read and dropped up to four times the limit, then answered
    413 (the connection stays usable: a client that sends its whole body before reading,
    as most do, gets the answer). A body declared (``Content-Length``) or sent beyond
    four times the limit is answered 413 at once, with ``Connection: close``."""

    def __init__(
        self,
        server: GuardedHTTPServer,
        server_conn: HTTP1ServerConnection,
        conn: _WatchedConnection,
        inner: httputil.HTTPMessageDelegate,
    ) -> None:
        self._server = server
        self._server_conn = server_conn
        self._conn = conn
        self._inner = inner
        self._forwarded = False
        """The application has this request (its headers were passed on)."""
        self._done = False
        """The guard answered, or the connection is gone: pass nothing more on."""
        self._body_bytes = 0

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        self._server.busy(self._server_conn)
        head = sum(len(str(part)) + 1 for part in start_line)
        head += sum(len(name) + len(value) + 4 for name, value in headers.get_all())
        if head > self._server.max_header_bytes:
            message = f"the request head exceeds {self._server.max_header_bytes} bytes"
            self._answer(431, "headers_too_large", message, closing=True)
            return None
        length = headers.get("Content-Length", "").strip()
        declared = int(length) if length.isdigit() else 0
        if declared > 4 * self._server.max_body_bytes:
            self._too_large(closing=True)
            return None
        if declared > self._server.max_body_bytes:
            return None  # read and dropped; answered in finish()
        self._forwarded = True
        return self._inner.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        if self._done:
            return None
        self._body_bytes += len(chunk)
        if self._body_bytes > 4 * self._server.max_body_bytes:
            self._too_large(closing=True)
            return None
        if self._body_bytes > self._server.max_body_bytes or not self._forwarded:
            return None
        return self._inner.data_received(chunk)

    def finish(self) -> None:
        if self._done:
            return
        if self._body_bytes > self._server.max_body_bytes or not self._forwarded:
            self._too_large(closing=False)  # read to its end: the connection goes on
            return
        self._inner.finish()

    def on_connection_close(self) -> None:
        if self._forwarded and not self._done:
            self._inner.on_connection_close()
        self._done = True

    def _too_large(self, *, closing: bool) -> None:
        limit = self._server.max_body_bytes
        self._answer(413, "body_too_large", f"the body exceeds {limit} bytes", closing=closing)

    def _answer(self, status: int, code: str, message: str, *, closing: bool) -> None:
        """Answer in the envelope, unless the application already started to; either way
        the application is told the request is over."""
        if self._forwarded and not self._done:
            self._inner.on_connection_close()
        self._done = True
        if self._conn.answered:
            self._server_conn.stream.close()
            return
        start, headers, body = _answer(status, code, message, closing=closing)
        self._conn.write_headers(start, headers, body)
        self._conn.finish()


FD_RESERVE = 64
"""File descriptors kept for everything but client connections: database connections,
SQLite's files, the listening sockets, webhook clients, logs."""


def connection_limit(wanted: int) -> int:
    """``wanted`` clamped so client connections cannot exhaust the process's file
    descriptors: the soft ``RLIMIT_NOFILE`` is first raised to the hard one (where the
    system allows), then ``FD_RESERVE`` is kept back. Logs a warning when it clamps."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, wanted + FD_RESERVE)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    allowed = max(1, soft - FD_RESERVE)
    if wanted > allowed:
        log.warning(
            "--max-connections %d exceeds what %d file descriptors allow; using %d "
            "(raise the limit with ulimit -n or LimitNOFILE=)",
            wanted,
            soft,
            allowed,
        )
        return allowed
    return wanted


def make_http_server(
    app: tornado.web.Application, config: ServerConfig, *, max_connections: int | None = None
) -> GuardedHTTPServer:
    """The server for ``app`` with ``config``'s limits (``max_connections`` overrides the
    configured limit, e.g. clamped to the file-descriptor limit)."""
    return GuardedHTTPServer(
        app,
        max_connections=config.max_connections if max_connections is None else max_connections,
        max_body_bytes=config.max_body_bytes,
        idle_connection_timeout=config.idle_timeout_seconds,
        body_timeout=config.body_timeout_seconds,
    )
