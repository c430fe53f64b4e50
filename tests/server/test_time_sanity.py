"""Hostile clocks: samples outside the accepted window around the server's clock are refused
(422, counted), never stored; health answers within a second throughout; a sample dated
2099 cannot freeze a machine; the roll-up does bounded work per pass whatever is stored,
and shutdown finishes in bounded time."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from srvmon_agents.consumer.delivery import Verdict, classify, classify_many
from srvmon_core.codec import encode_batch
from srvmon_server.config import ServerConfig
from srvmon_server.storage import Storage
from srvmon_server.storage.rollup import MAX_CHUNKS_PER_CALL, read_watermark_of
from tests.server.harness import T0, WRITE, FakeClock, RunningServer, make_batch


def at(when: str) -> bytes:
    """A host + one container envelope (2 samples) stamped ``when``, written as
    docs/wire-format.md spells it (the encoder would not let year 1 through unchanged)."""
    body = json.loads(encode_batch(make_batch("clock", containers=(("web", 1.0),))))
    body["timestamp"] = when
    return json.dumps(body).encode()


def rejected_count(server: RunningServer) -> float:
    text = server.request("GET", "/metrics").body.decode()
    found = re.search(
        r'^srvmon_ingest_rejected_samples_total\{reason="timestamp"\} (\S+)$', text, re.M
    )
    assert found, "the rejected-samples counter is exposed"
    return float(found.group(1))


def roll_up_now(server: RunningServer) -> Future[None]:
    """Run the server's periodic roll-up job now (it runs every 5 s anyway)."""
    assert server._loop is not None and server.context is not None
    return asyncio.run_coroutine_threadsafe(server.context.periodic.roll_up(), server._loop)


