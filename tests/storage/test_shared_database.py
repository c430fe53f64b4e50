"""Several processes on one MariaDB database (server replicas): they start together on an
empty database, and take turns at the shared maintenance (roll-ups, pruning)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from srvmon_core.defaults import DEFAULT_RULES
from srvmon_server.storage import Storage
from tests.server.harness import make_batch


def test_four_processes_open_and_seed_one_empty_database_at_once(mariadb_url: str) -> None:
    """Four opens race on the schema and four seeds on the rules (what four replicas do
    at start): none fails, and the rules are inserted exactly once in all."""
    barrier = threading.Barrier(4)
    outcomes: list[object] = []

    def start() -> None:
        barrier.wait()
        try:
            storage = Storage.open(mariadb_url)
        except Exception as exc:  # recorded: the assertion shows it
            outcomes.append(exc)
            return
        try:
            barrier_seed.wait()
            outcomes.append(storage.rules.seed(DEFAULT_RULES))
        except Exception as exc:
            outcomes.append(exc)
        finally:
            storage.close()

    barrier_seed = threading.Barrier(4)
    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(outcomes, key=str) == sorted([len(DEFAULT_RULES), 0, 0, 0], key=str)
    check = Storage.open(mariadb_url)
    try:
        assert sorted(r.id for r in check.rules.all()) == sorted(r.id for r in DEFAULT_RULES)
    finally:
        check.close()


def test_one_process_rolls_up_while_the_others_skip(mariadb_url: str) -> None:
    """While one process holds the roll-up, another's roll_up does nothing (the work is
    the same for both) and pruning is skipped likewise; once free, it rolls up."""
    first, second = Storage.open(mariadb_url), Storage.open(mariadb_url)
    try:
        start = datetime(2026, 1, 1, tzinfo=UTC)
        for s in range(120):
            second.samples.ingest(make_batch("h1", start + timedelta(seconds=s)), start)
        later = start + timedelta(minutes=10)  # a quiet fleet: closed by the clock
        with first.database.try_exclusive("srvmon.roll_up") as mine:
            assert mine
            skipped = second.samples.roll_up(later)
            assert (skipped.minute_buckets, skipped.start_ms) == (0, None)
            with first.database.try_exclusive("srvmon.prune") as pruning:
                assert pruning
                assert second.retention.prune(later, raw_retention=timedelta(seconds=1)) == 0
        done = second.samples.roll_up(later)
        assert done.minute_buckets == 2  # h1's two closed minutes
    finally:
        first.close()
        second.close()
