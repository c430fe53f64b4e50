"""The read path for charts: pick raw or a rollup so a range fits in ``max_points``.

Tier choice for a range of ``span`` ms and ``max_points``:

- ``span / max_points < 60 s``: raw. Points are returned as stored when they fit; otherwise
  raw rows are averaged into equal buckets of whole seconds.
- ``span / max_points < 1 h``: the 1 m rollup, merged into wider buckets when needed.
- otherwise: the 1 h rollup, merged likewise.

Every query is a primary-key range scan on (machine_id, ts/bucket). Rollup tiers hold only
minutes ``Storage.roll_up`` has closed (below the watermark in ``rollup_progress``); the rest
of the range — the open minute, or everything before the first roll-up — is aggregated
from raw rows into the same buckets and merged, so a chart never lags ingest.
"""

from __future__ import annotations

import math
from datetime import datetime

import sqlalchemy as sa

from srvmon_server.storage import tables as t
from srvmon_server.storage.clock import to_ms
from srvmon_server.storage.errors import InvalidQuery
from srvmon_server.storage.records import Resolution, Series
from srvmon_server.storage.rollup import read_watermark
from srvmon_server.storage.settle import raw_rows

Point = tuple[float, float, float, float]
MINUTE_MS = 60_000
HOUR_MS = 3_600_000


def choose_tier(span_ms: int, max_points: int) -> Resolution:
    per_point = span_ms / max_points
    if per_point < MINUTE_MS:
        return "raw"
    if per_point < HOUR_MS:
        return "1m"
    return "1h"


def bucket_width(span_ms: int, max_points: int, unit_ms: int) -> int:
    """The narrowest multiple of ``unit_ms`` giving at most ``max_points`` buckets."""
    units = max(1, math.ceil(span_ms / max_points / unit_ms))
    width = units * unit_ms
    # a range not aligned to the width can touch one extra bucket
    while math.floor((span_ms + width - 1) / width) + 1 > max_points > 1:
        width += unit_ms
    return width


def _raw(
    conn: sa.Connection, machine_id: int, metric: str, *, start: int, end: int, max_points: int
) -> Series:
    raw = raw_rows(conn.dialect.name)
    value = raw.c[t.raw_column(metric)]
    where = (
        raw.c.machine_id == machine_id,
        raw.c.ts_ms >= start,
        raw.c.ts_ms <= end,
        value.is_not(None),
    )
    rows = conn.execute(
        sa.select(raw.c.ts_ms, value).where(*where).order_by(raw.c.ts_ms).limit(max_points + 1)
    ).all()
    if len(rows) <= max_points:
        points = [(ts / 1000, float(v), float(v), float(v)) for ts, v in rows]
        return Series(resolution="raw", bucket_seconds=0.0, points=points)
    width = bucket_width(end - start, max_points, 1000)
    bucket = (raw.c.ts_ms - raw.c.ts_ms % width).label("bucket")
    grouped = conn.execute(
        sa.select(bucket, sa.func.avg(value), sa.func.min(value), sa.func.max(value))
        .where(*where)
        .group_by(bucket)
        .order_by(bucket)
    ).all()
    points = [(b / 1000, float(a), float(lo), float(hi)) for b, a, lo, hi in grouped]
    return Series(resolution="raw", bucket_seconds=width / 1000, points=points)


Bucket = tuple[int, float, float, float | None, float | None]
"""(bucket start ms, count, sum, min, max) of one output bucket."""


def _merge(parts: list[Bucket]) -> list[Point]:
    """Combine buckets with the same start (rollup rows and the raw tail) into points."""
    merged: dict[int, list[float]] = {}
    for bucket, count, total, low, high in parts:
        if count <= 0 or low is None or high is None:
            continue
        seen = merged.get(bucket)
        if seen is None:
            merged[bucket] = [float(count), float(total), float(low), float(high)]
        else:
            seen[0] += float(count)
            seen[1] += float(total)
            seen[2] = min(seen[2], float(low))
            seen[3] = max(seen[3], float(high))
    return [(b / 1000, v[1] / v[0], v[2], v[3]) for b, v in sorted(merged.items())]


