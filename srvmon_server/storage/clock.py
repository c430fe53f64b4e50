"""Epoch-millisecond conversions: every timestamp column is an integer of UTC ms."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def to_ms(value: datetime) -> int:
    """A zone-aware datetime as integer epoch milliseconds."""
    if value.utcoffset() is None:
        raise ValueError(f"datetime must carry a time zone (UTC), got {value!r}")
    return round(value.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_instant(value: Any, field_name: str) -> datetime:
    """Accept a zone-aware datetime or an ISO 8601 string with a zone; raise ValueError."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{field_name}: not an ISO 8601 instant: {value!r}") from None
    else:
        raise ValueError(f"{field_name}: expected an ISO 8601 string, got {type(value).__name__}")
    if parsed.utcoffset() is None:
        raise ValueError(f"{field_name}: needs a time zone, e.g. a trailing Z")
    return parsed.astimezone(UTC)
