"""What every store shares: the engine, the URL shown in errors, and the clock.

Each store owns one job's tables and reads and writes typed records; SQL never leaves
``srvmon_server.storage``. Every method runs one short transaction (or one read) and
translates driver errors into ``StorageError`` / ``StorageUnavailable`` (``translated``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

import sqlalchemy as sa
from attrs import frozen

from srvmon_server.storage.clock import to_ms
from srvmon_server.storage.connection import translated
from srvmon_server.storage.errors import StorageError

Clock = Callable[[], datetime]


@frozen
class Database:
    """One opened database, shared by the stores."""

    engine: sa.Engine
    where: str
    """The URL without its password, for error messages."""
    clock: Clock

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``mysql``."""
        return "mysql" if self.engine.dialect.name in ("mysql", "mariadb") else "sqlite"

    def now_ms(self) -> int:
        return to_ms(self.clock())

    @contextmanager
    def guarded(self, what: str) -> Iterator[None]:
        """Driver errors inside the block become StorageError naming ``what``."""
        with translated(what, self.where):
            yield

    @contextmanager
    def reading(self, what: str) -> Iterator[sa.Connection]:
        """A connection for reads; driver errors become StorageError naming ``what``."""
        with translated(what, self.where), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def exclusive(self, name: str, timeout_seconds: int = 120) -> Iterator[None]:
        """One process at a time inside the block, among processes sharing a MySQL/MariaDB
        database (``GET_LOCK`` held on a connection of its own), e.g. server replicas
        starting together on an empty database. A no-op on SQLite: one writing process."""
        if self.dialect != "mysql":
            yield
            return
        with translated(f"lock {name}", self.where), self.engine.connect() as conn:
            got = conn.execute(
                sa.text("SELECT GET_LOCK(:name, :timeout)"),
                {"name": name, "timeout": timeout_seconds},
            ).scalar()
            if got != 1:
                raise StorageError(
                    f"another process held the database lock {name!r} for {timeout_seconds} s"
                )
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": name})

    @contextmanager
    def try_exclusive(self, name: str) -> Iterator[bool]:
        """Like ``exclusive`` without waiting: yields False (and the block should skip its
        work) while another process holds the lock. Server replicas run the shared
        maintenance (roll-ups, pruning) in whichever replica gets there first."""
        if self.dialect != "mysql":
            yield True
            return
        with translated(f"lock {name}", self.where), self.engine.connect() as conn:
            got = conn.execute(sa.text("SELECT GET_LOCK(:name, 0)"), {"name": name}).scalar()
            if got != 1:
                yield False
                return
            try:
                yield True
            finally:
                conn.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": name})

    @contextmanager
    def writing(self, what: str) -> Iterator[sa.Connection]:
        """One transaction, committed on exit; driver errors become StorageError."""
        with translated(what, self.where), self.engine.begin() as conn:
            yield conn
