"""The legacy routes' live side: what they learn from the hub, and their bounded fan-outs.

:class:`LegacyLive` listens to the server's hub (on the IOLoop):

* every stored batch: it remembers each container's Docker id and each host's name (the
  original named containers by Docker id), and, while WebSocket clients are connected,
  sends the batch to them as the original's compact document;
* every ``alert`` event: mapped onto the original's five messages and sent to the legacy
  SSE clients.

A :class:`Fanout` gives each client a bounded queue (``client_queue_size`` frames). A client
whose queue is full is dropped: its handler closes the connection. Nothing is buffered
without bound for a client that does not read.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from srvmon_core.rules import Rule
from srvmon_core.schema import Batch, container_key
from srvmon_server.legacy.compact import compact_text
from srvmon_server.legacy.config import LegacyConfig
from srvmon_server.legacy.messages import Machine, alert_message, message_type
from srvmon_server.sse import Client, Subscription

if TYPE_CHECKING:
    from srvmon_server.context import ServerContext

log = logging.getLogger(__name__)
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
    """Per server process: the Docker ids of containers, host names, and the two fan-outs."""

    def __init__(self, ctx: ServerContext, config: LegacyConfig) -> None:
        self.ctx = ctx
        self.config = config
        self.container_ids: dict[str, str] = {}
        """Machine key → the Docker id of the container's newest sample."""
        self.hostnames: dict[str, str] = {}
        """Host id → host name, from the newest batch."""
        queue = ctx.config.client_queue_size
        self.alerts = Fanout(queue)
        self.documents = Fanout(queue)

    def install(self) -> None:
        """Start listening to the server's hub."""
        self.ctx.hub.listen(self.on_event)
        self.ctx.hub.listen_batches(self.on_batch)
        self.ctx.hub.on_close(self.close)

    def close(self) -> None:
        self.alerts.close_all()
        self.documents.close_all()

    # --- what the hub tells ------------------------------------------------------------

    def on_batch(self, batch: Batch) -> None:
        self.hostnames[batch.host_id] = batch.hostname
        for container in batch.containers:
            self.container_ids[container_key(batch.host_id, container.name)] = container.id
        if len(self.documents):
            self.documents.publish(compact_text(batch, self.config.tz).encode())

    def on_event(self, name: str, data: object) -> None:
        if name != "alert" or not len(self.alerts) or not isinstance(data, dict):
            return
        if data.get("silenced"):
            return
        try:
            message = self.message(data, self.rules())
        except (KeyError, TypeError, ValueError):  # an event shape this code does not know
            log.exception("alert event not mapped for the legacy stream: %r", data)
            return
        if message is not None:
            self.alerts.publish(sse_frame(message))

    # --- mapping -------------------------------------------------------------------------

    def rules(self) -> Sequence[Rule]:
        alerting = self.ctx.alerting
        return list(alerting.rules) if alerting is not None else []

    def machine(self, event: dict[str, Any], hostnames: dict[str, str] | None = None) -> Machine:
        """The legacy id and host name of an event's machine."""
        host_id = str(event["host_id"])
        names = hostnames or self.hostnames
        host_name = names.get(host_id) or self.hostnames.get(host_id) or host_id
        if event.get("machine_kind") == "container":
            key = str(event["machine_key"])
            return Machine(id=self.container_ids.get(key, key), host_name=host_name)
        return Machine(id=host_id, host_name=host_name)

    def message(self, event: dict[str, Any], rules: Sequence[Rule]) -> dict[str, Any] | None:
        """The SSE payload of one srvmon alert event, or None when it has no legacy type."""
        rule = next((r for r in rules if r.id == event.get("rule_id")), None)
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
