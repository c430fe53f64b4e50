"""The write path: one Batch in, one short transaction, idempotent per (machine, timestamp).

Per batch: look up (or create) machine ids, find which (machine, ts) rows already exist,
insert only the new rows (insert-ignore as a second guard), upsert the 1 m and 1 h rollups
for exactly those rows, and refresh the inventory of machines whose sample is the newest.
A replayed batch therefore stores 0 rows and leaves rollups untouched.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from attrs import frozen
from sqlalchemy.dialects import mysql, sqlite

from srvmon_core.codec import unstructure
from srvmon_core.metrics import container_metrics, host_metrics
from srvmon_core.schema import Batch, container_key, host_key
from srvmon_server.storage import tables as t
from srvmon_server.storage.clock import iso, to_ms
from srvmon_server.storage.records import IngestResult


@frozen(kw_only=True)
class MachineSample:
    """One machine's part of a batch, flattened for storage."""

    key: str
    kind: str
    host_id: str
    hostname: str
    name: str
    image: str | None
    labels: dict[str, str]
    state: str | None
    health: str | None
    restart_count: int
    metrics: dict[str, float]
    sample: dict[str, Any]


def machine_samples(batch: Batch) -> list[MachineSample]:
    """The host (when read) and every container of a batch, in batch order."""
    stamp = iso(batch.timestamp)
    out: list[MachineSample] = []
    if batch.host is not None:
        out.append(
            MachineSample(
                key=host_key(batch.host_id),
                kind="host",
                host_id=batch.host_id,
                hostname=batch.hostname,
                name=batch.hostname,
                image=None,
                labels={},
                state="up",
                health=None,
                restart_count=0,
                metrics=host_metrics(batch.host),
                sample={**unstructure(batch.host), "timestamp": stamp},
            )
        )
    for container in batch.containers:
        out.append(
            MachineSample(
                key=container_key(batch.host_id, container.name),
                kind="container",
                host_id=batch.host_id,
                hostname=batch.hostname,
                name=container.name,
                image=container.image,
                labels=dict(container.labels),
                state=container.state,
                health=container.health,
                restart_count=container.restart_count,
                metrics=container_metrics(container),
                sample={**unstructure(container), "timestamp": stamp},
            )
        )
    return out


def _newer(table: sa.Table, excluded: Any, metric: str) -> dict[str, Any]:
    """Upsert assignments folding one new row's (n, sum, min, max) into a rollup row."""
    n, total, low, high = t.rollup_columns(metric)
    new_low, new_high = excluded[low], excluded[high]
    old_low, old_high = table.c[low], table.c[high]
    return {
        n: table.c[n] + excluded[n],
        total: table.c[total] + excluded[total],
        low: sa.case(
            (new_low.is_(None), old_low),
            (sa.or_(old_low.is_(None), new_low < old_low), new_low),
            else_=old_low,
        ),
        high: sa.case(
            (new_high.is_(None), old_high),
            (sa.or_(old_high.is_(None), new_high > old_high), new_high),
            else_=old_high,
        ),
    }


def rollup_upsert(dialect: str, table: sa.Table) -> sa.Executable:
    """``INSERT … ON CONFLICT DO UPDATE`` (SQLite) / ``ON DUPLICATE KEY UPDATE`` (MySQL)."""
    if dialect == "sqlite":
        lite = sqlite.insert(table)
        assignments: dict[str, Any] = {}
        for metric in t.METRIC_NAMES:
            assignments.update(_newer(table, lite.excluded, metric))
        return lite.on_conflict_do_update(
            index_elements=[table.c.machine_id, table.c.bucket_ms], set_=assignments
        )
    my = mysql.insert(table)
    assignments = {}
    for metric in t.METRIC_NAMES:
        assignments.update(_newer(table, my.inserted, metric))
    return my.on_duplicate_key_update(assignments)


def insert_ignore(dialect: str, table: sa.Table) -> sa.Executable:
    """An insert that skips rows whose primary key already exists."""
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    return sa.insert(table).prefix_with("IGNORE")


def raw_row(machine_id: int, ts_ms: int, metrics: dict[str, float]) -> dict[str, Any]:
    row: dict[str, Any] = {"machine_id": machine_id, "ts_ms": ts_ms}
    for metric in t.METRIC_NAMES:
        row[t.raw_column(metric)] = metrics.get(metric)
    return row


def rollup_row(machine_id: int, bucket_ms: int, metrics: dict[str, float]) -> dict[str, Any]:
    row: dict[str, Any] = {"machine_id": machine_id, "bucket_ms": bucket_ms}
    for metric in t.METRIC_NAMES:
        n, total, low, high = t.rollup_columns(metric)
        value = metrics.get(metric)
        row[n] = 0 if value is None else 1
        row[total] = 0.0 if value is None else value
        row[low] = value
        row[high] = value
    return row


