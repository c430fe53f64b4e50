"""Rules (seed once), engine state, alert history with filters and pages, and silences:
typed records in, the same typed records out."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from srvmon_core.alert_state import AlertEvent
from srvmon_core.rules import Rule
from srvmon_core.silences import SilenceMatchers, SilenceRequest
from srvmon_server.storage import InvalidQuery, Storage
from srvmon_server.storage import tables as t
from tests.storage.factory import T0, alert_event

CPU = Rule(id="cpu-high", name="CPU high", metric="cpu_percent", warn=80.0, crit=95.0)
MEM = Rule(id="mem-high", name="Memory high", metric="memory_percent", warn=85.0, crit=95.0)


def test_seed_inserts_defaults_only_on_the_first_start(db_url: str) -> None:
    """Changed and deleted defaults stay changed/deleted across restarts and later seeds."""
    store = Storage.open(db_url)
    assert store.rules.seed([CPU, MEM]) == 2
    assert store.rules.all() == [CPU, MEM]
    changed = Rule(id="cpu-high", name="CPU high", metric="cpu_percent", warn=70.0, crit=95.0)
    store.rules.put(changed)
    assert store.rules.delete("mem-high") is True
    assert store.rules.delete("mem-high") is False
    store.close()
    store = Storage.open(db_url)
    try:
        assert store.rules.seed([CPU, MEM]) == 0
        assert store.rules.all() == [changed]
        assert store.rules.get("mem-high") is None
    finally:
        store.close()


def test_put_rule_inserts_or_replaces_by_id(storage: Storage) -> None:
    """put adds new ids at the end and replaces existing ones in place."""
    b1 = Rule(id="b", name="b", metric="load_1", warn=1.0)
    a = Rule(id="a", name="a", metric="load_1", warn=2.0)
    b3 = Rule(id="b", name="b", metric="load_1", warn=3.0)
    for rule in (b1, a, b3):
        storage.rules.put(rule)
    assert storage.rules.all() == [b3, a]
    assert storage.rules.get("a") == a


def test_a_stored_rule_that_no_longer_parses_is_skipped(storage: Storage) -> None:
    """A row whose body is not a valid rule any more is left out of the list (and logged),
    the others still load."""
    storage.rules.put(CPU)
    with storage.engine.begin() as conn:
        conn.execute(sa.insert(t.rules).values(id="old", body='{"id": "old"}', position=9))
    assert storage.rules.all() == [CPU]
    assert storage.rules.get("old") is None


def event(i: int, **overrides: Any) -> AlertEvent:
    return alert_event(
        overrides.pop("at", T0 + timedelta(minutes=i)),
        value=float(i),
        fingerprint=f"fp{i % 3}",
        rule_id="cpu-high" if i % 2 else "mem-high",
        machine_key=f"h{i % 2}:c{i % 3}",
        machine_kind="container",
        host_id=f"h{i % 2}",
        level="critical" if i % 4 == 0 else "warning",
        to_state="firing" if i % 5 else "resolved",
        started_at=T0,
        silenced=i % 7 == 0,
        **overrides,
    )


def test_history_gives_back_the_events_appended(storage: Storage) -> None:
    """Every field of an appended event comes back equal, with an increasing id."""
    events = [event(i) for i in range(3)]
    storage.history.append(events)
    page = storage.history.page(start=None, end=None)
    assert [e.event for e in page.entries] == list(reversed(events))
    ids = [e.id for e in page.entries]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 3


def test_history_pages_newest_first_with_exact_pages(storage: Storage) -> None:
    """25 events, pages of 10: 10 + 10 + 5, newest first, no overlap, last cursor None."""
    storage.history.append([event(i) for i in range(25)])
    seen: list[float | None] = []
    cursor = None
    sizes = []
    for _ in range(5):
        page = storage.history.page(start=None, end=None, limit=10, cursor=cursor)
        cursor = page.next_cursor
        sizes.append(len(page.entries))
        seen += [e.event.value for e in page.entries]
        if cursor is None:
            break
    assert sizes == [10, 10, 5]
    assert seen == [float(i) for i in range(24, -1, -1)]


def test_history_orders_equal_timestamps_by_insertion(storage: Storage) -> None:
    """Events at the same instant page stably (keyset on at, id) without loss or repeats."""
    storage.history.append([event(i, at=T0) for i in range(7)])
    first = storage.history.page(start=None, end=None, limit=4)
    second = storage.history.page(start=None, end=None, limit=4, cursor=first.next_cursor)
    values = [e.event.value for e in first.entries + second.entries]
    assert values == [6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0]
    assert second.next_cursor is None


def test_history_filters(storage: Storage) -> None:
    """Each filter returns exactly the events matching it, in a date range."""
    events = [event(i) for i in range(30)]
    storage.history.append(events)

    def values(**filters: Any) -> list[float | None]:
        page = storage.history.page(
            start=filters.pop("start", None), end=filters.pop("end", None), limit=100, **filters
        )
        return [e.event.value for e in page.entries]

    def expect(pred: Any) -> list[float | None]:
        return [e.value for e in reversed(events) if pred(e)]

    assert values(machine="h1:c2") == expect(lambda e: e.machine_key == "h1:c2")
    assert values(host="h0") == expect(lambda e: e.host_id == "h0")
    assert values(rule="cpu-high") == expect(lambda e: e.rule_id == "cpu-high")
    assert values(severity="critical") == expect(lambda e: e.level == "critical")
    assert values(state="resolved") == expect(lambda e: e.to_state == "resolved")
    start, end = T0 + timedelta(minutes=10), T0 + timedelta(minutes=19)
    assert values(start=start, end=end, host="h1") == expect(
        lambda e: start <= e.at <= end and e.host_id == "h1"
    )
    with storage.engine.connect() as conn:
        silenced = conn.execute(
            sa.select(t.alert_events.c.silenced).order_by(t.alert_events.c.id)
        ).scalars()
        assert list(silenced) == [e.silenced for e in events]


def test_bad_history_input_is_invalid_query(storage: Storage) -> None:
    """A forged cursor or a bad limit → InvalidQuery; nothing stored."""
    with pytest.raises(InvalidQuery, match="cursor"):
        storage.history.page(start=None, end=None, cursor="garbage!")
    with pytest.raises(InvalidQuery, match="limit"):
        storage.history.page(start=None, end=None, limit=0)
    assert storage.history.page(start=None, end=None).entries == []


def test_history_reads_rows_written_before_events_were_typed(storage: Storage) -> None:
    """A row stored by an older server (body = event dict plus ``machine``, no later
    fields) still reads back as an AlertEvent."""
    body = (
        '{"fingerprint":"f","kind":"firing","rule_id":"r","rule_name":"r","machine_key":"h1",'
        '"machine_kind":"host","machine_name":"h1","host_id":"h1","metric":"cpu_percent",'
        '"level":"warning","from_state":"ok","to_state":"firing","value":91.0,'
        '"threshold":90.0,"started_at":"2024-05-01T12:00:00Z","at":"2024-05-01T12:00:00Z",'
        '"machine":"h1","silenced":true}'
    )
    with storage.engine.begin() as conn:
        conn.execute(
            sa.insert(t.alert_events).values(
                at_ms=1714564800000,
                fingerprint="f",
                rule_id="r",
                machine="h1",
                host_id="h1",
                metric="cpu_percent",
                level="warning",
                from_state="ok",
                to_state="firing",
                silenced=True,
                body=body,
            )
        )
    (entry,) = storage.history.page(start=None, end=None).entries
    assert (entry.event.machine_key, entry.event.value, entry.event.silenced) == ("h1", 91.0, True)
    assert entry.event.at == T0


def test_silences_create_list_expire(storage: Storage) -> None:
    """A silence gets an id, lists while active, and stops listing once expired."""
    created = storage.silences.create(
        SilenceRequest(
            matchers=SilenceMatchers(machine="h1:*"),
            starts_at=T0,
            ends_at=T0 + timedelta(hours=2),
            comment="maintenance",
        )
    )
    assert len(created.id) == 32
    assert (created.starts_at, created.comment) == (T0, "maintenance")
    during = T0 + timedelta(minutes=30)
    assert storage.silences.all(now=during) == [created]
    assert storage.silences.all(now=T0 + timedelta(hours=3)) == []
    assert storage.silences.expire(created.id, during) is True
    assert storage.silences.expire(created.id, during) is False
    assert storage.silences.expire("unknown", during) is False
    assert storage.silences.all(now=during + timedelta(seconds=1)) == []
    (expired,) = storage.silences.all(include_expired=True, now=during)
    assert expired.ends_at == during and expired.matchers == SilenceMatchers(machine="h1:*")
