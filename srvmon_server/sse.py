"""Server-Sent Events, pure: framing, the replay ring buffer, bounded client queues.

No sockets and no clock here; :mod:`srvmon_server.hub` does the fan-out on the IOLoop.
"""

from __future__ import annotations

import fnmatch
import json
from collections import OrderedDict, deque
from collections.abc import Iterable

from attrs import define, field, frozen

RETRY_MS = 2000
TOPIC_OF_EVENT = {
    "hello": None,
    "sample": "metrics",
    "machine": "metrics",
    "alert": "alerts",
    "resync": None,
}
"""The topic that filters each event; ``None`` means every client gets it."""
TOPICS = frozenset({"metrics", "alerts"})


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
    """A published event with its id, kept in the ring buffer.

    Framed once, the first time a client or a replay needs its bytes: an event nobody is
    subscribed to (no dashboard open) costs no JSON encoding. ``data`` must not change
    after it is published.
    """

    __slots__ = ("_data", "_frame", "id", "key", "name")

    def __init__(self, id: int, name: str, key: str | None, data: object) -> None:
        self.id = id
        self.name = name
        self.key = key
        """The machine key the event is about, for the ``machines`` glob filter."""
        self._data = data
        self._frame: bytes | None = None

    @property
    def frame(self) -> bytes:
        """The SSE frame (``id:``, ``event:``, ``data:``), encoded on first use."""
        frame = self._frame
        if frame is None:
            frame = self._frame = format_event(self.id, self.name, self._data)
            self._data = None
        return frame


class RingBuffer:
    """The last ``capacity`` events, keyed by their monotonic id."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("ring buffer capacity must be >= 1")
        self._events: deque[Event] = deque(maxlen=capacity)
        self._next_id = 1

    @property
    def last_id(self) -> int:
        return self._next_id - 1

    def append(self, name: str, data: object, key: str | None = None) -> Event:
        """Number the event and keep it (framed when first needed)."""
        _single_line(name, "event name")
        event = Event(self._next_id, name, key, data)
        self._next_id += 1
        self._events.append(event)
        return event

    def since(self, last_id: int) -> list[Event] | None:
        """Events after ``last_id``; ``None`` when some were already evicted (resync)."""
        if last_id >= self.last_id:
            return [] if last_id == self.last_id else None
        oldest = self._events[0].id if self._events else self._next_id
        if last_id + 1 < oldest:
            return None
        return [e for e in self._events if e.id > last_id]


@frozen(kw_only=True)
class Subscription:
    """What one client asked for: topics and a machine-key glob."""

    topics: frozenset[str] = TOPICS
    machines: str = "*"

    def wants(self, event: Event) -> bool:
        topic = TOPIC_OF_EVENT.get(event.name)
        if topic is not None and topic not in self.topics:
            return False
        if event.key is None or self.machines == "*":  # "*" (the default) matches any key
            return True
        return fnmatch.fnmatchcase(event.key, self.machines)


def parse_topics(raw: str | None) -> frozenset[str]:
    """``metrics,alerts`` → frozenset; raises ValueError naming an unknown topic."""
    if raw is None or raw.strip() == "":
        return TOPICS
    topics = frozenset(t.strip() for t in raw.split(",") if t.strip())
    unknown = sorted(topics - TOPICS)
    if unknown:
        raise ValueError(f"unknown topic {unknown[0]!r}; known: {', '.join(sorted(TOPICS))}")
    return topics


@define
class Client:
    """One connected stream with a bounded queue of frames.

    When the queue is full the client is marked dropped and stops accepting frames: a slow
    reader never makes the server grow memory.
    """

    subscription: Subscription
    max_queue: int
    queue: deque[bytes] = field(factory=deque)
    dropped: bool = False

    def offer(self, frame: bytes) -> bool:
        """Queue one frame; False (and dropped) when the queue was already full."""
        if self.dropped:
            return False
        if len(self.queue) >= self.max_queue:
            self.dropped = True
            self.queue.clear()
            return False
        self.queue.append(frame)
        return True

    def take_all(self) -> bytes:
        frames = b"".join(self.queue)
        self.queue.clear()
        return frames


class ClientRegistry:
    """Connected clients in connection order."""

    def __init__(self) -> None:
        self._clients: OrderedDict[int, Client] = OrderedDict()
        self._next = 0

    def add(self, client: Client) -> int:
        self._next += 1
        self._clients[self._next] = client
        return self._next

    def remove(self, handle: int) -> None:
        self._clients.pop(handle, None)

    def __len__(self) -> int:
        return len(self._clients)

    def items(self) -> Iterable[tuple[int, Client]]:
        return list(self._clients.items())
