"""Server replicas starting together on one empty MariaDB database: every one opens it,
the schema is created once and the default rules are seeded once."""

from __future__ import annotations

import threading

from srvmon_core.defaults import DEFAULT_RULES
from srvmon_server.storage import Storage


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
