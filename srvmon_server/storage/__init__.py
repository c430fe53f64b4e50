"""The server's storage gateway: SQLAlchemy over SQLite (default) or MySQL/MariaDB.

``Storage.open(url)`` is the entry point; it holds one store per job (``samples``,
``rules``, ``history``, ``silences``, ``alert_states``, ``retention``). docs/storage.md
describes tables and behaviour.
"""

from srvmon_server.storage.env import url_from_env
from srvmon_server.storage.errors import InvalidQuery, StorageError, StorageUnavailable
from srvmon_server.storage.gateway import Storage
from srvmon_server.storage.history import HistoryEntry, HistoryPage
from srvmon_server.storage.records import Checkpoint, IngestResult, MachineRecord, Series
from srvmon_server.storage.rollup import RollupResult
from srvmon_server.storage.tables import METRIC_NAMES, SCHEMA_VERSION

__all__ = [
    "METRIC_NAMES",
    "SCHEMA_VERSION",
    "Checkpoint",
    "HistoryEntry",
    "HistoryPage",
    "IngestResult",
    "InvalidQuery",
    "MachineRecord",
    "RollupResult",
    "Series",
    "Storage",
    "StorageError",
    "StorageUnavailable",
    "url_from_env",
]
