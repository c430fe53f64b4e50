"""GET /api/v1/events: the Server-Sent Events stream."""

from __future__ import annotations

import asyncio

from tornado.iostream import StreamClosedError

from srvmon_server.handlers.base import ApiError, BaseHandler, iso
from srvmon_server.sse import Subscription, format_comment, format_event, format_retry, parse_topics

MAX_GLOB_LENGTH = 200


class EventsHandler(BaseHandler):
    def token(self) -> str | None:
        # EventSource cannot set headers, so the token may come as ?token=
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
        """Too slow: close the connection, which also ends a flush stuck on a full socket."""
        self._closed = True
        self._wake.set()
        self.request.connection.close()  # type: ignore[union-attr]

    def subscription(self) -> tuple[Subscription, int | None]:
        try:
            topics = parse_topics(self.get_query_argument("topics", None))
        except ValueError as exc:
            raise ApiError(400, "invalid_parameter", str(exc), "topics") from None
        machines = self.get_query_argument("machines", "*") or "*"
        if len(machines) > MAX_GLOB_LENGTH:
            raise ApiError(
                400, "invalid_parameter", f"machines is longer than {MAX_GLOB_LENGTH}", "machines"
            )
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
        return Subscription(topics=topics, machines=machines), last_id

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
        handle, client = hub.subscribe(subscription, self._wake.set, self._drop)
        try:
            self.write(format_retry())
            self.write(
                format_event(
                    None, "hello", {"server_time": iso(ctx.clock()), "last_id": hub.ring.last_id}
                )
            )
            if last_id is not None:
                missed = hub.ring.since(last_id)
                if missed is None:
                    self.write(
                        format_event(hub.ring.last_id, "resync", {"reason": "too far behind"})
                    )
                else:
                    for event in missed:
                        if subscription.wants(event):
                            self.write(event.frame)
            await self.flush()
            await self._pump(client)
        except StreamClosedError:
            self._closed = True
        finally:
            hub.unsubscribe(handle)
        if not self._finished and not self._closed:
            self.finish()

    async def _pump(self, client: object) -> None:
        from srvmon_server.sse import Client

        assert isinstance(client, Client)
        heartbeat = self.ctx.config.heartbeat_seconds
        while not self._closed:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=heartbeat)
            except TimeoutError:
                self.write(format_comment("hb"))
            self._wake.clear()
            if self._closed or client.dropped:
                return
            frames = client.take_all()
            if frames:
                self.write(frames)
            await self.flush()
