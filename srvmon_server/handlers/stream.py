"""What every long-lived stream response shares (``GET /api/v1/events`` and the legacy
``GET /api/metrics/threshold-alert``): a token that may come as ``?token=`` (EventSource
cannot set headers), no compression, and a wake-up event that the client's queue, the
client leaving and the server dropping it all set."""

from __future__ import annotations

import asyncio

from srvmon_server.handlers.base import BaseHandler


class StreamHandler(BaseHandler):
    _closed: bool
    _wake: asyncio.Event

    def token(self) -> str | None:
        return super().token() or self.get_query_argument("token", None) or None

    def prepare(self) -> None:
        self._transforms = []  # never compress a stream, even with compress_response on
        self._closed = False
        self._wake = asyncio.Event()
        super().prepare()

    def on_connection_close(self) -> None:
        self._closed = True
        self._wake.set()

    def _drop(self) -> None:
        """The server ends the stream (shutdown, a stalled socket, a queue that overflowed):
        closing the connection also ends a flush stuck on a full socket."""
        self._closed = True
        self._wake.set()
        self.request.connection.close()  # type: ignore[union-attr]