_b = sa.bindparam
_INVENTORY_UPDATE = (
    sa.update(t.machines)
    .where(t.machines.c.id == _b("b_id"), t.machines.c.latest_ts_ms <= _b("b_ts"))
    .values(
        hostname=_b("b_hostname"),
        image=_b("b_image"),
        labels=_b("b_labels"),
        state=_b("b_state"),
        health=_b("b_health"),
        restart_count=_b("b_restart_count"),
        last_seen_ms=_b("b_ts"),
        last_received_ms=_b("b_received"),
        latest_ts_ms=_b("b_ts"),
        latest_metrics=_b("b_metrics"),
        latest_sample=_b("b_sample"),
    )
)


class Ingester:
    """The write path. Keeps a key → id cache (ids never change once assigned)."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        dialect = engine.dialect.name
        self._insert_samples = insert_ignore(dialect, t.samples)
        self._upserts = [rollup_upsert(dialect, table) for table, _ in t.ROLLUPS.values()]
        self._widths = [width for _, width in t.ROLLUPS.values()]
        self._ids: dict[str, int] = {}

    def _machine_ids(
        self, conn: sa.Connection, parts: list[MachineSample], ts_ms: int, received_ms: int
    ) -> list[str]:
        unknown = [p.key for p in parts if p.key not in self._ids]
        if not unknown:
            return []
        found = conn.execute(
            sa.select(t.machines.c.key, t.machines.c.id).where(t.machines.c.key.in_(unknown))
        )
        self._ids.update({key: int(ident) for key, ident in found})
        new_keys: list[str] = []
        for part in parts:
            if part.key in self._ids:
                continue
            result = conn.execute(
                sa.insert(t.machines).values(
                    key=part.key,
                    kind=part.kind,
                    host_id=part.host_id,
                    hostname=part.hostname,
                    name=part.name,
                    image=part.image,
                    labels=json.dumps(part.labels, sort_keys=True),
                    state=part.state,
                    health=part.health,
                    restart_count=part.restart_count,
                    first_seen_ms=ts_ms,
                    last_seen_ms=ts_ms,
                    last_received_ms=received_ms,
                    latest_ts_ms=ts_ms,
                    latest_metrics=json.dumps(part.metrics),
                    latest_sample=json.dumps(part.sample),
                )
            )
            primary_key = result.inserted_primary_key
            assert primary_key is not None
            self._ids[part.key] = int(primary_key[0])
            new_keys.append(part.key)
        return new_keys

    def forget(self) -> None:
        """Drop the id cache (after a reconnect to a different database, in tests)."""
        self._ids.clear()

    def ingest(self, batch: Batch, received_at: datetime) -> IngestResult:
        parts = machine_samples(batch)
        ts_ms = to_ms(batch.timestamp)
        received_ms = to_ms(received_at)
        if not parts:
            return IngestResult(stored=0, duplicates=0, new_machines=[])
        try:
            return self._write(parts, ts_ms, received_ms)
        except BaseException:
            self._ids.clear()  # ids cached inside a rolled-back transaction are not real
            raise

    def _write(self, parts: list[MachineSample], ts_ms: int, received_ms: int) -> IngestResult:
        with self._engine.begin() as conn:
            new_keys = self._machine_ids(conn, parts, ts_ms, received_ms)
            ids = [self._ids[p.key] for p in parts]
            present = {
                int(row[0])
                for row in conn.execute(
                    sa.select(t.samples.c.machine_id).where(
                        t.samples.c.ts_ms == ts_ms, t.samples.c.machine_id.in_(ids)
                    )
                )
            }
            fresh = [(i, p) for i, p in zip(ids, parts, strict=True) if i not in present]
            if fresh:
                conn.execute(self._insert_samples, [raw_row(i, ts_ms, p.metrics) for i, p in fresh])
                for upsert, width in zip(self._upserts, self._widths, strict=True):
                    bucket = ts_ms - ts_ms % width
                    conn.execute(upsert, [rollup_row(i, bucket, p.metrics) for i, p in fresh])
                conn.execute(
                    _INVENTORY_UPDATE,
                    [
                        {
                            "b_id": i,
                            "b_ts": ts_ms,
                            "b_received": received_ms,
                            "b_hostname": p.hostname,
                            "b_image": p.image,
                            "b_labels": json.dumps(p.labels, sort_keys=True),
                            "b_state": p.state,
                            "b_health": p.health,
                            "b_restart_count": p.restart_count,
                            "b_metrics": json.dumps(p.metrics),
                            "b_sample": json.dumps(p.sample),
                        }
                        for i, p in fresh
                    ],
                )
        return IngestResult(
            stored=len(fresh), duplicates=len(parts) - len(fresh), new_machines=new_keys
        )
