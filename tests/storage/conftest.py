"""A Storage on each backend for every test in this folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from srvmon_server.storage import Storage


@pytest.fixture
def storage(db_url: str) -> Iterator[Storage]:
    store = Storage.open(db_url)
    try:
        yield store
    finally:
        store.close()
