"""Every table, as SQLAlchemy Core metadata. The only place the schema is spelled out.

Design (docs/storage.md explains the choice):

- ``samples`` is *wide*: one row per (machine, timestamp) with one nullable DOUBLE column per
  flat metric (``m_<name>``). A batch of 21 samples is 21 row inserts, and a series query is a
  primary-key range scan reading one column.
- ``rollup_1m`` / ``rollup_1h`` are wide too: per metric ``n_``, ``sum_``, ``min_``, ``max_``
  columns, one row per (machine, bucket), recomputed from raw rows by ``rollup.roll_up``
  (off the ingest path); ``rollup_progress`` is its watermark.
- Timestamps are integer epoch milliseconds (``*_ms``).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from srvmon_core.metrics import CONTAINER_METRIC_NAMES, HOST_METRIC_NAMES

SCHEMA_VERSION = 6
"""Version of the table layout. ``migrations.py`` upgrades older databases step by step."""

METRIC_NAMES: tuple[str, ...] = tuple(sorted(HOST_METRIC_NAMES | CONTAINER_METRIC_NAMES))
"""Every flat metric; each gets one column in ``samples`` and four in each rollup table."""

LongText = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
Key = sa.String(255)
Double: sa.Double[float] = sa.Double()
Ms = sa.BigInteger()


def raw_column(metric: str) -> str:
    return f"m_{metric}"


def rollup_columns(metric: str) -> tuple[str, str, str, str]:
    """Column names (count, sum, min, max) of one metric in a rollup table."""
    return f"n_{metric}", f"sum_{metric}", f"min_{metric}", f"max_{metric}"


metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("upgraded_at_ms", Ms, nullable=False),
)

meta = sa.Table(
    "meta",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

machines = sa.Table(
    "machines",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", Key, nullable=False, unique=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("host_id", Key, nullable=False, index=True),
    sa.Column("hostname", Key, nullable=False),
    sa.Column("name", Key, nullable=False),
    sa.Column("image", sa.String(512)),
    sa.Column("labels", sa.Text, nullable=False),
    sa.Column("state", sa.String(32)),
    sa.Column("health", sa.String(32)),
    sa.Column("restart_count", sa.Integer),  # NULL: not reported (hosts, legacy containers)
    sa.Column("first_seen_ms", Ms, nullable=False),
    sa.Column("last_seen_ms", Ms, nullable=False),
    sa.Column("last_received_ms", Ms),
    sa.Column("latest_ts_ms", Ms, nullable=False),
    sa.Column("latest_metrics", sa.Text, nullable=False),
    sa.Column("latest_sample", LongText, nullable=False),
)


def _raw(name: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("machine_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("ts_ms", Ms, primary_key=True, autoincrement=False),
        *[sa.Column(raw_column(m), Double) for m in METRIC_NAMES],
    )


samples = _raw("samples")
samples_recent = _raw("samples_recent")
"""SQLite: where ingest writes raw rows first; ``settle.py`` moves them into ``samples`` in
machine order every few seconds (docs/storage.md, "Recent rows"). A (machine, ts) is in one
of the two, never both; readers of raw rows read both (``settle.raw_rows``). Created by
``create_all`` on any schema version; empty on MySQL/MariaDB, which inserts into
``samples`` directly."""


def _rollup(name: str) -> sa.Table:
    columns: list[sa.Column[object]] = []
    for metric in METRIC_NAMES:
        n, total, low, high = rollup_columns(metric)
        columns += [
            sa.Column(n, sa.Integer, nullable=False, server_default="0"),
            sa.Column(total, Double, nullable=False, server_default="0"),
            sa.Column(low, Double),
            sa.Column(high, Double),
        ]
    return sa.Table(
        name,
        metadata,
        sa.Column("machine_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("bucket_ms", Ms, primary_key=True, autoincrement=False),
        *columns,
    )


rollup_1m = _rollup("rollup_1m")
rollup_1h = _rollup("rollup_1h")

ROLLUPS: dict[str, tuple[sa.Table, int]] = {"1m": (rollup_1m, 60_000), "1h": (rollup_1h, 3_600_000)}
"""Rollup tables by resolution, with their bucket width in ms."""

rollup_progress = sa.Table(
    "rollup_progress",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("exact_below_ms", Ms),
    sa.Column("dirty_from_ms", Ms),
)
"""One row (id 1). Rollups are exact for raw rows with ``ts_ms < exact_below_ms`` except
those ``>= dirty_from_ms`` (late samples stored since the last roll-up). NULL
``exact_below_ms``: nothing rolled up yet."""

rules = sa.Table(
    "rules",
    metadata,
    sa.Column("id", Key, primary_key=True),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
)

alert_machines = sa.Table(
    "alert_machines",
    metadata,
    sa.Column("key", Key, primary_key=True),
    sa.Column("host_id", Key, nullable=False, index=True),
    sa.Column("body", LongText, nullable=False),
    sa.Column("saved_at_ms", Ms, nullable=False),
)
"""The alert engine's saved state, one row per machine (``MachineSnapshot.document`` as
JSON): a transition rewrites one row, and a process loads the machines of the hosts it
evaluates. Replaces the single-row ``alert_state`` of schema v3."""

alert_events = sa.Table(
    "alert_events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("at_ms", Ms, nullable=False),
    sa.Column("fingerprint", Key, nullable=False),
    sa.Column("rule_id", Key, nullable=False),
    sa.Column("machine", Key, nullable=False),
    sa.Column("host_id", Key, nullable=False),
    sa.Column("metric", sa.String(64), nullable=False),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("from_state", sa.String(16), nullable=False),
    sa.Column("to_state", sa.String(16), nullable=False),
    sa.Column("silenced", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("body", sa.Text, nullable=False),
    sa.Index("ix_alert_events_at", "at_ms", "id"),
    sa.Index("ix_alert_events_machine", "machine", "at_ms"),
    sa.Index("ix_alert_events_host", "host_id", "at_ms"),
    sa.Index("ix_alert_events_rule", "rule_id", "at_ms"),
)

silences = sa.Table(
    "silences",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("created_at_ms", Ms, nullable=False),
    sa.Column("starts_at_ms", Ms, nullable=False),
    sa.Column("ends_at_ms", Ms, nullable=False, index=True),
    sa.Column("body", sa.Text, nullable=False),
)

host_partitions = sa.Table(
    "host_partitions",
    metadata,
    sa.Column("topic", Key, primary_key=True),
    sa.Column("host_id", Key, primary_key=True),
    sa.Column("kafka_partition", sa.Integer, nullable=False),
    sa.Column("seen_at_ms", Ms, nullable=False),
)
"""Server replicas (docs/server.md, "Replica mode"): the Kafka partition each host's
batches last arrived on, per topic. A replica given a partition adopts the hosts recorded
on it, silent ones included. Created by ``create_all`` on any schema version (no data to
migrate)."""

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("scopes", sa.String(64), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at_ms", Ms, nullable=False),
    sa.Column("rotated_at_ms", Ms),
    sa.Column("revoked_at_ms", Ms),
)
"""API tokens by SHA-256 digest (never the token), with comma-separated scopes; created
with the first start of a server that knows them (no migration needed)."""
