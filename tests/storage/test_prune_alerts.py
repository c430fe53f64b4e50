"""Retention of alert history: old events and long-ended silences go, in bounded batches."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from srvmon_core.alert_state import MachineSnapshot, StateChanges
from srvmon_core.silences import SilenceMatchers, SilenceRequest
from srvmon_server.storage import Storage
from srvmon_server.storage import tables as t
from tests.storage.factory import T0, alert_event

NOW = T0 + timedelta(days=400)
RETENTION = timedelta(days=365)
CUTOFF = NOW - RETENTION  # T0 + 35 days


def count(storage: Storage, table: sa.Table) -> int:
    with storage.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def silence(starts: datetime, ends: datetime, comment: str) -> SilenceRequest:
    return SilenceRequest(
        matchers=SilenceMatchers(machine="h1"), starts_at=starts, ends_at=ends, comment=comment
    )


def test_prune_deletes_old_alert_events_and_long_ended_silences_in_batches(
    storage: Storage,
) -> None:
    """5 events before the cutoff (3 in one millisecond) go in batches of 2, 2, 1; events at
    and after the cutoff stay; only the silence that ended before the cutoff goes; the live
    alert state is untouched."""
    old = [alert_event(T0, value=1.0), alert_event(T0, value=2.0), alert_event(T0, value=3.0)]
    old += [
        alert_event(T0 + timedelta(days=1), value=4.0),
        alert_event(CUTOFF - timedelta(milliseconds=1), value=5.0),
    ]
    kept = [
        alert_event(CUTOFF, value=6.0),
        alert_event(NOW - timedelta(days=1), value=7.0),
        alert_event(NOW, value=8.0),
    ]
    storage.history.append(old + kept)
    long_ago = storage.silences.create(silence(T0, T0 + timedelta(days=10), "long ago"))
    recent = storage.silences.create(
        silence(NOW - timedelta(days=3), NOW - timedelta(days=1), "recently ended")
    )
    active = storage.silences.create(
        silence(NOW - timedelta(hours=1), NOW + timedelta(days=1), "on")
    )
    state = StateChanges(
        saved=(MachineSnapshot(key="h1", host_id="h1", document={"version": 2, "alerts": []}),)
    )
    storage.alert_states.save(state)
    assert (count(storage, t.alert_events), count(storage, t.silences)) == (8, 3)

    batches: list[tuple[str, int]] = []
    deleted = storage.retention.prune(
        NOW,
        alert_history_retention=RETENTION,
        batch_rows=2,
        on_batch=lambda table, n: batches.append((table, n)),
    )

    assert deleted == 6
    assert batches == [
        ("alert_events", 2),
        ("alert_events", 2),
        ("alert_events", 1),
        ("silences", 1),
    ]
    assert (count(storage, t.alert_events), count(storage, t.silences)) == (3, 2)
    page = storage.history.page(start=None, end=None)
    assert [e.event.value for e in page.entries] == [8.0, 7.0, 6.0]
    assert page.next_cursor is None
    remaining = storage.silences.all(include_expired=True, now=NOW)
    assert [s.id for s in remaining] == [recent.id, active.id]
    assert long_ago.id not in [s.id for s in remaining]
    assert storage.silences.all(now=NOW) == [active]
    assert storage.alert_states.load() == list(state.saved)


def test_prune_keeps_a_year_of_alert_history_by_default(storage: Storage) -> None:
    """With the default retention (365 days), a 364-day-old event stays, a 366-day-old one
    goes, and a silence that ended 366 days ago goes while one that ended 364 days ago stays."""
    storage.history.append(
        [
            alert_event(NOW - timedelta(days=366), value=1.0),
            alert_event(NOW - timedelta(days=364), value=2.0),
        ]
    )
    storage.silences.create(
        silence(NOW - timedelta(days=367), NOW - timedelta(days=366), "older than a year")
    )
    younger = storage.silences.create(
        silence(NOW - timedelta(days=365), NOW - timedelta(days=364), "younger than a year")
    )

    assert storage.retention.prune(NOW) == 2

    page = storage.history.page(start=None, end=None)
    assert [e.event.value for e in page.entries] == [2.0]
    assert storage.silences.all(include_expired=True, now=NOW) == [younger]


def test_prune_with_nothing_old_reports_no_batch(storage: Storage) -> None:
    """Nothing before the cutoff: no row deleted and on_batch never called."""
    storage.history.append([alert_event(NOW, value=1.0)])
    storage.silences.create(silence(NOW, NOW + timedelta(hours=1), "upcoming"))
    batches: list[tuple[str, int]] = []
    assert storage.retention.prune(NOW, on_batch=lambda table, n: batches.append((table, n))) == 0
    assert batches == []
    assert (count(storage, t.alert_events), count(storage, t.silences)) == (1, 1)
