"""Server-Sent Events, pure: framing, events, the replay ring, subscriptions (views) and
the conflating client queue.

No sockets and no clock here; :mod:`srvmon_server.hub` does the fan-out on the IOLoop.

Two kinds of events travel to clients:

- *state* events (``sample``, ``machine``, ``summary``): only the newest per machine
  matters. A client that cannot keep up gets the newest one per machine (conflation);
  its queue holds at most one per machine, however fast they are published.
- *ordered* events (``alert``): every one is delivered, in order. A client with more than
  ``max_queue`` of them waiting gets one ``resync`` instead (reload over REST), never a
  queue that grows without bound.
"""

from __future__ import annotations

import fnmatch
import json
import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence

from attrs import frozen

log = logging.getLogger(__name__)
RETRY_MS = 2000
TOPIC_OF_EVENT: dict[str, str | None] = {
    "hello": None,
    "sample": "metrics",
    "machine": "metrics",
    "summary": "summaries",
    "alert": "alerts",
    "machine_deleted": "alerts",
    "resync": None,
}
"""The topic that filters each event; ``None`` means every client gets it."""
TOPICS = frozenset({"metrics", "alerts", "summaries"})
DEFAULT_TOPICS = frozenset({"metrics", "alerts"})
"""What a subscription without ``topics`` or ``view`` gets (as before summaries existed)."""
CONFLATED_EVENTS = frozenset({"sample", "machine", "summary"})
"""State events: a slow client gets the newest per machine, not every one."""
REPLAYED_TOPICS = ("metrics", "alerts")
"""Topics kept in the ring for ``Last-Event-ID`` resume. Summaries are state, not
history: they carry no id and every (re)connect gets the current one per host instead."""


def _single_line(text: str, what: str) -> str:
    if "\n" in text or "\r" in text:
        raise ValueError(f"SSE {what} must be a single line")
    return text


_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
"""Built once: ``json.dumps`` with non-default options builds an encoder per call."""


def format_event(event_id: int | None, event: str, data: object) -> bytes:
    """One SSE frame: ``id:``, ``event:``, one ``data:`` line of compact JSON, blank line."""
    head = "" if event_id is None else f"id: {event_id}\n"
    payload = _COMPACT_JSON.encode(data)  # compact JSON has no line breaks
    return f"{head}event: {_single_line(event, 'event name')}\ndata: {payload}\n\n".encode()


def format_comment(text: str) -> bytes:
    """A comment frame (ignored by EventSource), used as heartbeat."""
    return f": {_single_line(text, 'comment')}\n\n".encode()


def format_retry(milliseconds: int = RETRY_MS) -> bytes:
    """The reconnection delay the browser should use."""
    return f"retry: {int(milliseconds)}\n\n".encode()


class Event:
    """A published event. Its frame is encoded once, the first time any client (or a
    replay) needs it, and shared by every client; an event that nobody takes before a
    newer one replaces it is never encoded at all. ``data`` must not change after it is
    published (it is let go once framed)."""

    __slots__ = ("_frame", "conflation_key", "data", "host", "id", "key", "name", "topic")

    def __init__(
        self,
        event_id: int | None,
        name: str,
        data: object,
        key: str | None = None,
        host: str | None = None,
    ) -> None:
        self.id = event_id
        self.name = _single_line(name, "event name")
        self.data = data
        self.key = key
        """The machine key the event is about, for the ``machines`` glob filter."""
        self.host = host
        """The host key of that machine, for host-scoped subscriptions (the host view)."""
        self.topic = TOPIC_OF_EVENT.get(name)
        self.conflation_key: tuple[str, str] | None = (
            (name, key) if key is not None and name in CONFLATED_EVENTS else None
        )
        self._frame: bytes | None = None

    @property
    def frame(self) -> bytes:
        frame = self._frame
        if frame is None:
            frame = self._frame = format_event(self.id, self.name, self.data)
            self.data = None
        return frame

    def __repr__(self) -> str:
        return f"Event(id={self.id!r}, name={self.name!r}, key={self.key!r})"


class Run:
    """Events of one topic numbered ``first_id`` on, published together while no client
    and no listener took them: kept as their keys and a function that makes the data of
    the i-th, and made into events only when a resume replays them. A fleet's ``sample``
    events cost one run per batch instead of an event each when nobody watches the host.
    """

    __slots__ = ("first_id", "host", "keys", "make", "name", "start", "topic")

    def __init__(
        self,
        first_id: int,
        name: str,
        keys: Sequence[str],
        make: Callable[[int], object],
        host: str | None,
    ) -> None:
        self.first_id = first_id
        self.name = name
        self.keys = keys
        self.make = make
        self.host = host
        self.topic = TOPIC_OF_EVENT.get(name)
        self.start = 0
        """How many of its first events were evicted from the ring."""

    @property
    def size(self) -> int:
        return len(self.keys) - self.start

    @property
    def last_id(self) -> int:
        return self.first_id + len(self.keys) - 1

    def events(self, after: int) -> list[Event]:
        """Its events kept in the ring with an id above ``after``."""
        first = max(self.start, after - self.first_id + 1)
        return [
            Event(self.first_id + i, self.name, self.make(i), self.keys[i], self.host)
            for i in range(first, len(self.keys))
        ]


