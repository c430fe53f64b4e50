"""Rollups equal aggregates of the raw points; series picks its tier and respects max_points."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import timedelta

import pytest
import sqlalchemy as sa

from srvmon_server.storage import InvalidQuery, Storage
from srvmon_server.storage import tables as t
from tests.storage.factory import T0, batch, seconds


def ingest_random(storage: Storage, count: int, step: float, seed: int = 7) -> dict[float, float]:
    """Ingest ``count`` batches ``step`` s apart with random CPU; return {epoch s: host cpu}."""
    rng = random.Random(seed)
    values: dict[float, float] = {}
    for i in range(count):
        at = T0 + seconds(i * step)
        cpu = round(rng.uniform(0, 100), 3)
        storage.samples.ingest(batch(at, cpu=cpu, containers=1), at)
        values[at.timestamp()] = cpu
    return values


def expected_buckets(values: dict[float, float], width_s: int) -> dict[float, tuple[int, float]]:
    groups: dict[float, list[float]] = defaultdict(list)
    for ts, v in values.items():
        groups[ts - ts % width_s].append(v)
    return {b: (len(vs), sum(vs)) for b, vs in groups.items()}


def test_rollups_match_count_sum_min_max_of_the_raw_points(storage: Storage) -> None:
    """After a roll-up, every 1 m and 1 h rollup row equals count/sum/min/max computed from
    the inserted data (ingest itself leaves rollups to ``roll_up``)."""
    values = ingest_random(storage, 400, 7.5)  # 50 min of data across 2 hours and 51 minutes
    storage.samples.roll_up()
    with storage.engine.connect() as conn:
        host_id = conn.execute(sa.select(t.machines.c.id).where(t.machines.c.key == "h1")).scalar()
        for table, width_ms in t.ROLLUPS.values():
            n, total, low, high = t.rollup_columns("cpu_percent")
            rows = conn.execute(
                sa.select(
                    table.c.bucket_ms, table.c[n], table.c[total], table.c[low], table.c[high]
                )
                .where(table.c.machine_id == host_id)
                .order_by(table.c.bucket_ms)
            ).all()
            groups: dict[float, list[float]] = defaultdict(list)
            for ts, v in values.items():
                groups[ts - ts % (width_ms / 1000)].append(v)
            assert len(rows) == len(groups)
            for bucket_ms, c, s, lo, hi in rows:
                vs = groups[bucket_ms / 1000]
                assert c == len(vs)
                assert s == pytest.approx(sum(vs), rel=1e-12)
                assert (lo, hi) == (min(vs), max(vs))


def test_replays_do_not_double_count_rollups(storage: Storage) -> None:
    """Replaying batches leaves rollup counts and sums exactly as before."""
    for i in range(3):
        storage.samples.ingest(batch(T0 + seconds(i), cpu=10.0 * (i + 1)), T0)
    for i in range(3):
        storage.samples.ingest(batch(T0 + seconds(i), cpu=99.0), T0)
    series = storage.samples.series("h1", "cpu_percent", T0, T0 + timedelta(days=3), max_points=10)
    assert series.resolution == "1h"
    assert series.bucket_seconds == 8 * 3600  # 72 h / 10 points, rounded up to whole hours
    bucket = T0.timestamp() - T0.timestamp() % series.bucket_seconds
    assert series.points == [(bucket, 20.0, 10.0, 30.0)]


def test_absent_figures_are_not_counted_in_rollups(storage: Storage) -> None:
    """A container with no CPU figure (stopped) adds nothing to its cpu_percent rollup."""
    storage.samples.ingest(batch(T0, containers=1, container_cpu=50.0), T0)
    storage.samples.ingest(batch(T0 + seconds(1), containers=1, stopped=True), T0)
    storage.samples.ingest(batch(T0 + seconds(2), containers=1, container_cpu=70.0), T0)
    series = storage.samples.series(
        "h1:c0", "cpu_percent", T0, T0 + timedelta(hours=10), max_points=100
    )
    assert series.resolution == "1m"
    bucket = T0.timestamp() - T0.timestamp() % series.bucket_seconds
    assert series.points == [(bucket, 60.0, 50.0, 70.0)]
    raw = storage.samples.series("h1:c0", "cpu_percent", T0, T0 + seconds(10))
    assert [p[1] for p in raw.points] == [50.0, 70.0]


def test_short_ranges_return_raw_points_as_stored(storage: Storage) -> None:
    """15 minutes of 5 s data fit max_points: exact raw points, oldest first."""
    values = ingest_random(storage, 180, 5.0)
    series = storage.samples.series("h1", "cpu_percent", T0, T0 + timedelta(minutes=15))
    assert series.resolution == "raw"
    assert series.bucket_seconds == 0
    assert [(p[0], p[1]) for p in series.points] == sorted(values.items())
    assert all(p[1] == p[2] == p[3] for p in series.points)


def test_raw_is_bucketed_when_points_exceed_max_points(storage: Storage) -> None:
    """300 raw points with max_points=50: ≤ 50 averaged buckets whose counts cover every point."""
    values = ingest_random(storage, 300, 1.0)
    series = storage.samples.series("h1", "cpu_percent", T0, T0 + seconds(299), max_points=50)
    assert series.resolution == "raw"
    assert 0 < len(series.points) <= 50
    width = series.bucket_seconds
    assert width >= 6
    expected = expected_buckets(values, int(width))
    assert len(series.points) == len(expected)
    for ts, avg, low, high in series.points:
        n, total = expected[ts]
        assert avg == pytest.approx(total / n, rel=1e-12)
        members = [v for k, v in values.items() if ts <= k < ts + width]
        assert (low, high) == (min(members), max(members))


@pytest.mark.parametrize(
    ("span", "max_points", "resolution"),
    [
        (timedelta(minutes=15), 1000, "raw"),
        (timedelta(hours=1), 1000, "raw"),
        (timedelta(hours=24), 1000, "1m"),
        (timedelta(days=7), 1000, "1m"),
        (timedelta(days=7), 100, "1h"),
        (timedelta(days=60), 1000, "1h"),
    ],
)
def test_tier_choice_and_max_points(
    storage: Storage, span: timedelta, max_points: int, resolution: str
) -> None:
    """Short ranges read raw, long ones rollups; no range ever returns more than max_points."""
    ingest_random(storage, 200, 1800.0)  # 100 hours, one point every 30 min
    series = storage.samples.series("h1", "cpu_percent", T0, T0 + span, max_points=max_points)
    assert series.resolution == resolution
    assert 0 < len(series.points) <= max_points


def test_rollup_merging_keeps_exact_averages(storage: Storage) -> None:
    """1 m buckets merged into wider ones: avg = total sum / total count, not mean of means."""
    # minute 0: one point (10); minute 1: three points (20, 20, 50)
    for offset, cpu in [(0, 10.0), (60, 20.0), (61, 20.0), (62, 50.0)]:
        storage.samples.ingest(batch(T0 + seconds(offset), cpu=cpu, containers=0), T0)
    series = storage.samples.series(
        "h1", "cpu_percent", T0, T0 + timedelta(hours=4), max_points=100
    )
    assert series.resolution == "1m"
    assert series.bucket_seconds == 180
    assert series.points == [(T0.timestamp(), 25.0, 10.0, 50.0)]


def test_bad_series_requests_raise_invalid_query(storage: Storage) -> None:
    """Unknown metric, reversed range or max_points < 1 → InvalidQuery; unknown machine → empty."""
    with pytest.raises(InvalidQuery, match="unknown metric 'bogus'"):
        storage.samples.series("h1", "bogus", T0, T0 + seconds(1))
    with pytest.raises(InvalidQuery, match="before start"):
        storage.samples.series("h1", "cpu_percent", T0 + seconds(1), T0)
    with pytest.raises(InvalidQuery, match="max_points"):
        storage.samples.series("h1", "cpu_percent", T0, T0 + seconds(1), max_points=0)
    assert storage.samples.series("nobody", "cpu_percent", T0, T0 + seconds(60)).points == []
