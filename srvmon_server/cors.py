"""CORS: only configured origins get CORS headers. Pure header computation."""

from __future__ import annotations

ALLOWED_METHODS = "GET, POST, PUT, DELETE, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type, Last-Event-ID"
MAX_AGE_SECONDS = 600


def parse_origins(raw: str | None) -> frozenset[str]:
    """``CORS_ALLOWED_ORIGINS``: comma-separated origins, e.g. ``https://a.example,http://b:8080``.

    Raises ValueError for an entry that is not ``scheme://host[:port]`` (or ``*``).
    """
    if not raw:
        return frozenset()
    origins = set()
    for part in raw.split(","):
        origin = part.strip().rstrip("/")
        if not origin:
            continue
        if origin != "*" and (
            "://" not in origin or not origin.split("://", 1)[1] or "/" in origin.split("://", 1)[1]
        ):
            raise ValueError(f"CORS origin {origin!r} must look like scheme://host[:port]")
        origins.add(origin)
    return frozenset(origins)


def cors_headers(
    allowed: frozenset[str], origin: str | None, *, preflight: bool = False
) -> dict[str, str]:
    """Headers to add for a request from ``origin``; empty when the origin is not allowed."""
    if not origin or not (origin in allowed or "*" in allowed):
        return {}
    headers = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    if preflight:
        headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
        headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        headers["Access-Control-Max-Age"] = str(MAX_AGE_SECONDS)
    return headers
