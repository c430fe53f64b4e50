"""SSE fan-out on the IOLoop: one ring buffer, many bounded clients.

``publish`` frames an event once, keeps it for replay and offers it to each interested
client; a client whose queue is full is dropped (its handler closes the stream).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from srvmon_server.sse import Client, ClientRegistry, Event, RingBuffer, Subscription

log = logging.getLogger(__name__)
Wake = Callable[[], None]
Listener = Callable[[str, object], None]
"""Gets every published event's name and data (before SSE framing)."""
BatchListener = Callable[[Any], None]
"""Gets every stored batch (a ``srvmon_core.schema.Batch``)."""


class Hub:
    def __init__(self, *, ring_size: int, client_queue_size: int) -> None:
        self.ring = RingBuffer(ring_size)
        self.client_queue_size = client_queue_size
        self._clients = ClientRegistry()
        self._wakers: dict[int, Wake] = {}
        self._droppers: dict[int, Wake] = {}
        self.published = 0
        self.dropped_clients = 0
        self._listeners: list[Listener] = []
        self._batch_listeners: list[BatchListener] = []
        self._on_close: list[Wake] = []

    def listen(self, listener: Listener) -> None:
        """Call ``listener(name, data)`` for every event published from now on (e.g. the
        legacy routes' own streams). It runs on the IOLoop and must not block."""
        self._listeners.append(listener)

    def listen_batches(self, listener: BatchListener) -> None:
        """Call ``listener(batch)`` for every batch stored from now on, right after its
        ``sample`` events. It runs on the IOLoop and must not block."""
        self._batch_listeners.append(listener)

    def on_close(self, callback: Wake) -> None:
        """Call ``callback()`` from :meth:`close_all` (for streams fed by listeners)."""
        self._on_close.append(callback)

    def batch_stored(self, batch: Any) -> None:
        """The ingest pipeline stored ``batch`` and published its ``sample`` events."""
        for listener in self._batch_listeners:
            try:
                listener(batch)
            except Exception:  # a listener's bug must not stop the ingest pipeline
                log.exception("batch listener %r failed", listener)

    @property
    def client_count(self) -> int:
        return len(self._clients)

    def subscribe(self, subscription: Subscription, wake: Wake, drop: Wake) -> tuple[int, Client]:
        """Register a client; ``wake`` is called when frames are queued, ``drop`` once when
        its queue overflowed (the handler then closes the connection)."""
        client = Client(subscription, self.client_queue_size)
        handle = self._clients.add(client)
        self._wakers[handle] = wake
        self._droppers[handle] = drop
        return handle, client

    def unsubscribe(self, handle: int) -> None:
        self._clients.remove(handle)
        self._wakers.pop(handle, None)
        self._droppers.pop(handle, None)

    def publish(self, name: str, data: object, key: str | None = None) -> Event:
        event = self.ring.append(name, data, key)
        self.published += 1
        for listener in self._listeners:
            try:
                listener(name, data)
            except Exception:  # a listener's bug must not stop the live stream
                log.exception("event listener %r failed", listener)
        for handle, client in self._clients.items():
            if not client.subscription.wants(event):
                continue
            if not client.offer(event.frame):
                self.dropped_clients += 1
                drop = self._droppers.get(handle)
                self.unsubscribe(handle)
                if drop is not None:
                    drop()
                continue
            wake = self._wakers.get(handle)
            if wake is not None:
                wake()
        return event

    def close_all(self) -> None:
        """Close every stream (graceful shutdown): each client's drop callback runs once."""
        for handle in list(self._droppers):
            drop = self._droppers.get(handle)
            self.unsubscribe(handle)
            if drop is not None:
                drop()
        for callback in self._on_close:
            callback()
