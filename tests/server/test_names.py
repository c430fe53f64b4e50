"""Names where people type them: /api/v1/resolve, /machines/{name}/rules and the history
filter resolve hostnames, host/container names and globs through one resolver; a name two
machines share is said so."""

from __future__ import annotations

import json
from urllib.parse import quote

from attrs import evolve

from srvmon_core.alert_state import AlertEvent
from tests.server.harness import T0, FakeClock, make_batch
from tests.server.test_alerting import only_rules

HOT = {
    "id": "hot",
    "name": "Hot",
    "metric": "cpu_percent",
    "warn": 50,
    "selector": {"kind": "any"},
}
EVENT_TIMES = {"at": T0, "started_at": T0}
A = "3d1282c0aa0000000000000000000001"
B = "77ab0e11ff0000000000000000000002"
C = "c0c0c0c0c00000000000000000000003"


def room(server, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    """Two hosts called vm (A with containers db and web-1, B bare) and web-2 (C, db)."""
    only_rules(server, HOT)
    for host, name, containers in (
        (A, "vm", (("db", 90.0), ("web-1", 90.0))),
        (B, "vm", ()),
        (C, "web-2", (("db", 90.0),)),
    ):
        batch = make_batch(host_id=host, cpu=90.0, at=clock.now, containers=containers)
        assert server.ingest(evolve(batch, hostname=name)).status == 200


def resolve(server, pattern: str) -> dict:  # type: ignore[no-untyped-def, type-arg]
    answer = server.request("GET", f"/api/v1/resolve?machine={quote(pattern)}")
    assert answer.status == 200, answer.body
    return answer.json()  # type: ignore[no-any-return]


def test_resolve_names_keys_and_globs(server, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    """Each pattern picks these shown names; vm is shared by two hosts and the answer says
    so with both keys."""
    room(server, clock)
    cases = {
        "vm": ["vm", "vm"],
        "vm/db": ["vm/db"],
        "web-*": ["vm/web-1", "web-2"],
        "*/db": ["vm/db", "web-2/db"],
        "3d12*": ["vm", "vm/db", "vm/web-1"],
        "nobody": [],
    }
    for pattern, shown in cases.items():
        assert [m["display"] for m in resolve(server, pattern)["machines"]] == shown, pattern
    vm = resolve(server, "vm")
    assert vm["count"] == 2 and vm["shared"] == {"vm": [A, B]}
    assert resolve(server, "*")["count"] == 6
    assert resolve(server, "vm/db")["machines"][0]["key"] == f"{A}:db"


def test_one_machine_by_name(server, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    """/machines/{name}/rules takes a name: vm/db and web-2 work, the shared vm is a 409
    listing both keys, an unknown name a 404; a rule selecting vm/db applies to it only."""
    room(server, clock)
    override = dict(HOT, id="db-hot", warn=95, selector={"kind": "any", "machine": "vm/db"})
    assert server.request("POST", "/api/v1/rules", json.dumps(override)).status == 201
    db = server.request("GET", f"/api/v1/machines/{quote('vm/db', safe='')}/rules").json()
    assert (db["key"], [r["id"] for r in db["rules"]]) == (f"{A}:db", ["db-hot"])
    other = server.request("GET", f"/api/v1/machines/{quote(C + ':db')}/rules").json()
    assert [r["id"] for r in other["rules"]] == ["hot"]
    assert server.request("GET", "/api/v1/machines/web-2").json()["key"] == C
    shared = server.request("GET", "/api/v1/machines/vm/rules")
    error = shared.json()["error"]
    assert (shared.status, error["code"], error["field"]) == (409, "ambiguous_machine", "key")
    assert A in error["message"] and B in error["message"]
    missing = server.request("GET", "/api/v1/machines/nobody/rules")
    assert (missing.status, missing.json()["error"]["code"]) == (404, "unknown_machine")


def test_history_filter_by_name_and_glob(server, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    """The history's machine filter resolves names and globs; the answer lists what it
    picked and the shared names; a key of a machine the inventory never had still works."""
    room(server, clock)

    def machines(pattern: str) -> tuple[list[str], dict]:  # type: ignore[type-arg]
        answer = server.request("GET", f"/api/v1/alerts/history?machine={quote(pattern)}")
        assert answer.status == 200, answer.body
        data = answer.json()
        shown = sorted(
            e["machine_name"]
            if e["machine_kind"] == "host"
            else f"{e['hostname']}/{e['machine_name']}"
            for e in data["events"]
        )
        return shown, data["machines"]

    assert machines("vm/db")[0] == ["vm/db"]
    assert machines("web-*")[0] == ["vm/web-1", "web-2"]
    vm, picked = machines("vm")
    assert vm == ["vm", "vm"] and picked["shared"] == {"vm": [A, B]}
    assert machines("*/db")[0] == ["vm/db", "web-2/db"]
    assert len(machines("*")[0]) == 6
    assert machines("nobody") == (
        [],
        {"pattern": "nobody", "count": 0, "machines": [], "shared": {}},
    )
    every = server.request("GET", "/api/v1/alerts/history").json()
    assert "machines" not in every and len(every["events"]) == 6
    stored = {k: v for k, v in every["events"][0].items() if k not in ("machine", "id")}
    gone = AlertEvent(**{**stored, "machine_key": "gone-host", **EVENT_TIMES})
    server.storage.history.append([gone])
    assert machines("gone-host")[1]["count"] == 0
    found = server.request("GET", "/api/v1/alerts/history?machine=gone-host").json()["events"]
    assert [e["machine_key"] for e in found] == ["gone-host"]
