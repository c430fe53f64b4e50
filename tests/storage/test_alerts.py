"""Rules (seed once), engine state, alert history with filters and pages, and silences."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from srvmon_server.storage import InvalidQuery, Storage
from tests.storage.factory import T0

DEFAULTS = [
    {"id": "cpu-high", "metric": "cpu_percent", "warning": 80, "critical": 95},
    {"id": "mem-high", "metric": "memory_percent", "warning": 85, "critical": 95},
]


def test_seed_inserts_defaults_only_on_the_first_start(db_url: str) -> None:
    """Changed and deleted defaults stay changed/deleted across restarts and later seeds."""
    store = Storage.open(db_url)
    assert store.seed_rules(DEFAULTS) == 2
    assert [r["id"] for r in store.list_rules()] == ["cpu-high", "mem-high"]
    store.put_rule({**DEFAULTS[0], "warning": 70})
    assert store.delete_rule("mem-high") is True
    assert store.delete_rule("mem-high") is False
    store.close()
    store = Storage.open(db_url)
    try:
        assert store.seed_rules(DEFAULTS) == 0
        assert store.list_rules() == [{**DEFAULTS[0], "warning": 70}]
        assert store.get_rule("mem-high") is None
    finally:
        store.close()


def test_put_rule_inserts_or_replaces_by_id(storage: Storage) -> None:
    """put_rule adds new ids at the end and replaces existing ones in place."""
    storage.put_rule({"id": "b", "x": 1})
    storage.put_rule({"id": "a", "x": 2})
    storage.put_rule({"id": "b", "x": 3})
    assert storage.list_rules() == [{"id": "b", "x": 3}, {"id": "a", "x": 2}]
    assert storage.get_rule("a") == {"id": "a", "x": 2}
    with pytest.raises(InvalidQuery, match="'id'"):
        storage.put_rule({"metric": "cpu_percent"})


def test_alert_state_round_trips(storage: Storage) -> None:
    """Saved engine state comes back equal; a second save replaces the first."""
    assert storage.load_alert_state() is None
    state = {"alerts": {"fp1": {"state": "firing", "since": "2024-05-01T12:00:00Z"}}, "v": 1}
    storage.save_alert_state(state)
    assert storage.load_alert_state() == state
    storage.save_alert_state({"alerts": {}, "v": 2})
    assert storage.load_alert_state() == {"alerts": {}, "v": 2}


def event(i: int, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "fingerprint": f"fp{i % 3}",
        "rule_id": "cpu-high" if i % 2 else "mem-high",
        "machine": f"h{i % 2}:c{i % 3}",
        "host_id": f"h{i % 2}",
        "metric": "cpu_percent",
        "level": "critical" if i % 4 == 0 else "warning",
        "from_state": "pending",
        "to_state": "firing" if i % 5 else "resolved",
        "value": float(i),
        "threshold": 80.0,
        "started_at": T0,
        "at": T0 + timedelta(minutes=i),
        "silenced": i % 7 == 0,
    }
    return {**base, **overrides}


def test_history_pages_newest_first_with_exact_pages(storage: Storage) -> None:
    """25 events, pages of 10: 10 + 10 + 5, newest first, no overlap, last cursor None."""
    storage.append_alert_events([event(i) for i in range(25)])
    seen: list[float] = []
    cursor = None
    sizes = []
    for _ in range(5):
        page, cursor = storage.alert_history(start=None, end=None, limit=10, cursor=cursor)
        sizes.append(len(page))
        seen += [e["value"] for e in page]
        if cursor is None:
            break
    assert sizes == [10, 10, 5]
    assert seen == [float(i) for i in range(24, -1, -1)]


def test_history_orders_equal_timestamps_by_insertion(storage: Storage) -> None:
    """Events at the same instant page stably (keyset on at, id) without loss or repeats."""
    storage.append_alert_events([event(i, at=T0) for i in range(7)])
    first, cursor = storage.alert_history(start=None, end=None, limit=4)
    second, last = storage.alert_history(start=None, end=None, limit=4, cursor=cursor)
    assert [e["value"] for e in first + second] == [6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0]
    assert last is None


def test_history_filters(storage: Storage) -> None:
    """Each filter returns exactly the events matching it, in a date range."""
    events = [event(i) for i in range(30)]
    storage.append_alert_events(events)

    def values(**filters: Any) -> list[float]:
        page, _ = storage.alert_history(
            start=filters.pop("start", None), end=filters.pop("end", None), limit=100, **filters
        )
        return [e["value"] for e in page]

    def expect(pred: Any) -> list[float]:
        return [e["value"] for e in reversed(events) if pred(e)]

    assert values(machine="h1:c2") == expect(lambda e: e["machine"] == "h1:c2")
    assert values(host="h0") == expect(lambda e: e["host_id"] == "h0")
    assert values(rule="cpu-high") == expect(lambda e: e["rule_id"] == "cpu-high")
    assert values(severity="critical") == expect(lambda e: e["level"] == "critical")
    assert values(state="resolved") == expect(lambda e: e["to_state"] == "resolved")
    start, end = T0 + timedelta(minutes=10), T0 + timedelta(minutes=19)
    assert values(start=start, end=end, host="h1") == expect(
        lambda e: start <= e["at"] <= end and e["host_id"] == "h1"
    )
    page, _ = storage.alert_history(start=None, end=None, limit=1)
    assert page[0]["at"] == "2024-05-01T12:29:00Z"
    assert page[0]["started_at"] == "2024-05-01T12:00:00Z"
    assert page[0]["silenced"] is False


def test_bad_history_input_is_invalid_query(storage: Storage) -> None:
    """A forged cursor, a bad limit or an incomplete event → InvalidQuery; nothing stored."""
    with pytest.raises(InvalidQuery, match="cursor"):
        storage.alert_history(start=None, end=None, cursor="garbage!")
    with pytest.raises(InvalidQuery, match="limit"):
        storage.alert_history(start=None, end=None, limit=0)
    incomplete = event(1)
    del incomplete["level"]
    with pytest.raises(InvalidQuery, match="level"):
        storage.append_alert_events([event(0), incomplete])
    with pytest.raises(InvalidQuery, match="time zone"):
        storage.append_alert_events([event(0, at="2024-05-01T12:00:00")])
    assert storage.alert_history(start=None, end=None) == ([], None)


def test_silences_create_list_expire(storage: Storage) -> None:
    """A silence gets an id, lists while active, and stops listing once expired."""
    created = storage.create_silence(
        {
            "matchers": {"machine": "h1:*"},
            "starts_at": "2024-05-01T12:00:00Z",
            "ends_at": "2024-05-01T14:00:00Z",
            "comment": "maintenance",
        }
    )
    assert len(created["id"]) == 32
    during = T0 + timedelta(minutes=30)
    assert storage.list_silences(now=during) == [created]
    assert storage.list_silences(now=T0 + timedelta(hours=3)) == []
    assert storage.expire_silence(created["id"], during) is True
    assert storage.expire_silence(created["id"], during) is False
    assert storage.expire_silence("unknown", during) is False
    assert storage.list_silences(now=during + timedelta(seconds=1)) == []
    expired = storage.list_silences(include_expired=True, now=during)
    assert [s["ends_at"] for s in expired] == ["2024-05-01T12:30:00Z"]
    with pytest.raises(InvalidQuery, match="after starts_at"):
        storage.create_silence({"starts_at": T0, "ends_at": T0})
    with pytest.raises(InvalidQuery, match="ends_at"):
        storage.create_silence({"matchers": {}})
