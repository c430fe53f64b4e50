"""Deleted machines leave what a server process holds in memory.

One place for what ``DELETE /api/v1/machines/{key}`` drops in the process that deletes,
and what a server replica drops when another replica announces the deletion (the
``machine_deleted`` event on the events topic): the engine's state and live alerts,
presence, the latest view, the names, the fleet's host summaries and those the hub holds
for new clients, and the firing alerts held for the Alertmanagers (resolved there now).
"""

from __future__ import annotations

from collections.abc import Collection

from srvmon_server.alerting import Alerting
from srvmon_server.dbthread import DbThread
from srvmon_server.hub import Hub
from srvmon_server.latest import LatestView
from srvmon_server.live import Live
from srvmon_server.names import MachineDirectory
from srvmon_server.presence import Presence


class Forgetting:
    def __init__(
        self,
        *,
        db: DbThread,
        alerting: Alerting,
        presence: Presence,
        latest: LatestView,
        names: MachineDirectory,
        live: Live,
        hub: Hub,
    ) -> None:
        self._db = db
        self._alerting = alerting
        self._presence = presence
        self._latest = latest
        self._names = names
        self._live = live
        self._hub = hub

    async def forget(self, keys: Collection[str]) -> None:
        """Forget these machines (their saved alert state too, on the DB thread). No alert
        event or webhook is sent for the alerts that go with them; the Alertmanagers get
        those this process held firing as resolved (``Notifier.forget``)."""
        gone = set(keys)
        await self._db.run(self._alerting.forget_machines, gone)
        self._presence.forget(gone)
        self._latest.forget(gone)
        self._names.forget(gone)
        self._hub.forget_summaries(self._live.forget(gone))
        self._live.send(self._live.notifier.forget(gone))
