"""Opening: bad URLs and dead databases give StorageError/StorageUnavailable, never a traceback."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from srvmon_server.storage import Storage, StorageError, StorageUnavailable, url_from_env
from tests.helpers import free_port
from tests.storage.factory import T0, batch, seconds


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("", "empty"),
        ("not a url", "not valid"),
        ("postgresql://u@h/db", "unsupported database 'postgresql'"),
        ("sqlite://", "file path"),
        ("sqlite:////nonexistent-dir-srvmon/x.db", "folder does not exist"),
        ("mysql+pymysql://root@127.0.0.1:3306", "names no database"),
    ],
)
def test_bad_urls_raise_a_clear_storage_error(url: str, fragment: str) -> None:
    """Each malformed URL is refused with a message naming the problem."""
    with pytest.raises(StorageError, match=fragment):
        Storage.open(url)


def test_a_sqlite_older_than_3_33_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inventory's refresh is an ``UPDATE … FROM`` (SQLite 3.33): a Python linked to an
    older SQLite is told so when it opens, not at its first ingest; nothing is created."""
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.31.1")
    with pytest.raises(StorageError, match=r"SQLite is 3\.31\.1; srvmon needs 3\.33\.0 or later"):
        Storage.open(f"sqlite:///{tmp_path / 'old.db'}")
    assert not (tmp_path / "old.db").exists()


def test_dead_mysql_raises_unavailable_without_the_password() -> None:
    """Nothing listening: StorageUnavailable, and the password never appears in the message."""
    port = free_port()
    with pytest.raises(StorageUnavailable) as info:
        Storage.open(f"mysql+pymysql://root:s3cret@127.0.0.1:{port}/srvmon")
    message = str(info.value)
    assert "s3cret" not in message
    assert f"127.0.0.1:{port}" in message
    assert "Can't connect" in message


def test_unknown_mysql_database_is_a_storage_error(mariadb_url: str) -> None:
    """A server that answers but lacks the database: StorageError naming it."""
    url = mariadb_url.rsplit("/", 1)[0] + "/srvmon_does_not_exist"
    with pytest.raises(StorageError, match="Unknown database 'srvmon_does_not_exist'"):
        Storage.open(url)


def test_ping_times_select_1_and_fails_once_the_server_is_gone(tmp_path: Path) -> None:
    """ping returns a small positive duration; a file that is not a database → StorageError."""
    store = Storage.open(f"sqlite:///{tmp_path / 'ok.db'}")
    try:
        assert 0 < store.ping() < 5
    finally:
        store.close()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a sqlite file" * 100)
    with pytest.raises(StorageError, match="not a database"):
        Storage.open(f"sqlite:///{garbage}")


def test_ping_on_both_backends(db_url: str) -> None:
    """ping answers on a live SQLite file and a live MariaDB."""
    store = Storage.open(db_url)
    try:
        assert 0 < store.ping() < 5
    finally:
        store.close()


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        (
            {"DATABASE_HOST": "db", "DATABASE_NAME": "srvmon"},
            "mysql+pymysql://root@db:3306/srvmon",
        ),
        (
            {
                "DATABASE_HOST": "10.0.0.5",
                "DATABASE_PORT": "3307",
                "DATABASE_NAME": "mon",
                "DATABASE_USERNAME": "srv",
                "DATABASE_PASSWORD": "p@ss:w/rd",
            },
            "mysql+pymysql://srv:p%40ss%3Aw%2Frd@10.0.0.5:3307/mon",
        ),
    ],
)
def test_url_from_env_builds_a_mysql_url(environ: dict[str, str], expected: str | None) -> None:
    """DATABASE_* names build a pymysql URL; special characters in the password are escaped."""
    assert url_from_env(environ) == expected


@pytest.mark.parametrize(
    ("environ", "fragment"),
    [
        ({"DATABASE_HOST": "db"}, "DATABASE_NAME"),
        ({"DATABASE_HOST": "db", "DATABASE_NAME": "x", "DATABASE_PORT": "abc"}, "DATABASE_PORT"),
    ],
)
def test_url_from_env_rejects_incomplete_settings(environ: dict[str, str], fragment: str) -> None:
    """HOST without NAME, or a non-numeric PORT, is a clear StorageError."""
    with pytest.raises(StorageError, match=fragment):
        url_from_env(environ)


def test_sqlite_connections_get_the_documented_settings(tmp_path: Path) -> None:
    """docs/storage.md: WAL, FULL sync, foreign keys, a 384 MiB page cache and a fallback
    checkpoint every 50,000 WAL pages, on every connection of the pool."""
    storage = Storage.open(f"sqlite:///{tmp_path / 'settings.db'}")
    try:
        with storage.engine.connect() as conn:
            read = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in (
                    "journal_mode",
                    "synchronous",
                    "foreign_keys",
                    "cache_size",
                    "wal_autocheckpoint",
                )
            }
    finally:
        storage.close()
    assert read == {
        "journal_mode": "wal",
        "synchronous": 2,  # FULL
        "foreign_keys": 1,
        "cache_size": -393216,  # KiB when negative
        "wal_autocheckpoint": 50_000,
    }


def rows_in_file_alone(database: Path, copy: Path) -> int:
    """The samples a copy of the database file holds without its write-ahead log (what
    a checkpoint has copied back); 0 while even the schema is only in the log."""
    shutil.copyfile(database, copy)
    with contextlib.closing(sqlite3.connect(copy)) as conn:
        try:
            return sum(
                int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
                for table in ("samples", "samples_recent")  # docs/storage.md, "Recent rows"
            )
        except sqlite3.OperationalError:  # no such table: nothing copied back yet
            return 0


def test_a_checkpoint_copies_the_log_while_a_writer_holds_its_transaction(
    tmp_path: Path,
) -> None:
    """docs/storage.md: ``checkpoint()`` copies every committed frame into the database
    file without waiting for the writer, whose open transaction stays its own."""
    database = tmp_path / "wal.db"
    storage = Storage.open(f"sqlite:///{database}")
    try:
        for second in range(20):
            storage.samples.ingest(batch(T0 + seconds(second), containers=3), T0)
        before = rows_in_file_alone(database, tmp_path / "before.db")
        with storage.engine.connect() as writer:
            writer.exec_driver_sql("BEGIN IMMEDIATE")  # holds the write lock
            writer.exec_driver_sql("DELETE FROM samples")
            writer.exec_driver_sql("DELETE FROM samples_recent")
            began = time.perf_counter()
            done = storage.checkpoint()
            took = time.perf_counter() - began
            writer.rollback()
        after = rows_in_file_alone(database, tmp_path / "after.db")
    finally:
        storage.close()
    assert done is not None
    assert done.log_frames > 0
    assert done.copied_frames == done.log_frames
    assert took < 1.0, "a PASSIVE checkpoint does not wait for the writer's busy timeout"
    assert (before, after) == (0, 20 * 4)


def test_checkpoint_is_none_on_mariadb(mariadb_url: str) -> None:
    """MySQL/MariaDB has no write-ahead log to copy: the call says so with None."""
    storage = Storage.open(mariadb_url)
    try:
        assert storage.checkpoint() is None
    finally:
        storage.close()
