"""Deleted machines leave what a server process holds in memory.

One place for what ``DELETE /api/v1/machines/{key}`` drops in the process that deletes,
and what a server replica drops when another replica announces the deletion (the
``machine_deleted`` event on the events topic): the engine's state and live alerts,
presence, the latest view, the names, the fleet's host summaries and those the hub holds
for new clients, and the firing alerts held for the Alertmanagers (resolved there now).
"""

from __future__ import annotations

from collections.abc import Collection

from attrs import frozen

from srvmon_server.alerting import Alerting
from srvmon_server.dbthread import DbThread
from srvmon_server.hub import Hub
from srvmon_server.latest import LatestView
from srvmon_server.live import Live
from srvmon_server.names import MachineDirectory
from srvmon_server.presence import Presence


@frozen(kw_only=True)
class Forgetting:
    db: DbThread
    alerting: Alerting
    presence: Presence
    latest: LatestView
    names: MachineDirectory
    live: Live
    hub: Hub

    async def forget(self, keys: Collection[str]) -> None:
        """Forget these machines (their saved alert state too, on the DB thread). No alert
        event or webhook is sent for the alerts that go with them; the Alertmanagers get
        those this process held firing as resolved (``Notifier.forget``)."""
        gone = set(keys)
        await self.db.run(self.alerting.forget_machines, gone)
        self.presence.forget(gone)
        self.latest.forget(gone)
        self.names.forget(gone)
        self.hub.forget_summaries(self.live.forget(gone))
        self.live.send(self.live.notifier.forget(gone))
