"""A Storage on each backend for every test in this folder, and one on SQLite only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from srvmon_server.storage import Storage


@pytest.fixture
def storage(db_url: str) -> Iterator[Storage]:
    store = Storage.open(db_url)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def sqlite_storage(tmp_path: Path) -> Iterator[Storage]:
    """SQLite only: what SQLite alone does (stepped roll-up passes, many-row statements)."""
    store = Storage.open(f"sqlite:///{tmp_path / 'srvmon.db'}")
    try:
        yield store
    finally:
        store.close()
