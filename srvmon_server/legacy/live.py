"""The legacy routes' live side: what they learn from the server, and their bounded fan-outs.

:class:`LegacyLive` is a listener of the server's live publisher
(``srvmon_server.live.Live.listen``), called on the IOLoop with typed values:

* every stored batch's view: it remembers each container's Docker id (the original named
  containers by Docker id), and, while WebSocket clients are connected, sends the batch to
  them as the original's compact document;
* every alert event (``AlertEvent``): mapped onto the original's five messages and sent to
  the legacy SSE clients.

Host names come from the events themselves (``AlertEvent.hostname``), for older stored
events from the server's in-memory latest view (``ServerContext.latest``).

A :class:`Fanout` gives each client a bounded queue (``client_queue_size`` frames). A client
whose queue is full is dropped: its handler closes the connection. Nothing is buffered
without bound for a client that does not read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from srvmon_core.alert_state import AlertEvent
from srvmon_core.rules import Rule
from srvmon_core.schema import ContainerSample
from srvmon_core.view import BatchView
from srvmon_server.legacy.compact import compact_text
from srvmon_server.legacy.config import LegacyConfig
from srvmon_server.legacy.messages import Machine, alert_message, message_type
from srvmon_server.sse import Client, Subscription

if TYPE_CHECKING:
    from srvmon_server.context import ServerContext

Wake = Callable[[], None]
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


class Fanout:
    """Frames to many clients, each with a bounded queue; a full queue drops the client."""

    def __init__(self, queue_size: int) -> None:
        self.queue_size = queue_size
        self._clients: dict[int, tuple[Client, Wake, Wake]] = {}
        self._next = 0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._clients)

    def subscribe(self, wake: Wake, drop: Wake) -> tuple[int, Client]:
        """``wake`` runs when frames are queued; ``drop`` once when the queue overflowed."""
        self._next += 1
        client = Client(Subscription(), self.queue_size)
        self._clients[self._next] = (client, wake, drop)
        return self._next, client

    def unsubscribe(self, handle: int) -> None:
        self._clients.pop(handle, None)

    def publish(self, frame: bytes) -> None:
        for handle, (client, wake, drop) in list(self._clients.items()):
            if client.offer(frame):
                wake()
                continue
            self.dropped += 1
            self.unsubscribe(handle)
            drop()

    def close_all(self) -> None:
        for handle, (_, _, drop) in list(self._clients.items()):
            self.unsubscribe(handle)
            drop()


def sse_frame(payload: dict[str, Any]) -> bytes:
    """An unnamed SSE event (the browser's ``message``): one ``data:`` line, blank line."""
    return f"data: {_COMPACT.encode(payload)}\n\n".encode()


class LegacyLive:
    """Per server process: the Docker ids of containers and the two fan-outs. A
    ``srvmon_server.live.Listener``."""

    def __init__(self, ctx: ServerContext, config: LegacyConfig) -> None:
        self.ctx = ctx
        self.config = config
        self.container_ids: dict[str, str] = {}
        """Machine key → the Docker id of the container's newest sample."""
        queue = ctx.config.client_queue_size
        self.alerts = Fanout(queue)
        self.documents = Fanout(queue)

    def install(self) -> None:
        """Start listening to the server's live publisher."""
        self.ctx.live.listen(self)

    # --- the Listener protocol (srvmon_server.live) ----------------------------------------

    def stored(self, view: BatchView) -> None:
        for container in view.containers:
            sample = container.sample
            if isinstance(sample, ContainerSample):
                self.container_ids[container.key] = sample.id
        if len(self.documents):
            self.documents.publish(compact_text(view.batch, self.config.tz).encode())

    def alert(self, event: AlertEvent) -> None:
        if event.silenced or not len(self.alerts):
            return
        message = self.message(event, self.rules())
        if message is not None:
            self.alerts.publish(sse_frame(message))

    def close(self) -> None:
        self.alerts.close_all()
        self.documents.close_all()

    # --- mapping -------------------------------------------------------------------------

    def rules(self) -> Sequence[Rule]:
        """The rules the engine applies now."""
        return self.ctx.alerting.rules

    def host_name(self, event: AlertEvent) -> str:
        """The name of the event's host: the event's own, else (an event stored before
        events carried it) the name the server knows now, else the host id."""
        return event.hostname or self.ctx.latest.hostname(event.host_id) or event.host_id

    def machine(self, event: AlertEvent) -> Machine:
        """The legacy id and host name of an event's machine."""
        host_name = self.host_name(event)
        if event.machine_kind == "container":
            key = event.machine_key
            return Machine(id=self.container_ids.get(key, key), host_name=host_name)
        return Machine(id=event.host_id, host_name=host_name)

    def message(self, event: AlertEvent, rules: Sequence[Rule]) -> dict[str, Any] | None:
        """The SSE payload of one srvmon alert event, or None when it has no legacy type."""
        rule = next((r for r in rules if r.id == event.rule_id), None)
        kind = message_type(event, rule)
        if kind is None:
            return None
        config = self.config
        return alert_message(event, kind, self.machine(event), config.tz, config.interval_seconds)

    def key_of(self, target: str) -> str:
        """A machine key for a legacy ``targetId``: a Docker id of a known container, else
        the id itself (a host id, or a srvmon machine key)."""
        for key, docker_id in self.container_ids.items():
            if target in (docker_id, docker_id[:12]):
                return key
        return target