class RingBuffer:
    """The last ``capacity`` events of each replayed topic, numbered by one monotonic id.

    Topics are kept apart so that a flood of ``sample`` events does not push the alerts
    a browser needs for resume out of the ring. A ``Run`` counts as the events it holds.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("ring buffer capacity must be >= 1")
        self.capacity = capacity
        self._events: dict[str | None, deque[Event | Run]] = {}
        self._sizes: dict[str | None, int] = {}
        self._evicted_through: dict[str | None, int] = {}
        self._next_id = 1

    @property
    def last_id(self) -> int:
        return self._next_id - 1

    def append(
        self, name: str, data: object, key: str | None = None, host: str | None = None
    ) -> Event:
        """Number the event and keep it (its frame is encoded when first needed)."""
        event = Event(self._next_id, name, data, key, host)
        self._next_id += 1
        self._keep(event.topic, event, 1)
        return event

    def append_run(
        self,
        name: str,
        keys: Sequence[str],
        make: Callable[[int], object],
        host: str | None = None,
    ) -> Run:
        """Number ``len(keys)`` events of ``name`` at once and keep them as one ``Run``
        (``make(i)``: the data of the i-th, called only if it is replayed)."""
        run = Run(self._next_id, name, keys, make, host)
        self._next_id += len(keys)
        self._keep(run.topic, run, len(keys))
        return run

    def _keep(self, topic: str | None, entry: Event | Run, events: int) -> None:
        """Keep ``entry`` (``events`` events) last in its topic, evicting past capacity."""
        kept = self._events.get(topic)
        if kept is None:
            kept = self._events[topic] = deque()
            self._sizes[topic] = 0
        kept.append(entry)
        size = self._sizes[topic] + events
        self._sizes[topic] = size if size <= self.capacity else self._evict(topic, kept, size)

    def _evict(self, topic: str | None, kept: deque[Event | Run], size: int) -> int:
        """Drop the oldest events of ``topic`` until ``capacity`` are left; the new size."""
        while size > self.capacity:
            oldest = kept[0]
            if isinstance(oldest, Event):
                kept.popleft()
                size -= 1
                self._evicted_through[topic] = oldest.id or 0
                continue
            drop = min(oldest.size, size - self.capacity)
            oldest.start += drop
            size -= drop
            self._evicted_through[topic] = oldest.first_id + oldest.start - 1
            if not oldest.size:
                kept.popleft()
        return size

    def since(self, last_id: int, topics: Iterable[str | None] | None = None) -> list[Event] | None:
        """Events of ``topics`` (default: all) after ``last_id``, in id order; ``None`` when
        one of those topics already evicted some of them, or ``last_id`` is from the future
        (the client must resync)."""
        if last_id > self.last_id:
            return None
        wanted = list(self._events) if topics is None else [*topics, None]
        found: list[Event] = []
        for topic in wanted:
            if self._evicted_through.get(topic, 0) > last_id:
                return None
            for entry in self._events.get(topic, ()):
                if isinstance(entry, Run):
                    if entry.last_id > last_id:
                        found.extend(entry.events(last_id))
                elif entry.id is not None and entry.id > last_id:
                    found.append(entry)
        found.sort(key=lambda e: e.id or 0)
        return found


@frozen(kw_only=True)
class Subscription:
    """What one client asked for: topics, a machine-key glob, and optionally one host.

    ``host`` scopes the ``metrics`` and ``summaries`` topics to the machines of one host
    (the host itself and its containers); alerts still come for every machine.
    """

    topics: frozenset[str] = DEFAULT_TOPICS
    machines: str = "*"
    host: str | None = None
    view: str | None = None
    """The view that asked for it (``fleet``, ``host``, ``alerts``), or None for API use."""
    conflate: bool = True
    """False: every state event is queued too, in order (in-process subscribers that must
    see every sample); more than ``max_queue`` waiting then becomes one ``resync``."""

    def route(self, topic: str) -> tuple[str, str | None] | None:
        """How this client is found for an event of ``topic``: ``("all", None)``,
        ``("host", host key)``, ``("key", machine key)``, ``("glob", pattern)``, or
        ``None`` when it does not take the topic at all."""
        if topic not in self.topics:
            return None
        if self.host is not None and topic != "alerts":
            return ("host", self.host)
        if self.machines == "*":
            return ("all", None)
        if not any(c in self.machines for c in "*?["):
            return ("key", self.machines)
        return ("glob", self.machines)

    def wants(self, event: Event) -> bool:
        topic = event.topic
        if topic is None:
            return True
        route = self.route(topic)
        if route is None:
            return False
        kind, value = route
        if kind == "all" or event.key is None:
            return True
        if kind == "host":
            return event.host == value
        if kind == "key":
            return event.key == value
        return fnmatch.fnmatchcase(event.key, value or "*")


VIEWS = ("fleet", "host", "alerts")


def view_subscription(view: str, host: str | None = None) -> Subscription:
    """The subscription of a dashboard view. Raises ValueError naming the problem.

    - ``fleet``: one ``summary`` per host (at most one per host per second) and alerts;
    - ``host``: that host's ``sample`` and ``machine`` events (the host and each of its
      containers), its ``summary``, and alerts;
    - ``alerts``: alerts only.
    """
    if view == "fleet":
        return Subscription(topics=frozenset({"summaries", "alerts"}), view=view)
    if view == "host":
        if not host:
            raise ValueError("view=host needs host=<host key>")
        return Subscription(topics=TOPICS, host=host, view=view)
    if view == "alerts":
        return Subscription(topics=frozenset({"alerts"}), view=view)
    raise ValueError(f"unknown view {view!r}; known: {', '.join(VIEWS)}")


def parse_topics(raw: str | None) -> frozenset[str]:
    """``metrics,alerts`` → frozenset; raises ValueError naming an unknown topic."""
    if raw is None or raw.strip() == "":
        return DEFAULT_TOPICS
    topics = frozenset(t.strip() for t in raw.split(",") if t.strip())
    unknown = sorted(topics - TOPICS)
    if unknown:
        raise ValueError(f"unknown topic {unknown[0]!r}; known: {', '.join(sorted(TOPICS))}")
    return topics


_RESYNC_SLOT = ("resync", "")
"""The queue slot of a client's pending ``resync`` (at most one waits)."""


