"""``WebSocket /ws/metrics``: every stored batch, as the original's compact document.

* Origins: a browser's ``Origin`` must be the server's own or listed in
  ``CORS_ALLOWED_ORIGINS`` (``*`` allows any); others get 403 with the JSON error envelope.
  (The original allowed any origin.) Clients that send no ``Origin`` (not browsers) pass.
* Auth: reads follow ``--read-auth``; the token comes as ``Authorization: Bearer`` or, for
  browsers, ``?token=``.
* Back-pressure: one message is written at a time and the next waits until the socket took
  it. Messages wait in a bounded queue (``client_queue_size``); a client that lets it fill
  is dropped (its connection is closed). Nothing is buffered without bound.
* Messages from the client are ignored.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import tornado.websocket

from srvmon_server.auth import Access, bearer_token
from srvmon_server.errors import CONTENT_TYPE, error_body
from srvmon_server.legacy.live import LegacyLive
from srvmon_server.sse import Client


class MetricsSocketHandler(tornado.websocket.WebSocketHandler):
    _handle: int | None = None
    _client: Client | None = None
    _pump: asyncio.Task[None] | None = None

    @property
    def live(self) -> LegacyLive:
        live = self.application.settings["srvmon_legacy"]
        assert isinstance(live, LegacyLive)
        return live

    def _refuse(self, status: int, code: str, message: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", CONTENT_TYPE)
        if status == 401:
            self.set_header("WWW-Authenticate", 'Bearer realm="srvmon"')
        self.finish(error_body(status, code, message))

    def allowed_origin(self, origin: str) -> bool:
        allowed = self.live.ctx.config.cors_allowed_origins
        if "*" in allowed or origin.rstrip("/") in allowed:
            return True
        host = self.request.headers.get("Host", "")
        return urlsplit(origin).netloc.lower() == host.lower()

    def prepare(self) -> None:
        origin = self.request.headers.get("Origin")
        if origin is not None and not self.allowed_origin(origin):
            self._refuse(403, "forbidden", f"origin {origin!r} is not in CORS_ALLOWED_ORIGINS")
            return
        token = bearer_token(self.request.headers.get("Authorization"))
        token = token or self.get_query_argument("token", None) or None
        denied = self.live.ctx.tokens.policy.check(Access.READ, token)
        if denied is not None:
            self._refuse(denied.status, denied.code, denied.message)

    def check_origin(self, origin: str) -> bool:
        return True  # checked in prepare, to answer with the JSON envelope

    def open(self, *_args: str, **_kwargs: str) -> None:
        self._wake = asyncio.Event()
        self._handle, self._client = self.live.documents.subscribe(self._wake.set, self._drop)
        self._pump = asyncio.ensure_future(self._send())

    def _drop(self) -> None:
        """The queue overflowed: cut the connection at once (no closing handshake, which
        would wait behind the unread data)."""
        self._handle = None
        connection = self.ws_connection
        if connection is not None and connection.stream is not None:
            connection.stream.close()
        self._wake.set()

    async def _send(self) -> None:
        client = self._client
        assert client is not None
        try:
            while not client.dropped:
                await self._wake.wait()
                self._wake.clear()
                while client.queue and not client.dropped:
                    message = client.queue.popleft()
                    await self.write_message(message.decode())
        except (tornado.websocket.WebSocketClosedError, asyncio.CancelledError):
            pass

    def on_message(self, message: str | bytes) -> None:
        """The original's clients only listen."""

    def on_close(self) -> None:
        if self._handle is not None:
            self.live.documents.unsubscribe(self._handle)
            self._handle = None
        if self._pump is not None:
            self._pump.cancel()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", CONTENT_TYPE)
        self.finish(error_body(status_code, "error", "the WebSocket request failed"))
