"""The name resolver: which machines a name, key or glob picks, over the inventory.

One place for every handler that takes a machine from a person (``/api/v1/resolve``,
``/api/v1/machines/{name}/…``, the history filter): a :class:`MachineDirectory` holds the
:class:`srvmon_core.names.MachineName` of every machine, loaded from the inventory at start
and kept current by ingest, and answers with the rules of :mod:`srvmon_core.names`, the
same ones rule selectors and silences use.

Runs on the IOLoop only (loaded before it serves; ``seen`` is called by ingest on the
IOLoop), so no lock is needed. Raises domain errors (:class:`UnknownMachine`,
:class:`AmbiguousMachine`); handlers map them to HTTP.
"""

from __future__ import annotations

from collections.abc import Iterable

from srvmon_core.errors import SrvmonError
from srvmon_core.names import MachineName, Resolution, is_glob, resolve
from srvmon_core.view import BatchView
from srvmon_server.storage import MachineRecord

MAX_FILTER_MACHINES = 10_000
"""Most machines one history filter may pick (unless it picks every machine)."""


class UnknownMachine(SrvmonError):
    """No machine has this name or key."""


class AmbiguousMachine(SrvmonError):
    """One machine was needed, and several share the name."""

    def __init__(self, resolution: Resolution) -> None:
        keys = ", ".join(resolution.keys)
        super().__init__(
            f"{len(resolution.machines)} machines are named {resolution.pattern!r} "
            f"({keys}); use a key or host/container"
        )
        self.resolution = resolution


class TooManyMachines(SrvmonError):
    """A filter picks more machines than one query can name."""


class MachineDirectory:
    def __init__(self) -> None:
        self._by_key: dict[str, MachineName] = {}
        self._hostnames: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._by_key)

    def _put(self, name: MachineName) -> None:
        self._by_key[name.key] = name
        if name.kind == "host" or name.host_id not in self._hostnames:
            self._hostnames[name.host_id] = name.hostname

    def load(self, records: Iterable[MachineRecord]) -> None:
        """Start from the stored inventory."""
        for record in records:
            self._put(
                MachineName(
                    key=record.key,
                    kind=record.kind,
                    host_id=record.host_id,
                    hostname=record.hostname,
                    name=record.name,
                )
            )

    def seen(self, view: BatchView) -> None:
        """Learn the machines of an ingested batch (new ones, renamed hosts)."""
        known = self._by_key
        for machine in view.machines:
            entry = known.get(machine.key)
            if entry is None or entry.hostname != machine.hostname or entry.name != machine.name:
                self._put(
                    MachineName(
                        key=machine.key,
                        kind=machine.kind,
                        host_id=machine.host_id,
                        hostname=machine.hostname,
                        name=machine.name,
                    )
                )

    def forget(self, keys: Iterable[str]) -> None:
        """These machines were deleted: their names no longer resolve."""
        for key in keys:
            self._by_key.pop(key, None)
        hosts = {m.host_id for m in self._by_key.values()}
        for host_id in [h for h in self._hostnames if h not in hosts]:
            del self._hostnames[host_id]

    def hostname(self, host_id: str) -> str:
        """The host's name ("" when the host is unknown)."""
        return self._hostnames.get(host_id, "")

    def resolve(self, pattern: str) -> Resolution:
        """Every machine ``pattern`` picks (a name, a key, ``host/container`` or a glob)."""
        return resolve(pattern, self._by_key.values())

    def one(self, name: str) -> MachineName:
        """The one machine with this key or name; UnknownMachine or AmbiguousMachine."""
        found = self._by_key.get(name)
        if found is not None:
            return found
        if is_glob(name):
            raise UnknownMachine(f"{name!r} is a glob; name one machine")
        resolution = self.resolve(name)
        if not resolution.machines:
            raise UnknownMachine(f"no machine is named {name!r}")
        if len(resolution.machines) > 1:
            raise AmbiguousMachine(resolution)
        return resolution.machines[0]

    def filter_keys(self, pattern: str) -> tuple[list[str] | None, Resolution]:
        """The machine keys a filter stands for: None when it picks every known machine
        (no filter needed). A pattern that is not a glob also stands for itself as a key,
        so events of a machine no longer in the inventory stay findable by key."""
        resolution = self.resolve(pattern)
        keys = list(resolution.keys)
        if keys and len(keys) == len(self._by_key):
            return None, resolution
        if not is_glob(pattern) and pattern not in keys:
            keys.append(pattern)
        if len(keys) > MAX_FILTER_MACHINES:
            raise TooManyMachines(
                f"{pattern!r} picks {len(keys)} machines; a filter may pick at most "
                f"{MAX_FILTER_MACHINES} (or every one)"
            )
        return keys, resolution
