"""The library's exceptions. Callers translate them only at the edges (CLI, HTTP)."""

from __future__ import annotations


class SrvmonError(Exception):
    """Base of every error srvmon raises on purpose."""


class DecodeError(SrvmonError):
    """Bytes from a peer could not be decoded.

    ``path`` names the field, e.g. ``$.containers[3].cpu_percent``.
    """

    def __init__(self, message: str, path: str = "$") -> None:
        super().__init__(f"{path}: {message}")
        self.message = message
        self.path = path


class ConfigError(SrvmonError):
    """Local configuration (rules, options) is invalid. ``path`` names the offending field."""

    def __init__(self, message: str, path: str = "$") -> None:
        super().__init__(f"{path}: {message}")
        self.message = message
        self.path = path
