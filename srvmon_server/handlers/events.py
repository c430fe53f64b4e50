"""GET /api/v1/events: the Server-Sent Events stream.

The subscription is a dashboard ``view`` (``fleet``, ``host`` with ``host=``, ``alerts``)
or, for API users, ``topics`` and a ``machines`` glob. The writer sends what waits in the
client's queue in chunks of about ``WRITE_CHUNK_BYTES``, so that what the socket has not
taken yet can still be replaced by newer values (``sse.Client``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from tornado.iostream import StreamClosedError

from srvmon_server.handlers.base import ApiError, iso
from srvmon_server.handlers.stream import StreamHandler
from srvmon_server.sse import (
    Client,
    Subscription,
    format_comment,
    format_event,
    format_retry,
    parse_topics,
    view_subscription,
)

MAX_GLOB_LENGTH = 200
WRITE_CHUNK_BYTES = 64 * 1024
"""At most this much (plus one frame) is handed to the socket per write."""


class EventsHandler(StreamHandler):
    def subscription(self) -> tuple[Subscription, int | None]:
        view = self.get_query_argument("view", None)
        raw_topics = self.get_query_argument("topics", None)
        # strip=False on the bounded values: their limits are on the value as sent
        machines = self.get_query_argument("machines", "*", strip=False) or "*"
        if view is not None:
            for name, given in (("topics", raw_topics), ("machines", machines != "*")):
                if given:
                    message = f"{name} cannot be combined with view (a view sets both)"
                    raise ApiError(400, "invalid_parameter", message, name)
            host = self.get_query_argument("host", None, strip=False)
            try:
                subscription = view_subscription(view, host)
            except ValueError as exc:
                field = "host" if view == "host" else "view"
                raise ApiError(400, "invalid_parameter", str(exc), field) from None
            if host is not None and len(host) > MAX_GLOB_LENGTH:
                raise ApiError(
                    400, "invalid_parameter", f"host is longer than {MAX_GLOB_LENGTH}", "host"
                )
        else:
            try:
                topics = parse_topics(raw_topics)
            except ValueError as exc:
                raise ApiError(400, "invalid_parameter", str(exc), "topics") from None
            if len(machines) > MAX_GLOB_LENGTH:
                raise ApiError(
                    400,
                    "invalid_parameter",
                    f"machines is longer than {MAX_GLOB_LENGTH}",
                    "machines",
                )
            subscription = Subscription(topics=topics, machines=machines)
        raw_last = self.request.headers.get("Last-Event-ID") or self.get_query_argument(
            "last_event_id", None
        )
        last_id = None
        if raw_last:
            try:
                last_id = int(raw_last)
            except ValueError:
                raise ApiError(
                    400, "invalid_parameter", "Last-Event-ID must be an integer", "last_event_id"
                ) from None
        return subscription, last_id

    def stream_headers(self) -> None:
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")

    async def head(self, *_args: str) -> None:
        """The stream's status and headers, without subscribing."""
        self.subscription()
        self.stream_headers()
        self.finish()

    async def get(self) -> None:
        subscription, last_id = self.subscription()
        ctx = self.ctx
        hub = ctx.hub
        self.stream_headers()
        self._bound_send_buffer(ctx.config.sse_send_buffer_bytes)
        subscribed = hub.subscribe(subscription, self._wake.set, self._drop, resume_after=last_id)
        handle = subscribed.handle
        stalled = False
        try:
            self.write(format_retry())
            hello = {"server_time": iso(ctx.clock()), "last_id": hub.ring.last_id}
            self.write(format_event(None, "hello", hello))
            if subscribed.resync:
                self.write(format_event(hub.ring.last_id, "resync", {"reason": "too far behind"}))
            await self.flush()
            stalled = await self._pump(subscribed.client)
        except StreamClosedError:
            self._closed = True
        finally:
            hub.unsubscribe(handle, dropped=stalled)
        if stalled:
            self._drop()
        elif not self._finished and not self._closed:
            self.finish()

    def _bound_send_buffer(self, size: int) -> None:
        """Fix the socket's send buffer (no autotuning up to megabytes): what the kernel
        holds for a slow reader is sent as it was, so the less of it, the fresher the
        reader; the rest waits in the conflating queue."""
        if size <= 0:
            return
        stream = getattr(self.request.connection, "stream", None)
        sock = getattr(stream, "socket", None)
        if sock is None:
            return
        with contextlib.suppress(OSError):  # not a TCP socket: nothing to bound
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)

    async def _pump(self, client: Client) -> bool:
        """Write what waits until the stream closes; True when the socket stalled (it took
        nothing for ``client_stall_seconds``) and the client must be dropped."""
        config = self.ctx.config
        heartbeat = config.heartbeat_seconds
        stall = config.client_stall_seconds
        while not self._closed:
            if not client.has_pending():
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=heartbeat)
                except TimeoutError:
                    self.write(format_comment("hb"))
                    if not await self._flush_within(stall):
                        return True
                self._wake.clear()
                continue
            self.write(client.take(WRITE_CHUNK_BYTES))
            if not await self._flush_within(stall):
                return True
        return False

    async def _flush_within(self, seconds: float) -> bool:
        """Flush; False when the socket did not take it within ``seconds``."""
        try:
            await asyncio.wait_for(self.flush(), timeout=seconds)
        except TimeoutError:
            return False
        return True
