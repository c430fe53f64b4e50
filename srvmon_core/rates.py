"""Per-second rates from monotonic counters.

A rate needs two readings. The first reading of a counter has no rate (``None``), and a
counter that went backwards (reset, wrap, re-created device) yields ``None`` for that
interval rather than a negative value or a spike.
"""

from __future__ import annotations

from collections.abc import Hashable

from attrs import define, field


def rate(previous: float | None, current: float, seconds: float) -> float | None:
    """The per-second rate between two counter readings, or None if there is none."""
    if previous is None or seconds <= 0 or current < previous:
        return None
    return (current - previous) / seconds


@define
class CounterTracker:
    """Remembers the last reading of many counters and turns new readings into rates.

    ``update(key, value, now)`` returns the rate since the previous reading of ``key``.
    ``forget_missing(keys)`` drops counters that disappeared (stopped containers, removed
    devices), so a re-appearing one starts fresh instead of producing a bogus rate.
    """

    _last: dict[Hashable, tuple[float, float]] = field(factory=dict)

    def update(self, key: Hashable, value: float, now: float) -> float | None:
        previous = self._last.get(key)
        self._last[key] = (value, now)
        if previous is None:
            return None
        return rate(previous[0], value, now - previous[1])

    def forget_missing(self, keep: set[Hashable]) -> None:
        for key in [k for k in self._last if k not in keep]:
            del self._last[key]

    def __len__(self) -> int:
        return len(self._last)
