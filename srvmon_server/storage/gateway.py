"""``Storage``: the one object that owns the database, made of one store per job.

``Storage.open(url)`` connects, creates or upgrades the schema and builds the stores:

- ``samples``: ingest, the machine inventory, series and rollups (``samples.py``);
- ``rules``: the alert rules (``rules.py``);
- ``history``: alert events, newest first (``history.py``);
- ``silences``: silences (``silences.py``);
- ``alert_states``: the engine's saved state (``alert_states.py``);
- ``partitions``: the Kafka partition of each host, for server replicas (``partitions.py``);
- ``retention``: pruning (``retention.py``);
- ``tokens``: API tokens, stored hashed (``tokens.py``).

Handlers never build SQL; stores take and return typed records. Thread-safety: Storage is
NOT safe for concurrent calls. The server runs every call on one worker thread. It may be
opened on one thread and used on another. Several processes may share one MariaDB
database; SQLite allows one writer process at a time (WAL lets readers in other processes
proceed).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from srvmon_server.storage.alert_states import AlertStateStore
from srvmon_server.storage.base import Clock, Database
from srvmon_server.storage.connection import create_engine, parse_url, translated
from srvmon_server.storage.errors import StorageError, StorageUnavailable
from srvmon_server.storage.history import AlertHistory
from srvmon_server.storage.migrations import ensure_schema
from srvmon_server.storage.partitions import HostPartitionStore
from srvmon_server.storage.records import Checkpoint
from srvmon_server.storage.retention import Retention
from srvmon_server.storage.rollup import ensure_progress
from srvmon_server.storage.rules import RuleStore
from srvmon_server.storage.samples import SampleStore
from srvmon_server.storage.silences import SilenceStore
from srvmon_server.storage.tokens import TokenStore

INVENTORY_FLUSH = timedelta(seconds=5)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Storage:
    """The storage gateway. Create with :meth:`open`; every method is synchronous."""

    def __init__(self, db: Database, *, inventory_flush_ms: int = 0) -> None:
        self._db = db
        self.samples = SampleStore(db, inventory_flush_ms=inventory_flush_ms)
        self.rules = RuleStore(db)
        self.history = AlertHistory(db)
        self.silences = SilenceStore(db)
        self.alert_states = AlertStateStore(db)
        self.partitions = HostPartitionStore(db)
        self.retention = Retention(db, self.samples)
        self.tokens = TokenStore(db)
        self.upgraded_from: int = 0
        """Schema version found at open (0: the database was new)."""

    @classmethod
    def open(
        cls,
        url: str,
        *,
        clock: Clock | None = None,
        inventory_flush: timedelta = INVENTORY_FLUSH,
    ) -> Storage:
        """Connect, create or upgrade the schema; raise StorageError / StorageUnavailable.

        ``inventory_flush``: how long a machine's inventory row (``latest_sample``,
        ``last_seen``, …) may lag its newest stored sample; this process's own reads never
        see the lag (they flush first). Zero writes it in every ingest transaction.
        """
        if inventory_flush < timedelta(0):
            raise StorageError(f"inventory_flush must be >= 0, got {inventory_flush}")
        parsed = parse_url(url)
        where = parsed.render_as_string(hide_password=True)
        engine = create_engine(parsed)
        database = Database(engine, where, clock or _utc_now)
        try:
            with translated("open", where):
                with engine.connect() as conn:
                    conn.execute(sa.text("SELECT 1"))
                with database.exclusive("srvmon.schema"):  # replicas may start together
                    found = ensure_schema(engine)
                    with engine.begin() as conn:
                        ensure_progress(conn)
        except BaseException:
            engine.dispose()
            raise
        flush_ms = int(inventory_flush.total_seconds() * 1000)
        storage = cls(database, inventory_flush_ms=flush_ms)
        storage.upgraded_from = found
        return storage

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``mysql``."""
        return self._db.dialect

    @property
    def engine(self) -> sa.Engine:
        """The engine, for benchmarks and tests only; application code uses the stores."""
        return self._db.engine

    @property
    def database(self) -> Database:
        """The opened database the stores share (engine, URL for errors, clock)."""
        return self._db

    def close(self) -> None:
        """Write what waits for the inventory and move SQLite's recent rows into
        ``samples`` (if the DB answers), then disconnect."""
        try:
            self.samples.flush_inventory()
            self.samples.settle()
        except StorageError:
            pass  # raw samples are stored; the next sample of each machine refreshes its row
        finally:
            self._db.engine.dispose()

    def checkpoint(self) -> Checkpoint | None:
        """Copy SQLite's write-ahead log into the database file, without waiting for or
        blocking a writer (``PRAGMA wal_checkpoint(PASSIVE)``); None on MySQL/MariaDB.

        Unlike every other call this one may run on a thread of its own, beside the one
        that makes the others: it touches no store, only a connection of its own. The
        server runs it every second (``Periodic.checkpoint``), so the log stays short and
        commits seldom copy it themselves (``connection.SQLITE_WAL_CHECKPOINT_PAGES``)."""
        if self._db.dialect != "sqlite":
            return None
        with self._db.reading("checkpoint") as conn:
            _busy, log_frames, copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        return Checkpoint(log_frames=int(log_frames), copied_frames=int(copied))

    def ping(self) -> float:
        """Seconds a ``SELECT 1`` took; raise StorageUnavailable when the DB does not answer."""
        began = time.perf_counter()
        try:
            with self._db.reading("ping") as conn:
                conn.execute(sa.text("SELECT 1"))
        except StorageUnavailable:
            raise
        except StorageError as error:
            raise StorageUnavailable(str(error)) from None
        return time.perf_counter() - began
