"""Which machines went silent or came back. Pure: times are parameters.

The server feeds it every ingested machine (``seen``) and sweeps it every second; each
change becomes one ``machine`` SSE event.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta


class Presence:
    def __init__(self, silent_after_seconds: float) -> None:
        self.silent_after_seconds = silent_after_seconds
        self._last_seen: dict[str, datetime] = {}
        self._silent: set[str] = set()

    def load(self, last_seen: dict[str, datetime], now: datetime) -> None:
        """Start from stored inventory; machines already quiet start silent (no event)."""
        self._last_seen = dict(last_seen)
        self._silent = {k for k, at in last_seen.items() if self._quiet(at, now)}

    def add(self, last_seen: dict[str, datetime], now: datetime) -> None:
        """Machines handed over to this process (a server replica adopted their hosts):
        watched from now on, quiet ones already silent (no event: their previous owner
        announced it). Machines known already keep what this process saw."""
        for key, at in last_seen.items():
            if key in self._last_seen:
                continue
            self._last_seen[key] = at
            if self._quiet(at, now):
                self._silent.add(key)

    def forget(self, keys: Iterable[str]) -> None:
        """Machines handed over to another process, or deleted: no more events about them
        from here (until they report again)."""
        for key in keys:
            self._last_seen.pop(key, None)
            self._silent.discard(key)

    def _cutoff(self, now: datetime, grace_seconds: float = 0.0) -> datetime:
        """A machine whose last sample is older than this is silent at ``now``."""
        return now - timedelta(seconds=self.silent_after_seconds + grace_seconds)

    def _quiet(self, at: datetime, now: datetime, grace_seconds: float = 0.0) -> bool:
        return at < self._cutoff(now, grace_seconds)

    def seen(self, key: str, at: datetime) -> str | None:
        """Record a sample; ``"new"`` for a machine never seen, ``"back"`` after silence."""
        previous = self._last_seen.get(key)
        if previous is None or at > previous:
            self._last_seen[key] = at
        if previous is None:
            return "new"
        if key in self._silent:
            self._silent.discard(key)
            return "back"
        return None

    def sweep(self, now: datetime, grace_seconds: float = 0.0) -> list[tuple[str, datetime]]:
        """Machines that just went silent, with their last sample time; ``grace_seconds``
        (how far the server's own ingest is behind, ``backlog.py``) is added to the limit."""
        cutoff = self._cutoff(now, grace_seconds)  # one comparison per machine, every second
        silent = self._silent
        gone = [
            (key, at) for key, at in self._last_seen.items() if at < cutoff and key not in silent
        ]
        self._silent.update(key for key, _ in gone)
        return sorted(gone)

    def is_silent(self, key: str) -> bool:
        return key in self._silent
