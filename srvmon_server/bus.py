"""The event bus: where the server's live events go on their way to browsers.

Everything the server announces (``sample``, ``machine``, ``summary`` and ``alert`` events)
is published through an :class:`EventBus`. In one process the bus is the SSE hub itself
(:class:`srvmon_server.hub.Hub` satisfies the protocol): ``publish`` keeps the event for
replay and offers it to each subscribed client, whose writer encodes it once for all. A
bus shared by several server replicas (e.g. a Kafka events topic) implements the same
``publish`` by sending the event to every replica, each of which hands it to its own hub;
nothing that publishes changes. (Each replica's hub then also keeps the newest
``summary`` per host for its new fleet clients; ``GET /api/v1/machines`` reads the
process's own ``Fleet``, which a replica would feed from the bus's ``summary`` events.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol


class EventBus(Protocol):
    def publish(
        self, name: str, data: object, key: str | None = None, *, host: str | None = None
    ) -> object:
        """Deliver one event (``data`` is JSON-ready; ``key`` the machine it is about,
        ``host`` that machine's host key, which the host view filters on)."""

    def publish_each(
        self,
        name: str,
        keys: Sequence[str],
        make: Callable[[int], object],
        *,
        host: str | None = None,
    ) -> None:
        """One event of ``name`` per machine of ``keys``, all of ``host`` (``make(i)``: the
        data of the i-th, JSON-ready), delivered as ``publish`` would each. A bus may
        leave the data unmade when nobody takes the events (the hub keeps them for
        replay, see ``Hub.publish_each``)."""
