"""Deleting a machine (issue 17): ``DELETE /api/v1/machines/{key}`` removes a host with its
containers (or one container) and everything stored of it but its alert history; it
re-appears only if it reports again, afresh."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from urllib.parse import quote

import sqlalchemy as sa

from srvmon_server.storage import Storage
from srvmon_server.storage import tables as t
from tests.server.harness import T0, FakeClock, RunningServer, SseReader, make_batch
from tests.server.test_time_sanity import roll_up_now
from tests.storage.factory import batch, raw

CPU = {"id": "cpu", "name": "cpu", "metric": "cpu_percent", "warn": 80.0, "for_seconds": 0}


def rows(storage: Storage, table: sa.FromClause, ids: set[int]) -> int:
    with storage.engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(table).where(table.c.machine_id.in_(ids))
        return int(conn.execute(query).scalar_one())


def machine_ids(storage: Storage) -> dict[str, int]:
    with storage.engine.connect() as conn:
        return {k: int(i) for k, i in conn.execute(sa.select(t.machines.c.key, t.machines.c.id))}


def host_keys(server: RunningServer) -> dict[str, list[str]]:
    """Host key → its container keys, as the fleet (hosts only) and each host's
    ``/containers`` answer them."""
    hosts = server.request("GET", "/api/v1/machines").json()["hosts"]
    out = {}
    for host in hosts:
        answer = server.request("GET", f"/api/v1/machines/{quote(host['key'], safe='')}/containers")
        out[host["key"]] = sorted(c["key"] for c in answer.json()["containers"])
    return out


def test_deleting_a_host_removes_it_with_its_containers(
    server_any_db: RunningServer, clock: FakeClock
) -> None:
    """h1 (two containers, a firing alert, 20 s of samples rolled up) is deleted: its
    inventory, samples, rollups, alert state, live alert and /metrics series go; h2 and
    the alert history stay; an ingest token may not delete (403); h1 reporting again
    starts afresh (first_seen and its series are new)."""
    server = server_any_db
    storage = server.storage
    assert server.request("POST", "/api/v1/rules", json.dumps(CPU)).status == 201
    for second in range(20):
        at = T0 + timedelta(seconds=second)
        for host in ("h1", "h2"):
            server.ingest(make_batch(host, at=at, cpu=95.0, containers=(("web", 1.0), ("db", 2.0))))
    firing = [a["machine_key"] for a in server.request("GET", "/api/v1/alerts").json()["alerts"]]
    assert set(firing) == {"h1", "h2"}
    clock.advance(380)  # nothing newer arrives: the minute closes 5 min + 10 s after its end
    roll_up_now(server).result(timeout=30)  # on the server's DB thread
    ids = machine_ids(storage)
    doomed = {ids[k] for k in ("h1", "h1:web", "h1:db")}
    assert rows(storage, raw(storage), doomed) == 60 and rows(storage, t.rollup_1m, doomed) == 3
    history_before = len(server.request("GET", "/api/v1/alerts/history").json()["events"])

    denied = server.request("DELETE", "/api/v1/machines/h1", token="read-token")
    assert denied.status == 403
    gone = server.request("DELETE", "/api/v1/machines/h1")
    assert gone.status == 204, gone.body

    assert host_keys(server) == {"h2": ["h2:db", "h2:web"]}
    for path in ("/api/v1/machines/h1", "/api/v1/machines/h1%3Aweb"):
        assert server.request("GET", path).status == 404
    assert rows(storage, raw(storage), doomed) == 0
    assert rows(storage, t.rollup_1m, doomed) == rows(storage, t.rollup_1h, doomed) == 0
    with storage.engine.connect() as conn:
        saved = set(conn.execute(sa.select(t.alert_machines.c.key)).scalars())
    assert not saved & {"h1", "h1:web", "h1:db"} and "h2" in saved
    active = server.request("GET", "/api/v1/alerts").json()["alerts"]
    hosts = {a["host_id"] for a in active}
    assert "h2" in hosts and "h1" not in hosts
    metrics = server.request("GET", "/metrics").body.decode()
    assert 'host_id="h2"' in metrics and not re.search(r'host_id="h1"', metrics)
    history = server.request("GET", "/api/v1/alerts/history").json()["events"]
    assert len(history) == history_before  # history is kept
    assert server.request("DELETE", "/api/v1/machines/h1").status == 404

    back = T0 + timedelta(minutes=5)
    assert server.ingest(make_batch("h1", at=back, cpu=10.0)).status == 200
    again = server.request("GET", "/api/v1/machines/h1").json()
    assert again["first_seen"] == "2026-11-25T10:05:00Z"
    series = server.request(
        "GET",
        "/api/v1/machines/h1/series?metric=cpu_percent&from=2026-11-25T09:00:00Z&to=2026-11-25T10:10:00Z",
    ).json()["points"]
    assert [p[1] for p in series] == [10.0]
    assert host_keys(server)["h1"] == []


def test_deleting_one_container_leaves_its_host(server: RunningServer) -> None:
    """``host:container`` deletes that container only."""
    server.ingest(make_batch("h1", containers=(("web", 1.0), ("db", 2.0))))
    assert server.request("DELETE", f"/api/v1/machines/{quote('h1:web', safe='')}").status == 204
    assert host_keys(server) == {"h1": ["h1:db"]}


def deleted_events(stream: SseReader, count: int) -> list[dict[str, str]]:
    """The data of the next ``count`` ``machine_deleted`` events on ``stream``."""
    found: list[dict[str, str]] = []
    stream.until(
        lambda f: (
            (f.get("event") == "machine_deleted" and found.append(f["data"]) is None)
            and len(found) == count
        )
    )
    return found


def test_every_dashboard_view_hears_of_the_deletion(server: RunningServer) -> None:
    """One ``machine_deleted`` event per machine deleted (the host, then its containers)
    reaches the fleet view, the alerts view and every host view (each has every alert,
    whose machine is gone), the deleted host's own and another's alike."""
    server.ingest(make_batch("h1", containers=(("web", 1.0), ("db", 2.0))))
    server.ingest(make_batch("h2", containers=(("web", 1.0),)))
    views = {
        path: SseReader(server.port, f"/api/v1/events?{path}")
        for path in ("view=fleet", "view=alerts", "view=host&host=h1")
    }
    other = SseReader(server.port, "/api/v1/events?view=host&host=h2")
    try:
        assert server.request("DELETE", "/api/v1/machines/h1").status == 204
        expected = [
            {"key": "h1", "host_key": "h1"},
            {"key": "h1:db", "host_key": "h1"},
            {"key": "h1:web", "host_key": "h1"},
        ]
        for stream in (*views.values(), other):
            assert deleted_events(stream, 3) == expected
        assert (
            server.request("DELETE", f"/api/v1/machines/{quote('h2:web', safe='')}").status == 204
        )
        assert deleted_events(other, 1) == [{"key": "h2:web", "host_key": "h2"}]
    finally:
        for stream in (*views.values(), other):
            stream.close()


def test_rows_are_deleted_in_short_batches(server_any_db: RunningServer) -> None:
    """``delete_rows`` removes at most ``batch_rows`` rows per call (one short transaction
    each, so ingest goes on between them), raw rows first (on SQLite those moved into
    ``samples``, then the recent ones), then rollups."""
    storage = server_any_db.storage
    for second in range(30):
        storage.samples.ingest(batch(T0 + timedelta(seconds=second), containers=0), T0)
        if second == 14:
            storage.samples.settle()  # SQLite: 15 rows moved, 15 to come stay recent
    doomed = storage.samples.doomed("h1")
    assert doomed is not None and list(doomed.values()) == ["h1"]
    remaining: list[int] = []
    while storage.samples.delete_rows(list(doomed), batch_rows=7):
        remaining.append(rows(storage, raw(storage), set(doomed)))
    if storage.dialect == "sqlite":
        assert remaining == [23, 16, 15, 8, 1, 0]
    else:
        assert remaining == [23, 16, 9, 2, 0]
    storage.samples.drop_machines(doomed)
    assert storage.samples.machine("h1") is None
    assert storage.samples.ingest(batch(T0, containers=0), T0).new_machines == ["h1"]
