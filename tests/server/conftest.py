"""Fixtures for server tests: a real server on SQLite (or MariaDB) over real sockets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from srvmon_server.config import ServerConfig
from srvmon_server.storage import Storage
from tests.server.harness import READ, WRITE, FakeClock, RunningServer

StartServer = Callable[..., RunningServer]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def start_server(tmp_path: Path, clock: FakeClock) -> Iterator[StartServer]:
    """Start servers (with config overrides) on one SQLite file; stopped at teardown."""
    yield from _servers(f"sqlite:///{tmp_path / 'srvmon.db'}", clock)


@pytest.fixture
def start_server_any_db(db_url: str, clock: FakeClock) -> Iterator[StartServer]:
    """Like start_server, once on SQLite and once on a fresh MariaDB database."""
    yield from _servers(db_url, clock)


def _servers(url: str, clock: FakeClock) -> Iterator[StartServer]:
    running: list[RunningServer] = []

    def start(url: str = url, **overrides: Any) -> RunningServer:
        options: dict[str, Any] = {
            "write_tokens": {WRITE},
            "read_tokens": {READ},
            "heartbeat_seconds": 15.0,
        }
        options.update(overrides)
        storage = Storage.open(url, clock=clock)
        server = RunningServer(storage, ServerConfig(**options), clock)
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop()
        server.storage.close()


@pytest.fixture
def server(start_server: StartServer) -> RunningServer:
    return start_server()


@pytest.fixture
def server_any_db(start_server_any_db: StartServer) -> RunningServer:
    return start_server_any_db()
