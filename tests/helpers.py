"""Shared test helpers (not fixtures)."""

from __future__ import annotations

import os
import socket

import pytest


def missing(component: str, reason: str) -> None:
    """A real component is unavailable: fail in CI, skip with a reason elsewhere.

    CI must run every real-component test; a laptop without dockerd or MariaDB may skip.
    """
    message = f"{component} unavailable: {reason}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI must run every real-component test)", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
