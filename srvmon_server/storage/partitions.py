"""Which Kafka partition carries each host (``host_partitions``), for server replicas.

A replica records the partition a host's batches arrive on (``record``, only when it
changed) and, when partitions are assigned to it, reads which hosts they carry
(``hosts``). What was seen wins over any computed guess: collectors of other makes (the
Java system's, with Kafka's murmur2 partitioner) may place a host elsewhere than srvmon's
collector (librdkafka's ``consistent_random``, a CRC32 of the key) would.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite

from srvmon_server.storage import tables as t
from srvmon_server.storage.base import Database

_TABLE = t.host_partitions


def _upsert(dialect: str) -> Any:
    if dialect == "mysql":
        insert = mysql.insert(_TABLE)
        return insert.on_duplicate_key_update(
            kafka_partition=insert.inserted.kafka_partition, seen_at_ms=insert.inserted.seen_at_ms
        )
    lite = sqlite.insert(_TABLE)
    return lite.on_conflict_do_update(
        index_elements=["topic", "host_id"],
        set_={
            "kafka_partition": lite.excluded.kafka_partition,
            "seen_at_ms": lite.excluded.seen_at_ms,
        },
    )


class HostPartitionStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._upsert = _upsert(db.dialect)

    def record(self, topic: str, partitions: Mapping[str, int]) -> None:
        """Host id → the partition its batches arrived on (insert or replace)."""
        if not partitions:
            return
        now_ms = self._db.now_ms()
        rows = [
            {"topic": topic, "host_id": host, "kafka_partition": partition, "seen_at_ms": now_ms}
            for host, partition in sorted(partitions.items())
        ]
        with self._db.writing("record_host_partitions") as conn:
            conn.execute(self._upsert, rows)

    def hosts(self, topic: str) -> dict[str, int]:
        """Every recorded host of ``topic`` with its partition."""
        query = sa.select(_TABLE.c.host_id, _TABLE.c.kafka_partition).where(_TABLE.c.topic == topic)
        with self._db.reading("host_partitions") as conn:
            return {str(host): int(partition) for host, partition in conn.execute(query)}
