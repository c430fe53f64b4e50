"""Machine names: what people type to name a machine, and which machines a pattern picks.

A host is named by its hostname (``vm``) or its key (the host id). A container is named by
its container name (``db``), by ``<hostname>/<container name>`` (``vm/db``) or by its key
(``<host id>:<container name>``). A *pattern* is one of those names exactly, or a glob
(``*``, ``?``, ``[...]``, matched case-sensitively as :func:`fnmatch.fnmatchcase` does).

A pattern without ``/`` is matched against the names without one (keys, hostnames,
container names), and a pattern with ``/`` against the ``host/container`` form only, so
``web-*`` picks hosts and containers named ``web-…`` but never every container of a host
named ``web-1``; ``vm/*`` picks the containers of ``vm``; ``*/db`` every ``db`` container.

Rule selectors (:class:`srvmon_core.rules.Selector`), silence matchers
(:class:`srvmon_core.silences.SilenceMatchers`) and the server's name resolver all call
:func:`pattern_matches`, so one pattern picks the same machines everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

from attrs import frozen

GLOB_CHARS = frozenset("*?[")


def is_glob(pattern: str) -> bool:
    """Whether ``pattern`` has glob characters (else it names machines exactly)."""
    return not GLOB_CHARS.isdisjoint(pattern)


def display_name(kind: str, hostname: str, name: str) -> str:
    """The name a list shows: ``vm`` for a host, ``vm/db`` for a container."""
    return name if kind == "host" else f"{hostname}/{name}"


def names_of(key: str, kind: str, hostname: str, name: str) -> tuple[str, ...]:
    """Every name of one machine (see the module docstring)."""
    if kind == "host":
        return (key, hostname) if name == hostname else (key, hostname, name)
    return (key, name, f"{hostname}/{name}")


def pattern_matches(pattern: str, names: Iterable[str]) -> bool:
    """Whether ``pattern`` (an exact name or a glob) picks a machine with these names."""
    slash = "/" in pattern
    candidates = [n for n in names if ("/" in n) == slash]
    if not is_glob(pattern):
        return pattern in candidates
    return any(fnmatchcase(n, pattern) for n in candidates)


@frozen(kw_only=True)
class MachineName:
    """How one machine is named: enough to match a pattern and to show it."""

    key: str
    kind: str
    host_id: str
    hostname: str
    name: str

    @property
    def display(self) -> str:
        return display_name(self.kind, self.hostname, self.name)

    @property
    def names(self) -> tuple[str, ...]:
        return names_of(self.key, self.kind, self.hostname, self.name)

    def matches(self, pattern: str) -> bool:
        return pattern_matches(pattern, self.names)


@frozen(kw_only=True)
class Resolution:
    """The machines a pattern picks, and the names it used that several machines share."""

    pattern: str
    machines: tuple[MachineName, ...]
    shared: dict[str, tuple[str, ...]]
    """A shown name picked by more than one machine → their keys, e.g. two hosts both
    called ``vm``. Empty when every picked machine has its own name."""

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(m.key for m in self.machines)


def resolve(pattern: str, machines: Iterable[MachineName]) -> Resolution:
    """The machines ``pattern`` picks, sorted by shown name then key, with shared names."""
    picked = sorted((m for m in machines if m.matches(pattern)), key=lambda m: (m.display, m.key))
    by_name: dict[str, list[str]] = {}
    for machine in picked:
        by_name.setdefault(machine.display, []).append(machine.key)
    shared = {name: tuple(keys) for name, keys in by_name.items() if len(keys) > 1}
    return Resolution(pattern=pattern, machines=tuple(picked), shared=shared)
