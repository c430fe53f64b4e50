"""Machine names: one pattern picks the same machines in rule selectors, silence matchers
and the server's resolver (srvmon_core.names)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from srvmon_core.alert_state import AlertEvent, MachineRef
from srvmon_core.names import MachineName, display_name, pattern_matches, resolve
from srvmon_core.rules import Selector
from srvmon_core.silences import Silence, SilenceMatchers

pytestmark = pytest.mark.core

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
HOST_A = "3d1282c0aa"
HOST_B = "77ab0e11ff"
ROOM = [
    MachineName(key=HOST_A, kind="host", host_id=HOST_A, hostname="vm", name="vm"),
    MachineName(key=f"{HOST_A}:db", kind="container", host_id=HOST_A, hostname="vm", name="db"),
    MachineName(
        key=f"{HOST_A}:web-1", kind="container", host_id=HOST_A, hostname="vm", name="web-1"
    ),
    MachineName(key=HOST_B, kind="host", host_id=HOST_B, hostname="web-2", name="web-2"),
    MachineName(key=f"{HOST_B}:db", kind="container", host_id=HOST_B, hostname="web-2", name="db"),
]


@pytest.mark.parametrize(
    ("pattern", "displays"),
    [
        ("vm", ["vm"]),
        ("web-*", ["vm/web-1", "web-2"]),  # a glob never reaches through the host/ form
        ("vm/db", ["vm/db"]),
        ("vm/*", ["vm/db", "vm/web-1"]),
        ("*/db", ["vm/db", "web-2/db"]),
        ("db", ["vm/db", "web-2/db"]),
        ("3d12*", ["vm", "vm/db", "vm/web-1"]),  # keys: the host and its containers
        (f"{HOST_B}:db", ["web-2/db"]),
        ("*", ["vm", "vm/db", "vm/web-1", "web-2", "web-2/db"]),
        ("VM", []),  # case-sensitive, as every fnmatch glob in srvmon
        ("nothing", []),
    ],
)
def test_a_pattern_picks_these_machines(pattern: str, displays: list[str]) -> None:
    """Names, host/container names, keys and globs, resolved over a small room."""
    assert [m.display for m in resolve(pattern, ROOM).machines] == displays


def test_shared_names_are_reported() -> None:
    """Two containers called db: resolving "db" says which keys share the shown name only
    when the shown names collide (vm/db and web-2/db do not); two hosts named vm do."""
    assert resolve("db", ROOM).shared == {}
    twin = MachineName(key="99", kind="host", host_id="99", hostname="vm", name="vm")
    answer = resolve("vm", [*ROOM, twin])
    assert answer.keys == (HOST_A, "99")
    assert answer.shared == {"vm": (HOST_A, "99")}


def test_selector_and_silence_use_the_same_names() -> None:
    """A rule selector and a silence matcher with vm/db pick the container db of vm only;
    web-* picks a host called web-2 and a container called web-1."""
    db = MachineRef(key=f"{HOST_A}:db", kind="container", host_id=HOST_A, hostname="vm", name="db")
    other_db = MachineRef(
        key=f"{HOST_B}:db", kind="container", host_id=HOST_B, hostname="web-2", name="db"
    )
    assert Selector(machine="vm/db").matches(db)
    assert not Selector(machine="vm/db").matches(other_db)
    assert Selector(machine="vm/db").specificity == 2
    assert not Selector(machine="web-*").matches(other_db)  # db on host web-2: not web-*

    def event(ref: MachineRef) -> AlertEvent:
        return AlertEvent(
            fingerprint="f",
            kind="firing",
            rule_id="r",
            rule_name="r",
            machine_key=ref.key,
            machine_kind=ref.kind,
            machine_name=ref.name,
            host_id=ref.host_id,
            hostname=ref.hostname,
            metric=None,
            level="warning",
            from_state="ok",
            to_state="firing",
            value=None,
            threshold=None,
            started_at=T0,
            at=T0,
        )

    def silence(**matchers: str) -> Silence:
        return Silence(
            id="s",
            matchers=SilenceMatchers(**matchers),
            starts_at=T0,
            ends_at=T0 + timedelta(hours=1),
            created_at=T0,
        )

    assert silence(machine="vm/db").matches(event(db), T0)
    assert not silence(machine="vm/db").matches(event(other_db), T0)
    assert silence(host="web-2").matches(event(other_db), T0)  # the hostname
    assert silence(host=HOST_B).matches(event(other_db), T0)  # the host id


def test_display_and_exact_names() -> None:
    """A host shows as its hostname, a container as host/name; an exact pattern is not a
    substring match."""
    assert display_name("host", "vm", "vm") == "vm"
    assert display_name("container", "vm", "db") == "vm/db"
    assert not pattern_matches("v", ("k", "vm"))
    assert pattern_matches("v?", ("k", "vm"))