class Client:
    """One connected stream and what waits for it, oldest first.

    State events wait in one slot per (event, machine): a newer one takes the place of
    the older and moves to the back, so the queue never holds two of the same machine.
    Ordered events (alerts) each take their own slot; when more than ``max_queue`` of
    them wait, they are replaced by one ``resync`` event (the client reloads over REST).
    Nothing here grows with time or with the publish rate: the queue is bounded by the
    machines the client watches plus ``max_queue``.
    """

    def __init__(self, subscription: Subscription, max_queue: int) -> None:
        self.subscription = subscription
        self.max_queue = max_queue
        self.pending: OrderedDict[tuple[str, object], Event] = OrderedDict()
        self.ordered = 0
        """Ordered events waiting."""
        self.conflated = 0
        """State events replaced by a newer one before they were sent."""
        self.resyncs = 0
        """Times the ordered events overflowed and became one ``resync``."""
        self.dropped = False

    def offer(self, event: Event) -> bool:
        """Queue one event; True when the client was idle before (wake its writer)."""
        if self.dropped:
            return False
        idle = not self.pending
        slot = event.conflation_key if self.subscription.conflate else None
        if slot is not None:
            if slot in self.pending:
                self.conflated += 1
                self.pending.move_to_end(slot)
            self.pending[slot] = event
            return idle
        if self.ordered >= self.max_queue:
            self._overflow(event)
            return idle
        self.pending[("", event.id if event.id is not None else id(event))] = event
        self.ordered += 1
        return idle

    def _overflow(self, event: Event) -> None:
        """Too many ordered events wait: forget them, queue one ``resync`` carrying the
        newest one's id (a reconnect resumes after it; the REST reload covers the rest)."""
        for slot in [s for s in self.pending if s[0] == ""]:
            del self.pending[slot]
        self.ordered = 0
        self.resyncs += 1
        self.pending.pop(_RESYNC_SLOT, None)
        self.pending[_RESYNC_SLOT] = Event(event.id, "resync", {"reason": "too many events"})

    def has_pending(self) -> bool:
        return bool(self.pending)

    def take(self, max_bytes: int) -> bytes:
        """Frames of the oldest waiting events, at least one and about ``max_bytes``: what
        is not taken yet can still be replaced by newer values."""
        frames: list[bytes] = []
        size = 0
        pending = self.pending
        while pending and size < max_bytes:
            slot, event = pending.popitem(last=False)
            if slot[0] == "":
                self.ordered -= 1
            try:
                frame = event.frame
            except (TypeError, ValueError):  # data JSON cannot encode: a bug, not the client's
                log.exception("SSE event %r cannot be encoded; skipped", event)
                continue
            frames.append(frame)
            size += len(frame)
        return b"".join(frames)

    def take_all(self) -> bytes:
        return self.take(1 << 62)
