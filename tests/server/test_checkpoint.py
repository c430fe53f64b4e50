"""The running server copies SQLite's write-ahead log into the database file every second,
on a thread of its own (docs/storage.md): the file alone holds what was ingested, without
any commit of the DB thread having copied it."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

from srvmon_server.storage import Checkpoint
from tests.server.conftest import StartServer
from tests.server.harness import T0, make_batch
from tests.storage.test_open import rows_in_file_alone


def test_the_server_checkpoints_on_a_thread_of_its_own(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server()
    threads: list[str] = []
    checkpoint = server.storage.checkpoint

    def recorded() -> Checkpoint | None:
        threads.append(threading.current_thread().name)
        return checkpoint()

    server.storage.checkpoint = recorded  # type: ignore[method-assign]
    for second in range(10):
        batch = make_batch("h1", T0 + timedelta(seconds=second), containers=(("web", 1.0),))
        assert server.ingest(batch).json() == {"stored": 2, "duplicates": 0}
    database = tmp_path / "srvmon.db"
    deadline = time.monotonic() + 5.0
    while (copied := rows_in_file_alone(database, tmp_path / "copy.db")) < 20:
        assert time.monotonic() < deadline, f"the file alone holds {copied} of 20 samples"
        time.sleep(0.2)
    assert threads, "the checkpoint job ran"
    assert {name.split("_")[0] for name in threads} == {"srvmon-checkpoint"}
