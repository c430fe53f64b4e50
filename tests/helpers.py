"""Shared test helpers (not fixtures)."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


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


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on a fresh thread.

    Playwright's sync API keeps an event loop running on the main thread for the whole
    session, so a plain ``asyncio.run`` in a later test would refuse to start.
    """
    results: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            results.append(asyncio.run(coroutine))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="run-async")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return results[0]
