"""The event bus: where the server's live events go on their way to browsers.

Everything the server announces (``sample``, ``machine`` and ``alert`` events) is published
through an :class:`EventBus`. In one process the bus is the SSE hub itself
(:class:`srvmon_server.hub.Hub` satisfies the protocol): ``publish`` frames the event once,
keeps it for replay and offers it to each subscribed client. A bus shared by several
server replicas (e.g. a Kafka events topic) implements the same ``publish`` by sending the
event to every replica, each of which hands it to its own hub; nothing that publishes
changes.
"""

from __future__ import annotations

from typing import Protocol


class EventBus(Protocol):
    def publish(self, name: str, data: object, key: str | None = None) -> object:
        """Deliver one event (``data`` is JSON-ready; ``key`` the machine it is about)."""
