"""The storage gateway's exceptions. The server maps them to one JSON error envelope."""

from __future__ import annotations

from srvmon_core.errors import SrvmonError


class StorageError(SrvmonError):
    """The database refused an operation, or the URL/schema is unusable."""


class StorageUnavailable(StorageError):
    """The database cannot be reached right now (down, refused, timed out). Retry later."""


class InvalidQuery(StorageError):
    """The caller asked for something malformed: unknown metric, bad cursor, bad range."""
