"""Build an Engine from a URL and translate driver errors into StorageError.

SQLite gets WAL, foreign keys, a busy timeout and ``synchronous=FULL`` (a committed ingest
survives power loss). MySQL/MariaDB gets utf8mb4, pre-ping and recycled connections.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc

from srvmon_server.storage.errors import StorageError, StorageUnavailable

log = logging.getLogger(__name__)
SQLITE_BUSY_TIMEOUT_MS = 5000
CONNECT_TIMEOUT_S = 5


def _safe(url: sa.URL) -> str:
    return url.render_as_string(hide_password=True)


SQLITE_AT_LEAST = (3, 33, 0)
"""The oldest SQLite the storage runs on: the inventory's refresh is an ``UPDATE … FROM``."""


def parse_url(url: str) -> sa.URL:
    """Parse and vet a database URL; raise StorageError naming what is wrong."""
    if not isinstance(url, str) or not url.strip():
        raise StorageError("database URL is empty; expected sqlite:///PATH or mysql+pymysql://…")
    try:
        parsed = sa.engine.make_url(url.strip())
    except exc.ArgumentError:
        raise StorageError(
            "database URL is not valid; expected sqlite:///PATH or "
            "mysql+pymysql://USER:PASSWORD@HOST:PORT/NAME"
        ) from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "mysql", "mariadb"):
        raise StorageError(
            f"unsupported database {backend!r} in {_safe(parsed)}; use sqlite or mysql+pymysql"
        )
    if backend == "sqlite":
        if sqlite3.sqlite_version_info < SQLITE_AT_LEAST:
            raise StorageError(
                f"this Python's SQLite is {sqlite3.sqlite_version}; srvmon needs "
                f"{'.'.join(map(str, SQLITE_AT_LEAST))} or later (UPDATE … FROM): "
                "use a newer Python or system SQLite, or MySQL/MariaDB"
            )
        database = parsed.database or ""
        if database in ("", ":memory:"):
            raise StorageError("sqlite needs a file path (sqlite:///PATH); in-memory is not kept")
        parent = Path(database).expanduser().resolve().parent
        if not parent.is_dir():
            raise StorageError(f"sqlite database folder does not exist: {parent}")
    elif not parsed.database:
        raise StorageError(f"MySQL URL names no database: {_safe(parsed)} (add /NAME)")
    return parsed


SQLITE_CACHE_KIB = 384 * 1024
"""Page cache per connection (SQLite's default is 2 MiB). Ingest touches the newest index
page of every machine each second, and the roll-ups read the last minute's pages: 31,000
machines (1,000 hosts x 30 containers) are about 120 MiB of newest pages plus what a
minute appends, which a smaller cache reads again from the OS at every insert (at 128 MiB
the fleet fell behind after 150 s). The cache grows only as pages are used, so a small
installation never fills it."""
SQLITE_WAL_CHECKPOINT_PAGES = 50_000
"""WAL pages (about 200 MiB) before a commit copies the log back itself (SQLite's
default is 1,000). The server checkpoints every second on a thread of its own
(``Storage.checkpoint``), so this is only the fallback for a process that does not (a
script, a stalled checkpoint thread): a commit then stops to copy the log, once per
50,000 pages instead of at nearly every commit of a large fleet."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
        cursor.execute(f"PRAGMA wal_autocheckpoint = {SQLITE_WAL_CHECKPOINT_PAGES}")
    finally:
        cursor.close()


def private_sqlite_file(url: sa.URL) -> None:
    """Create a new SQLite database file with mode 0600 (its ``-wal``/``-shm`` files take
    the same mode); warn about an existing one others can read."""
    path = Path(url.database or "").expanduser()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            log.warning(
                "database file %s is readable by other users (mode %o); chmod 600 it", path, mode
            )
        return
    except OSError as error:
        raise StorageError(f"cannot create the sqlite database {path}: {error}") from None
    os.close(fd)


def create_engine(url: sa.URL) -> sa.Engine:
    """An Engine for a vetted URL; raise StorageError if its driver is missing."""
    try:
        if url.get_backend_name() == "sqlite":
            private_sqlite_file(url)
            engine = sa.create_engine(
                url, connect_args={"check_same_thread": False, "timeout": 5.0}
            )
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        if "charset" not in url.query:
            url = url.update_query_dict({"charset": "utf8mb4"})
        return sa.create_engine(
            url,
            pool_pre_ping=True,
            pool_recycle=3600,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
        )
    except (exc.NoSuchModuleError, ModuleNotFoundError) as error:
        raise StorageError(f"no database driver for {_safe(url)}: {error}") from None


def describe(error: BaseException) -> str:
    """A one-line reason from a driver error, without SQL text or parameters."""
    original = getattr(error, "orig", None) or error
    args: tuple[Any, ...] = tuple(getattr(original, "args", ()))
    if len(args) >= 2 and isinstance(args[0], int):
        return f"{args[1]} (code {args[0]})"
    return str(original).splitlines()[0] if str(original) else type(original).__name__


@contextmanager
def translated(what: str, where: str) -> Iterator[None]:
    """Run a block, turning SQLAlchemy/driver errors into StorageUnavailable/StorageError."""
    try:
        yield
    except (exc.OperationalError, exc.InterfaceError, exc.TimeoutError) as error:
        if isinstance(error, exc.OperationalError) and _is_schema_problem(error):
            raise StorageError(f"{what} failed on {where}: {describe(error)}") from None
        raise StorageUnavailable(
            f"database {where} unavailable ({what}): {describe(error)}"
        ) from None
    except exc.SQLAlchemyError as error:
        raise StorageError(f"{what} failed on {where}: {describe(error)}") from None


def _is_schema_problem(error: exc.OperationalError) -> bool:
    """MySQL reports unknown tables/columns/databases as OperationalError too."""
    original = getattr(error, "orig", None)
    args = getattr(original, "args", ())
    code = args[0] if args and isinstance(args[0], int) else None
    # 1049 unknown database, 1054 unknown column, 1146 no such table
    if code in (1049, 1054, 1146):
        return True
    text = str(original).lower()
    return "no such table" in text or "no such column" in text
