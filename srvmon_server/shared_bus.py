"""The event bus of a server replica: its own hub at once, the other replicas through a
shared channel (a Kafka events topic, wired by the composition layer).

``publish`` hands each event to this replica's hub (its own browsers get it with no
detour) and queues it for the others; everything queued in one turn of the IOLoop leaves
as one message (or a few, under ``MAX_MESSAGE_BYTES``), so a batched ingest of hundreds
of machines is one message, not hundreds. ``announce`` queues a change of the stored
rules or silences the same way. The channel itself is a ``send(bytes)`` function given by
``connect``; until then events stay local.

The message (``encode_events`` / ``decode_events``) is UTF-8 JSON::

    {"v": 1, "origin": "<replica id>", "events": [[name, key, data], ...]}

``name`` is an SSE event name (``sample``, ``machine``, ``alert``) or one of
``CHANGE_EVENTS`` (``rules_changed``, ``silences_changed``, data null), which are never
shown to browsers. A replica skips messages of its own ``origin`` (it delivered them to
its hub already).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from typing import Any

from srvmon_core.errors import DecodeError
from srvmon_server import wirejson
from srvmon_server.hub import Hub
from srvmon_server.sse import Event

WIRE_VERSION = 1
MAX_MESSAGE_BYTES = 900_000
"""Under librdkafka's default ``message.max.bytes`` (1,000,000) with room for headers."""
CHANGE_EVENTS = frozenset({"rules_changed", "silences_changed"})

Item = tuple[str, str | None, Any]
"""(event name, machine key or None, JSON-ready data)."""

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode_events(origin: str, items: list[Item]) -> list[bytes]:
    """The messages carrying ``items`` in order, each under ``MAX_MESSAGE_BYTES`` (an item
    larger than that travels alone)."""
    head = f'{{"v":{WIRE_VERSION},"origin":{_ENCODER.encode(origin)},"events":['.encode()
    messages: list[bytes] = []
    parts: list[bytes] = []
    size = len(head) + 2
    for name, key, data in items:
        part = wirejson.dumps_utf8([name, key, data])
        if parts and size + len(part) + 1 > MAX_MESSAGE_BYTES:
            messages.append(head + b",".join(parts) + b"]}")
            parts, size = [], len(head) + 2
        parts.append(part)
        size += len(part) + 1
    if parts:
        messages.append(head + b",".join(parts) + b"]}")
    return messages


def decode_events(payload: bytes) -> tuple[str, list[Item]]:
    """(origin, items) of one message; raises ``DecodeError`` naming the bad field.

    Parsed by orjson; what it refuses (a non-finite number, an integer beyond 64 bits, or
    not JSON at all) by the standard library, which accepts or explains it."""
    data = wirejson.parse(payload)
    if data is wirejson.REFUSED:
        try:
            data = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            raise DecodeError(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("v") != WIRE_VERSION:
        raise DecodeError(f"expected an object with v = {WIRE_VERSION}", "$.v")
    origin, events = data.get("origin"), data.get("events")
    if not isinstance(origin, str):
        raise DecodeError("expected a string", "$.origin")
    if not isinstance(events, list):
        raise DecodeError("expected a list", "$.events")
    items: list[Item] = []
    for index, event in enumerate(events):
        if (
            not isinstance(event, list)
            or len(event) != 3
            or not isinstance(event[0], str)
            or not (event[1] is None or isinstance(event[1], str))
        ):
            raise DecodeError("expected [name, key, data]", f"$.events[{index}]")
        items.append((event[0], event[1], event[2]))
    return origin, items


class SharedBus:
    """An ``EventBus``: the local hub, plus every other replica once connected."""

    def __init__(self, hub: Hub, origin: str) -> None:
        self.hub = hub
        self.origin = origin
        self._send: Callable[[bytes], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outbox: list[Item] = []
        self.sent_messages = 0
        self.sent_events = 0

    def connect(self, send: Callable[[bytes], None], loop: asyncio.AbstractEventLoop) -> None:
        """From now on, events also go out through ``send`` (called on ``loop``)."""
        self._send = send
        self._loop = loop

    def publish(
        self, name: str, data: object, key: str | None = None, *, host: str | None = None
    ) -> Event:
        event = self.hub.publish(name, data, key, host=host)
        self._queue((name, key, data))
        return event

    def publish_each(
        self,
        name: str,
        keys: Sequence[str],
        make: Callable[[int], object],
        *,
        host: str | None = None,
    ) -> None:
        """Every event goes to the other replicas, so each is made and published; until
        connected, the hub keeps what nobody takes as one run (``Hub.publish_each``)."""
        if self._send is None or self._loop is None:
            self.hub.publish_each(name, keys, make, host=host)
            return
        for index, key in enumerate(keys):
            self.publish(name, make(index), key, host=host)

    def announce(self, change: str) -> None:
        """Tell the other replicas that the stored rules or silences changed."""
        if change not in CHANGE_EVENTS:
            raise ValueError(f"unknown change {change!r}")
        self._queue((change, None, None))

    def _queue(self, item: Item) -> None:
        if self._send is None or self._loop is None:
            return
        if not self._outbox:
            self._loop.call_soon(self.flush)
        self._outbox.append(item)

    def flush(self) -> None:
        """Send what is queued (called once per IOLoop turn that queued something)."""
        items, self._outbox = self._outbox, []
        if not items or self._send is None:
            return
        for message in encode_events(self.origin, items):
            self._send(message)
            self.sent_messages += 1
        self.sent_events += len(items)