class HealthWatch:
    """Polls /api/v1/health every 20 ms on its own thread; keeps each answer's latency."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.latencies: list[float] = []
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.perf_counter()
            status = self.server.request("GET", "/api/v1/health", token=None).status
            self.latencies.append(time.perf_counter() - began)
            self.statuses.append(status)
            self._stop.wait(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.mark.parametrize("when", ["1970-01-01T00:00:00Z", "0001-01-01T00:00:00Z"])
def test_ancient_samples_are_refused_counted_and_health_stays_fast(
    server_any_db: RunningServer, when: str
) -> None:
    """A sample dated 1970 or year 1 (a dead RTC) is a 422 ``timestamp_out_of_range`` at
    ``$.timestamp``, which the consumer dead-letters; each of its samples is counted; it
    stores nothing; /health answers within 1 s while a collector repeats it every 50 ms
    and through the roll-up that follows. (Before the window, the roll-up after a 1970
    sample held the DB thread, and health with it, for ~75 s.)"""
    server = server_any_db
    watch = HealthWatch(server)
    try:
        answers = []
        for _ in range(20):
            answers.append(server.request("POST", "/api/v1/ingest", at(when)))
            time.sleep(0.05)
        ok = server.ingest(make_batch("clock", at=T0, containers=(("web", 1.0),)))
        roll_up_now(server).result(timeout=30)
        time.sleep(0.2)
    finally:
        watch.stop()
    for resp in answers:
        assert resp.status == 422, resp.body
        error = resp.json()["error"]
        assert (error["code"], error["field"]) == ("timestamp_out_of_range", "$.timestamp")
        assert "before the server's clock" in error["message"]
        assert classify(resp.status, resp.body).verdict is Verdict.REJECTED
    assert ok.status == 200 and ok.json() == {"stored": 2, "duplicates": 0}
    assert rejected_count(server) == 20 * 2
    path = "/api/v1/machines/clock/series?metric=cpu_percent"
    day_1970 = server.request("GET", f"{path}&from=0&to=86400").json()["points"]
    last_hour = server.request("GET", path).json()["points"]
    assert day_1970 == [] and [p[0] for p in last_hour] == [T0.timestamp()]
    assert len(watch.latencies) >= 20 and set(watch.statuses) == {200}
    assert max(watch.latencies) < 1.0, max(watch.latencies)


def test_the_window_edges_and_batched_answers(start_server: object) -> None:
    """Defaults: 7 days back, 300 s ahead of the server's clock, both inclusive. In a
    ``{"batches": [...]}`` body the refused envelopes get their own 422 entry (the
    consumer dead-letters exactly those) and the others are stored."""
    server = start_server()  # type: ignore[operator]
    inside = [T0 - timedelta(days=7), T0 + timedelta(seconds=300)]
    outside = [T0 - timedelta(days=7, seconds=1), T0 + timedelta(seconds=301)]
    bodies = [encode_batch(make_batch("edge", at=when)) for when in [*inside, *outside]]
    resp = server.request("POST", "/api/v1/ingest", b'{"batches":[' + b",".join(bodies) + b"]}")
    assert resp.status == 200
    results = resp.json()["results"]
    assert results[:2] == [{"stored": 1, "duplicates": 0}] * 2
    assert [r["error"]["status"] for r in results[2:]] == [422, 422]
    assert "after the server's clock" in results[3]["error"]["message"]
    verdicts = classify_many(resp.status, resp.body, 4)
    assert isinstance(verdicts, list)
    assert [v.verdict for v in verdicts] == [Verdict.ACCEPTED] * 2 + [Verdict.REJECTED] * 2
    assert rejected_count(server) == 2


def test_the_window_is_configurable(start_server: object) -> None:
    """``max_sample_age_seconds`` / ``max_sample_ahead_seconds`` move the edges."""
    server = start_server(max_sample_age_seconds=60, max_sample_ahead_seconds=0)  # type: ignore[operator]
    assert server.ingest(make_batch("w", at=T0 - timedelta(seconds=60))).status == 200
    assert server.ingest(make_batch("w", at=T0 - timedelta(seconds=61))).status == 422
    assert server.ingest(make_batch("w", at=T0 + timedelta(milliseconds=1))).status == 422


def test_a_2099_sample_does_not_freeze_the_machine(server_any_db: RunningServer) -> None:
    """After a sample dated 2099 (refused), correct samples keep updating the machine's
    inventory: its figures and last_seen follow them."""
    server = server_any_db
    assert server.ingest(make_batch("fut", at=T0, cpu=10.0)).status == 200
    far = server.ingest(make_batch("fut", at=datetime(2099, 1, 1, tzinfo=UTC), cpu=99.0))
    assert far.status == 422
    for second, cpu in ((1, 20.0), (2, 30.0)):
        assert (
            server.ingest(make_batch("fut", at=T0 + timedelta(seconds=second), cpu=cpu)).status
            == 200
        )
    machine = server.request("GET", "/api/v1/machines/fut").json()
    assert machine["metrics"]["cpu_percent"] == 30.0
    assert machine["last_seen"] == "2026-11-25T10:00:02Z"


def test_roll_up_passes_are_bounded_whatever_is_stored(db_url: str) -> None:
    """A database written before the window (a 1970 and a year-1 sample stored beside
    current ones) makes the roll-up start in year 1. Each call skips stretches without
    samples and does at most MAX_CHUNKS_PER_CALL chunks: it returns in well under a
    second, and a handful of calls catch up with every bucket exact. (Walking 6-hour
    chunks from 1970 took ~75 s on one call; from year 1, hours.)"""
    clock = FakeClock(T0)
    store = Storage.open(db_url, clock=clock)
    try:
        for when in (datetime(1, 1, 1, tzinfo=UTC), datetime(1970, 1, 1, tzinfo=UTC)):
            store.samples.ingest(make_batch("old", at=when, cpu=5.0), T0)
        inserted: dict[float, float] = {}
        for minute in range(0, 3 * 24 * 60, 30):  # 3 days, every 30 min
            when = T0 - timedelta(days=3) + timedelta(minutes=minute)
            inserted[when.timestamp()] = float(minute % 7)
            store.samples.ingest(make_batch("now", at=when, cpu=inserted[when.timestamp()]), T0)
        calls, durations = 0, []
        while True:
            began = time.perf_counter()
            result = store.samples.roll_up(T0)
            durations.append(time.perf_counter() - began)
            calls += 1
            if not result.more:
                break
            assert calls < 10
        assert max(durations) < 1.0, durations
        assert calls == 1 + (3 * 4 + 2) // MAX_CHUNKS_PER_CALL  # 2 old chunks + 3 days
        series = store.samples.series("now", "cpu_percent", T0 - timedelta(days=3), T0, 72)
        assert (series.resolution, series.bucket_seconds) == ("1h", 7200)
        buckets: dict[float, list[float]] = {}
        for ts, value in inserted.items():
            buckets.setdefault(ts - ts % 7200, []).append(value)
        expected = [(b, sum(v) / len(v), min(v), max(v)) for b, v in sorted(buckets.items())]
        assert series.points == expected
        old = store.samples.series(
            "old",
            "cpu_percent",
            datetime(1969, 12, 1, tzinfo=UTC),
            datetime(1971, 1, 1, tzinfo=UTC),
            max_points=10,
        ).points
        assert [p[1] for p in old] == [5.0]
    finally:
        store.close()


def test_shutdown_finishes_in_bounded_time_during_a_catch_up(tmp_path: Path) -> None:
    """A server whose database holds a 1970 sample (stored before the window existed)
    runs its roll-up; health stays under a second meanwhile, and stopping the server
    takes seconds, not the length of a walk from 1970 (SIGTERM used to wait for it)."""
    clock = FakeClock(datetime.now(UTC))
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = Storage.open(url, clock=clock)
    store.samples.ingest(make_batch("old", at=datetime(1970, 1, 1, tzinfo=UTC)), clock())
    # older than rollup.IDLE_MS: its minute is closed by the clock
    store.samples.ingest(make_batch("old", at=clock() - timedelta(minutes=7)), clock())
    server = RunningServer(store, ServerConfig(write_tokens={WRITE}), clock)
    try:
        watch = HealthWatch(server)
        job = roll_up_now(server)
        time.sleep(0.5)
        watch.stop()
        assert max(watch.latencies) < 1.0
    finally:
        began = time.perf_counter()
        server.stop()
        stopped = time.perf_counter() - began
        store.close()
    assert stopped < 5.0, stopped
    assert job.done() and job.exception() is None
    reopened = Storage.open(url, clock=clock)
    try:
        below, dirty = read_watermark_of(reopened.engine)
        assert dirty is None and below is not None
        assert below > (clock() - timedelta(minutes=7)).timestamp() * 1000  # caught up
    finally:
        reopened.close()
