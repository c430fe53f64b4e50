"""The alert history screen: date range in the browser's time zone, filters, exact counts."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.browser.feed import batch
from tests.browser.test_dashboard import CPU_RULE, expect, open_page
from tests.fixtures.browser import DESKTOP, ServerProcess, screenshot

pytestmark = pytest.mark.browser

ZONE = "Pacific/Auckland"
"""Far from UTC, so a local day straddles two UTC dates: proves local-time handling."""


def record_history(server: ServerProcess, days: dict[date, list[float]]) -> list[dict[str, Any]]:
    """Run the server's own alerting (real engine, real storage) over samples taken at
    local 10:00, 10:01, ... of each day, before the server starts; return every event."""
    from srvmon_core.rules import rule_from_dict
    from srvmon_core.view import batch_view
    from srvmon_server.alerting import Alerting
    from srvmon_server.payloads import alert_event_json
    from srvmon_server.storage.gateway import Storage

    zone = ZoneInfo(ZONE)
    storage = Storage.open(server.db_url)
    try:
        storage.rules.put(rule_from_dict(CPU_RULE))
        alerting = Alerting(storage)
        alerting.load(datetime.combine(min(days), datetime.min.time(), zone))
        events: list[dict[str, Any]] = []
        for day, cpus in sorted(days.items()):
            for minute, cpu in enumerate(cpus):
                at = datetime(day.year, day.month, day.day, 10, minute, tzinfo=zone)
                fired = alerting.on_batch(batch_view(batch("alpha", at=at, cpu=cpu)), at)
                events += [alert_event_json(e) for e in fired]
    finally:
        storage.close()
    return [e for e in events if e["rule_id"] == CPU_RULE["id"]]


def local_day(event: dict[str, Any]) -> date:
    return datetime.fromisoformat(event["at"]).astimezone(ZoneInfo(ZONE)).date()


def test_history_filters_by_local_date(browser: Any, stopped_server: ServerProcess) -> None:
    """Alert events on two different days: a from/to range covering one local day lists
    exactly that day's events (count from the engine's own output), and the severity
    filter narrows it further."""
    today = datetime.now(ZoneInfo(ZONE)).date()
    first, second = today - timedelta(days=2), today - timedelta(days=1)
    events = record_history(
        stopped_server,
        {first: [97.0, 10.0], second: [97.0, 10.0, 85.0, 10.0, 99.0]},
    )
    per_day = Counter(local_day(e) for e in events)
    assert set(per_day) == {first, second}
    critical_second = sum(1 for e in events if local_day(e) == second and e["level"] == "critical")
    stopped_server.start()

    context = browser.new_context(viewport=DESKTOP, timezone_id=ZONE)
    page = context.new_page()
    try:
        open_page(page, stopped_server, "#/alerts")
        rows = page.locator("#history-rows tr")
        page.fill('#history-form [name="rule"]', CPU_RULE["id"])
        page.click("#history-form button[type=submit]")
        expect()(rows).to_have_count(len(events))

        page.fill('#history-form [name="from"]', f"{second.isoformat()}T00:00:00")
        page.fill('#history-form [name="to"]', f"{second.isoformat()}T23:59:59")
        page.click("#history-form button[type=submit]")
        expect()(rows).to_have_count(per_day[second])
        expect()(page.locator("#history-by-date li")).to_have_count(1)

        page.select_option('#history-form [name="severity"]', "critical")
        page.click("#history-form button[type=submit]")
        expect()(rows).to_have_count(critical_second)
        expect()(rows.filter(has_text="warning")).to_have_count(0)

        page.fill('#history-form [name="from"]', f"{first.isoformat()}T00:00:00")
        page.fill('#history-form [name="to"]', f"{first.isoformat()}T23:59:59")
        page.select_option('#history-form [name="severity"]', "")
        page.click("#history-form button[type=submit]")
        expect()(rows).to_have_count(per_day[first])
        screenshot(page, "dashboard-history")
    finally:
        context.close()


def test_history_pages_of_100_with_older_button(
    browser: Any, stopped_server: ServerProcess
) -> None:
    """130 alert events (the engine's own, over three local days): the history shows the
    newest 100 and "Older →"; one click appends the other 30, hides the button, and the 130
    rows are exactly the engine's events, newest first, none twice."""
    today = datetime.now(ZoneInfo(ZONE)).date()
    first, last = today - timedelta(days=3), today - timedelta(days=1)
    events = record_history(
        stopped_server,
        {
            first: [97.0, 10.0] * 22,
            today - timedelta(days=2): [97.0, 10.0] * 22,
            last: [97.0, 10.0] * 21,
        },
    )
    assert len(events) == 130
    newest_first = sorted(events, key=lambda e: datetime.fromisoformat(e["at"]), reverse=True)
    assert len({e["at"] for e in events}) == 130  # one event per sample minute
    stopped_server.start()

    context = browser.new_context(viewport=DESKTOP, timezone_id=ZONE)
    page = context.new_page()
    try:
        open_page(page, stopped_server, "#/alerts")
        expected = page.evaluate(
            """events => events.map((e) => [
              new Date(e.at).toLocaleString(undefined, {year: "numeric", month: "2-digit",
                day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit"}),
              e.machine_kind === "host" ? e.machine_name : `${e.hostname}/${e.machine_name}`,
              e.rule_name, e.level, `${e.from_state} → ${e.to_state}`,
            ].join("|"))""",
            newest_first,
        )
        assert len(set(expected)) == 130
        rows = page.locator("#history-rows tr")
        more = page.locator("#history-more")
        page.fill('#history-form [name="from"]', f"{first.isoformat()}T00:00:00")
        page.fill('#history-form [name="to"]', f"{last.isoformat()}T23:59:59")
        page.fill('#history-form [name="rule"]', CPU_RULE["id"])
        page.click("#history-form button[type=submit]")
        expect()(page.locator("#history-info")).to_have_text("100 events (more available)")
        expect()(rows).to_have_count(100)
        expect()(more).to_be_visible()
        assert shown(rows) == expected[:100]

        more.click()
        expect()(page.locator("#history-info")).to_have_text("130 events")
        expect()(rows).to_have_count(130)
        expect()(more).to_be_hidden()
        assert shown(rows) == expected
        per_day = Counter(local_day(e) for e in events)
        assert sorted(per_day.values()) == [42, 44, 44]
        expect()(page.locator("#history-by-date li")).to_have_count(3)
        days_text = page.locator("#history-by-date li").all_text_contents()
        assert sorted(int(text.rsplit(": ", 1)[1]) for text in days_text) == [42, 44, 44]
    finally:
        context.close()


def shown(rows: Any) -> list[str]:
    """Each history row as "when|machine|rule|severity|transition" (the first 5 cells)."""
    return rows.evaluate_all(
        "trs => trs.map((tr) => [...tr.cells].slice(0, 5).map((td) => td.textContent).join('|'))"
    )
