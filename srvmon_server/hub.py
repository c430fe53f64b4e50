"""SSE fan-out on the IOLoop: one ring buffer, many bounded clients.

``publish`` keeps an event for replay and offers its frame (encoded once, when the first
interested client needs it) to each interested client; a client whose queue is full is
dropped (its handler closes the stream). The hub is the in-process ``EventBus``.
"""

from __future__ import annotations

from collections.abc import Callable

from srvmon_server.sse import Client, ClientRegistry, Event, RingBuffer, Subscription

Wake = Callable[[], None]


class Hub:
    def __init__(self, *, ring_size: int, client_queue_size: int) -> None:
        self.ring = RingBuffer(ring_size)
        self.client_queue_size = client_queue_size
        self._clients = ClientRegistry()
        self._wakers: dict[int, Wake] = {}
        self._droppers: dict[int, Wake] = {}
        self.published = 0
        self.dropped_clients = 0

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