def _raw_tail(
    conn: sa.Connection, machine_id: int, metric: str, *, start: int, end: int, width: int
) -> list[Bucket]:
    """Raw rows not yet rolled up, aggregated into the output buckets."""
    if start > end:
        return []
    raw = raw_rows(conn.dialect.name)
    value = raw.c[t.raw_column(metric)]
    bucket = (raw.c.ts_ms - raw.c.ts_ms % width).label("bucket")
    rows = conn.execute(
        sa.select(
            bucket, sa.func.count(value), sa.func.sum(value), sa.func.min(value), sa.func.max(value)
        )
        .where(
            raw.c.machine_id == machine_id,
            raw.c.ts_ms >= start,
            raw.c.ts_ms <= end,
            value.is_not(None),
        )
        .group_by(bucket)
    ).all()
    return [(int(b), float(c), float(s), lo, hi) for b, c, s, lo, hi in rows]


def _rollup(
    conn: sa.Connection,
    machine_id: int,
    metric: str,
    *,
    start: int,
    end: int,
    max_points: int,
    resolution: Resolution,
    rolled_below: int | None,
) -> Series:
    """Rollup rows below the watermark, raw rows from the watermark on, merged per bucket."""
    table, unit = t.ROLLUPS[resolution]
    n_name, sum_name, min_name, max_name = t.rollup_columns(metric)
    n, total, low, high = table.c[n_name], table.c[sum_name], table.c[min_name], table.c[max_name]
    first_bucket = start - start % unit
    width = bucket_width(end - first_bucket, max_points, unit)
    # the bucket holding the watermark is partial in the rollup: read it from raw rows
    tail_from = first_bucket if rolled_below is None else rolled_below - rolled_below % unit
    tail_from = max(tail_from, first_bucket)
    where = (
        table.c.machine_id == machine_id,
        table.c.bucket_ms >= first_bucket,
        table.c.bucket_ms <= min(end, tail_from - 1),
        n > 0,
    )
    parts: list[Bucket] = []
    if tail_from > first_bucket:
        if width == unit:
            rows = conn.execute(sa.select(table.c.bucket_ms, n, total, low, high).where(*where))
        else:
            bucket = (table.c.bucket_ms - table.c.bucket_ms % width).label("bucket")
            rows = conn.execute(
                sa.select(
                    bucket, sa.func.sum(n), sa.func.sum(total), sa.func.min(low), sa.func.max(high)
                )
                .where(*where)
                .group_by(bucket)
            )
        parts = [(int(b), float(c), float(s), lo, hi) for b, c, s, lo, hi in rows]
    parts += _raw_tail(conn, machine_id, metric, start=tail_from, end=end, width=width)
    return Series(resolution=resolution, bucket_seconds=width / 1000, points=_merge(parts))


def query_series(
    conn: sa.Connection,
    machine_id: int | None,
    metric: str,
    *,
    start: datetime,
    end: datetime,
    max_points: int,
) -> Series:
    """Points of ``metric`` for one machine between ``start`` and ``end`` (inclusive)."""
    if metric not in t.METRIC_NAMES:
        raise InvalidQuery(f"unknown metric {metric!r}; known metrics: {', '.join(t.METRIC_NAMES)}")
    if max_points < 1:
        raise InvalidQuery(f"max_points must be >= 1, got {max_points}")
    try:
        start_ms, end_ms = to_ms(start), to_ms(end)
    except ValueError as error:
        raise InvalidQuery(str(error)) from None
    if end_ms < start_ms:
        raise InvalidQuery("end is before start")
    resolution = choose_tier(max(end_ms - start_ms, 1), max_points)
    if machine_id is None:
        return Series(resolution=resolution, bucket_seconds=0.0, points=[])
    if resolution == "raw":
        return _raw(conn, machine_id, metric, start=start_ms, end=end_ms, max_points=max_points)
    rolled_below, _ = read_watermark(conn)
    return _rollup(
        conn,
        machine_id,
        metric,
        start=start_ms,
        end=end_ms,
        max_points=max_points,
        resolution=resolution,
        rolled_below=rolled_below,
    )
