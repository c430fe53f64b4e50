"""SSE fan-out on the IOLoop: one ring buffer, routes to clients, conflating queues. The
hub is the in-process ``EventBus``.

``publish`` numbers an event (``sample``, ``machine``, ``alert``; a ``summary`` is state
and carries no id), keeps it for replay and offers it to the clients that want it. Clients
are found through routes (every machine, one host, one key, a glob) per topic, so a
``sample`` costs nothing for the clients that do not take samples (the fleet view) and a
glob is matched once per machine key, not once per client. The frame is encoded once, by
the first client that sends it (``sse.Event``).

A client never makes the server drop it for falling behind on state events: its queue
keeps the newest one per machine (``sse.Client``). Dropping a client is the last resort,
for a socket that accepts nothing for ``client_stall_seconds`` (``handlers/events.py``).

In-process subscribers that need every ``sample`` and every ``alert`` (legacy streaming
routes, say) either ``listen`` (a callback per published event) or ``subscribe`` with
``Subscription(conflate=False)`` (an ordered, bounded queue).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Sequence

from attrs import frozen

from srvmon_server.sse import (
    REPLAYED_TOPICS,
    TOPIC_OF_EVENT,
    Client,
    Event,
    RingBuffer,
    Subscription,
)

Wake = Callable[[], None]
Listener = Callable[[Event], None]
GLOB_CACHE_LIMIT = 100_000
"""Most (glob, key) match results remembered; the cache starts over past this."""


class _Entry:
    __slots__ = ("client", "drop", "wake")

    def __init__(self, client: Client, wake: Wake, drop: Wake) -> None:
        self.client = client
        self.wake = wake
        self.drop = drop


class _Routes:
    """The clients of one topic, by how they filter machines."""

    def __init__(self) -> None:
        self.all: dict[int, _Entry] = {}
        self.by_host: dict[str, dict[int, _Entry]] = {}
        self.by_key: dict[str, dict[int, _Entry]] = {}
        self.by_glob: dict[str, dict[int, _Entry]] = {}

    def table(self, kind: str, value: str | None) -> dict[int, _Entry]:
        if kind == "all":
            return self.all
        group = {"host": self.by_host, "key": self.by_key, "glob": self.by_glob}[kind]
        return group.setdefault(value or "", {})

    def remove(self, handle: int, kind: str, value: str | None) -> None:
        if kind == "all":
            self.all.pop(handle, None)
            return
        group = {"host": self.by_host, "key": self.by_key, "glob": self.by_glob}[kind]
        table = group.get(value or "")
        if table is not None:
            table.pop(handle, None)
            if not table:
                del group[value or ""]


@frozen
class Subscribed:
    """A new client: its handle, its queue, and whether it must ``resync`` first (its
    ``Last-Event-ID`` is older than what the ring still holds for its topics)."""

    handle: int
    client: Client
    resync: bool


class Hub:
    def __init__(self, *, ring_size: int, client_queue_size: int) -> None:
        self.ring = RingBuffer(ring_size)
        self.client_queue_size = client_queue_size
        self._entries: dict[int, _Entry] = {}
        self._routes: dict[str, _Routes] = {}
        self._summaries: dict[str, Event] = {}
        """The newest ``summary`` per host: what a new fleet client starts from."""
        self._globs: dict[tuple[str, str], bool] = {}
        self._listeners: list[Listener] = []
        self._next_handle = 0
        self.published = 0
        self.dropped_clients = 0
        self._gone_conflated = 0
        self._gone_resyncs = 0

    @property
    def client_count(self) -> int:
        return len(self._entries)

    @property
    def conflated(self) -> int:
        """State events replaced by a newer one before a client sent them (all clients)."""
        entries = tuple(self._entries.values())  # /metrics reads this from a worker thread
        return self._gone_conflated + sum(e.client.conflated for e in entries)

    @property
    def resyncs(self) -> int:
        """Times a client's queue of alerts overflowed and became one ``resync``."""
        entries = tuple(self._entries.values())
        return self._gone_resyncs + sum(e.client.resyncs for e in entries)

    def subscribe(
        self,
        subscription: Subscription,
        wake: Wake,
        drop: Wake,
        *,
        resume_after: int | None = None,
    ) -> Subscribed:
        """Register a client. ``wake`` is called when its queue stops being empty, ``drop``
        once if the server closes it. The queue starts with the current ``summary`` of
        every host it watches, then (with ``resume_after``) the events it missed."""
        client = Client(subscription, self.client_queue_size)
        self._next_handle += 1
        handle = self._next_handle
        entry = _Entry(client, wake, drop)
        self._entries[handle] = entry
        for topic in subscription.topics:
            route = subscription.route(topic)
            if route is not None:
                routes = self._routes.setdefault(topic, _Routes())
                routes.table(*route)[handle] = entry
        resync = False
        missed: list[Event] = []
        if resume_after is not None:
            replayed = [t for t in REPLAYED_TOPICS if t in subscription.topics]
            found = self.ring.since(resume_after, replayed)
            if found is None:
                resync = True
            else:
                missed = [e for e in found if subscription.wants(e)]
        if "summaries" in subscription.topics:
            for event in self._summaries.values():
                if subscription.wants(event):
                    client.offer(event)
        for event in missed:
            client.offer(event)
        return Subscribed(handle, client, resync)

    def unsubscribe(self, handle: int, *, dropped: bool = False) -> None:
        """Forget a client (its stream ended); ``dropped``: the server closed it."""
        entry = self._entries.pop(handle, None)
        if entry is None:
            return
        client = entry.client
        self._gone_conflated += client.conflated
        self._gone_resyncs += client.resyncs
        if dropped:
            self.dropped_clients += 1
            client.dropped = True
        subscription = client.subscription
        for topic in subscription.topics:
            route = subscription.route(topic)
            routes = self._routes.get(topic)
            if route is not None and routes is not None:
                routes.remove(handle, *route)

    def publish(
        self, name: str, data: object, key: str | None = None, *, host: str | None = None
    ) -> Event:
        """Number, keep and deliver one event (``key``: the machine it is about; ``host``:
        that machine's host key, for host-scoped clients)."""
        topic = TOPIC_OF_EVENT.get(name)
        if topic in REPLAYED_TOPICS:
            event = self.ring.append(name, data, key, host)
        else:
            event = Event(None, name, data, key, host)
            if name == "summary" and key is not None:
                self._summaries[key] = event
        self.published += 1
        for listener in self._listeners:
            listener(event)
        routes = self._routes.get(topic or "")
        if routes is None:
            return event
        if routes.all:
            _deliver(routes.all, event)
        if host is not None and routes.by_host:
            table = routes.by_host.get(host)
            if table:
                _deliver(table, event)
        if key is not None:
            if routes.by_key:
                table = routes.by_key.get(key)
                if table:
                    _deliver(table, event)
            for pattern, table in routes.by_glob.items():
                if self._matches(pattern, key):
                    _deliver(table, event)
        return event

    def publish_each(
        self,
        name: str,
        keys: Sequence[str],
        make: Callable[[int], object],
        *,
        host: str | None = None,
    ) -> None:
        """One event of ``name`` per machine of ``keys`` (``make(i)``: the data of the
        i-th), all of the machines of ``host``: ``publish`` each when a client or a
        listener takes any of them; else they are numbered and kept for replay as one
        ``sse.Run``, their data made only if a resume replays them. (A fleet's ``sample``
        events, one per machine per second, mostly go to nobody: the fleet view takes
        summaries, a host view one host's samples.)"""
        topic = TOPIC_OF_EVENT.get(name)
        if topic in REPLAYED_TOPICS and not self._listeners and not self._taken(topic, host, keys):
            self.ring.append_run(name, keys, make, host)
            self.published += len(keys)
            return
        for index, key in enumerate(keys):
            self.publish(name, make(index), key, host=host)

    def _taken(self, topic: str, host: str | None, keys: Sequence[str]) -> bool:
        """Whether any client takes an event of ``topic`` about one of ``keys`` (of
        ``host``)."""
        routes = self._routes.get(topic)
        if routes is None:
            return False
        if routes.all or (host is not None and routes.by_host.get(host)):
            return True
        if routes.by_key and any(routes.by_key.get(key) for key in keys):
            return True
        return any(
            table and self._matches(pattern, key)
            for pattern, table in routes.by_glob.items()
            for key in keys
        )

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` with every published event, as it is published (on the
        IOLoop; it must not block). For in-process subscribers that need every ``sample``
        and every ``alert`` unconflated; returns the function that stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _matches(self, pattern: str, key: str) -> bool:
        cached = self._globs.get((pattern, key))
        if cached is None:
            if len(self._globs) >= GLOB_CACHE_LIMIT:
                self._globs.clear()
            cached = self._globs[(pattern, key)] = fnmatch.fnmatchcase(key, pattern)
        return cached

    def summaries(self) -> list[Event]:
        """The newest ``summary`` event of every host."""
        return list(self._summaries.values())

    def forget_summaries(self, keys: Iterable[str]) -> None:
        """Deleted hosts: new clients no longer start from their summaries."""
        for key in keys:
            self._summaries.pop(key, None)

    def close_all(self) -> None:
        """Close every stream (graceful shutdown): each client's drop callback runs once."""
        for handle, entry in list(self._entries.items()):
            self.unsubscribe(handle)
            entry.drop()


def _deliver(table: dict[int, _Entry], event: Event) -> None:
    for entry in table.values():  # wake only sets a flag: the table cannot change here
        if entry.client.offer(event):
            entry.wake()
