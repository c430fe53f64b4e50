"""The operator's day in a real chromium: a silence on a firing alert takes effect at once
(row, badge, tile, toast), a rule is created, edited and deleted by hostname, and the
history is filtered by name and by glob."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from attrs import evolve

from tests.browser.feed import batch, container, ingest, request
from tests.browser.test_dashboard import CPU_RULE, LIVE_MS, expect, open_page, put_rule
from tests.fixtures.browser import ServerProcess

pytestmark = pytest.mark.browser

A = "3d1282c0aa0000000000000000000001"
B = "77ab0e11ff0000000000000000000002"


def named(
    server: ServerProcess, host_id: str, hostname: str, cpu: float, boxes: list[Any] | None = None
) -> None:
    """One batch of a host with a real-looking name (feed.batch names it <id>.example)."""
    ingest(
        server.base_url,
        server.token,
        evolve(batch(host_id, cpu=cpu, containers=boxes or []), hostname=hostname),
    )


def with_token(page: Any, server: ServerProcess) -> None:
    page.add_init_script(f"sessionStorage.setItem('srvmon.token', '{server.token}')")


def test_a_silence_on_a_firing_alert_acts_at_once(page: Any, srvmon_server: ServerProcess) -> None:
    """One click on the row's Silence (1h): the row turns "firing (silenced)", the badge
    goes, the tile is no longer red, and the API says silenced: all within 2 s, no reload.
    Expiring the silence brings the alert back with a toast saying the silence ended."""
    put_rule(srvmon_server, CPU_RULE)
    named(srvmon_server, A, "vm", 97.0)
    with_token(page, srvmon_server)
    open_page(page, srvmon_server, "#/alerts")
    row = page.locator("#active-alerts tr[data-fingerprint]", has_text="cpu hot")
    expect()(row).to_have_count(1)
    expect()(row.locator("td").nth(2)).to_have_text("vm")
    expect()(row.locator("td").nth(2)).to_have_attribute("title", A)
    badge = page.locator("#alert-count")
    expect()(badge).to_have_text("1")

    row.locator("select.silence-for").select_option(label="4h")
    row.get_by_role("button", name="Silence").click()
    expect()(row.locator("td").nth(1)).to_have_text("firing (silenced)", timeout=LIVE_MS)
    expect()(badge).to_be_hidden()
    expect()(page.locator("#active-message")).to_have_text("silenced cpu hot on vm for 4h")
    _, active = request(srvmon_server.base_url, "/api/v1/alerts")
    mine = [
        (a["machine_key"], a["silenced"]) for a in active["alerts"] if a["rule_id"] == "cpu-hot"
    ]
    assert mine == [(A, True)]
    _, silences = request(srvmon_server.base_url, "/api/v1/silences")
    (silence,) = silences["silences"]
    assert silence["matchers"] == {"machine": A, "rule": "cpu-hot"}
    window = datetime.fromisoformat(silence["ends_at"]) - datetime.fromisoformat(
        silence["starts_at"]
    )
    hours = window.total_seconds() / 3600
    assert 3.99 < hours < 4.01
    page.click("nav a[data-route=overview]")
    expect()(page.locator(f'.tile[data-host="{A}"]')).to_have_attribute("data-status", "ok")

    page.click("nav a[data-route=silences]")
    page.locator(f'#silence-rows tr[data-silence-id="{silence["id"]}"]').get_by_role(
        "button", name="Expire"
    ).click()
    toast = page.locator(".toast", has_text="silence ended")
    expect()(toast).to_have_count(1, timeout=LIVE_MS)
    expect()(toast).to_contain_text("critical: vm")
    expect()(badge).to_have_text("1")
    page.click("nav a[data-route=overview]")
    expect()(page.locator(f'.tile[data-host="{A}"]')).to_have_attribute("data-status", "critical")


def test_a_rule_created_edited_and_deleted_by_hostname(
    page: Any, srvmon_server: ServerProcess
) -> None:
    """New rule for the machine "vm" (the selects, the kind's fields, the picks line), saved
    with feedback; it applies to vm and fires there; edited (the recovery follows warn);
    deleted after a confirmation; the lists refresh each time. Fits a 1400 px window."""
    page.set_viewport_size({"width": 1400, "height": 900})
    named(srvmon_server, A, "vm", 40.0)
    named(srvmon_server, B, "web-2", 40.0)
    with_token(page, srvmon_server)
    open_page(page, srvmon_server, "#/rules")
    page.click("#new-rule")
    editor = page.locator("#rule-editor")
    editor.locator('[data-field="id"]').fill("vm-cpu")
    editor.locator('[data-field="name"]').fill("vm busy")
    expect()(editor.locator('[data-field="kind"]')).to_have_value("threshold")
    editor.locator('[data-field="kind"]').select_option("silent")
    expect()(editor.locator('[data-for="warn"]')).to_be_hidden()
    expect()(editor.locator('[data-for="silent_seconds"]')).to_be_visible()
    editor.locator('[data-field="kind"]').select_option("threshold")
    expect()(editor.locator('[data-for="warn"]')).to_be_visible()
    editor.locator('[data-field="selector.kind"]').select_option("host")
    editor.locator('[data-field="selector.machine"]').fill("vm")
    expect()(page.locator("#rule-machine-picks")).to_have_text("picks 1 machine: vm")
    editor.locator('[data-field="metric"]').select_option("cpu_percent")
    editor.locator('[data-field="warn"]').fill("30")
    editor.locator('[data-field="warn_recovery"]').fill("25")
    editor.locator('[data-field="crit"]').fill("50")
    editor.locator('[data-field="for_seconds"]').fill("0")
    assert editor.locator(".help").count() >= 4  # inline help: for, hysteresis, window, ...
    editor.get_by_role("button", name="Create").click()
    expect()(page.locator("#rule-saved")).to_have_text("rule vm-cpu created")
    expect()(page.locator("#rules-status")).to_have_text("rule vm-cpu created")
    created = page.locator('tr[data-rule-id="vm-cpu"]')
    expect()(created.locator('[data-col="selector"]')).to_have_text("hosts = vm")
    expect()(created.locator('[data-col="scope"]')).to_have_text("machine")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1400, f"the rules screen is {width}px wide in a 1400px window"

    page.fill("#applies-machine", "vm")
    page.get_by_role("button", name="Show the rules that apply").click()
    expect()(page.locator('#applies li[data-rule-id="vm-cpu"]')).to_have_count(1)
    named(srvmon_server, A, "vm", 40.0)
    named(srvmon_server, B, "web-2", 40.0)
    _, active = request(srvmon_server.base_url, "/api/v1/alerts")
    assert [(a["machine_key"], a["rule_id"], a["threshold"]) for a in active["alerts"]] == [
        (A, "vm-cpu", 30.0)
    ]

    edit_then_delete(page, srvmon_server, created)


def edit_then_delete(page: Any, srvmon_server: ServerProcess, created: Any) -> None:
    """Edit vm-cpu (the recovery follows warn), then delete it after a confirmation."""
    editor = page.locator("#rule-editor")
    created.get_by_role("button", name="Edit").click()
    expect()(editor.locator('[data-field="id"]')).to_have_attribute("readonly", "")
    editor.locator('[data-field="warn"]').fill("35")
    expect()(editor.locator('[data-field="warn_recovery"]')).to_have_value("30")  # follows: 5 below
    editor.get_by_role("button", name="Save").click()
    expect()(page.locator("#rule-saved")).to_have_text("rule vm-cpu saved")
    expect()(created.locator('[data-col="warn"]')).to_have_text("35")
    _, stored = request(srvmon_server.base_url, "/api/v1/rules/vm-cpu")
    assert (stored["warn"], stored["warn_recovery"], stored["selector"]["machine"]) == (
        35.0,
        30.0,
        "vm",
    )

    created.get_by_role("button", name="Delete").click()
    expect()(created).to_contain_text("Delete vm-cpu?")
    created.get_by_role("button", name="Cancel").click()
    expect()(created.get_by_role("button", name="Delete")).to_be_visible()
    created.get_by_role("button", name="Delete").click()
    created.get_by_role("button", name="Yes, delete").click()
    expect()(page.locator("#rules-status")).to_have_text("rule vm-cpu deleted")
    expect()(page.locator('tr[data-rule-id="vm-cpu"]')).to_have_count(0)
    expect()(page.locator('#applies li[data-rule-id="vm-cpu"]')).to_have_count(0)
    status, _ = request(srvmon_server.base_url, "/api/v1/rules/vm-cpu")
    assert status == 404


def test_a_shared_name_is_said_so(page: Any, srvmon_server: ServerProcess) -> None:
    """Two hosts called vm: the machine box says both share the name, and asking for the
    rules of "vm" answers with both keys instead of picking one."""
    named(srvmon_server, A, "vm", 10.0)
    named(srvmon_server, B, "vm", 10.0)
    open_page(page, srvmon_server, "#/rules")
    page.fill("#applies-machine", "vm")
    expect()(page.locator("#applies-picks")).to_contain_text("2 machines share the name vm")
    page.get_by_role("button", name="Show the rules that apply").click()
    error = page.locator("#applies .error")
    expect()(error).to_contain_text(A)
    expect()(error).to_contain_text(B)


def test_history_filtered_by_name_and_glob(page: Any, srvmon_server: ServerProcess) -> None:
    """A fleet rule fires on vm, its containers db and web-1, and on web-2: the machine
    filter takes vm/db, web-* and */db, rows show names with the key on hover."""
    put_rule(srvmon_server, {**CPU_RULE, "selector": {"kind": "any"}, "warn": 50.0, "crit": 99.0})
    named(srvmon_server, A, "vm", 70.0, [container("db", cpu=70.0), container("web-1", cpu=70.0)])
    named(srvmon_server, B, "web-2", 70.0, [container("db", cpu=70.0)])
    open_page(page, srvmon_server, "#/alerts")
    machines = page.locator("#history-rows tr td:nth-child(2)")
    expect()(machines).to_have_count(5)
    cases = {
        "vm/db": ["vm/db"],
        "web-*": ["vm/web-1", "web-2"],
        "*/db": ["vm/db", "web-2/db"],
        "vm": ["vm"],
    }
    for pattern, shown in cases.items():
        page.fill('#history-form [name="machine"]', pattern)
        page.click("#history-form button[type=submit]")
        expect()(page.locator("#history-machines")).to_contain_text(f"“{pattern}” picks")
        expect()(machines).to_have_count(len(shown))
        assert sorted(machines.all_inner_texts()) == shown, pattern
    expect()(machines.first).to_have_attribute("title", A)


def test_an_active_alert_value_keeps_up(page: Any, srvmon_server: ServerProcess) -> None:
    """An alert that keeps firing at the same level (no transition, no event) shows its
    current value within a few seconds, not the one it fired with."""
    put_rule(srvmon_server, CPU_RULE)
    named(srvmon_server, A, "vm", 97.0)
    open_page(page, srvmon_server, "#/alerts")
    row = page.locator("#active-alerts tr[data-fingerprint]", has_text="cpu hot")
    expect()(row).to_contain_text("97.0 % vs 95.0 %")
    named(srvmon_server, A, "vm", 98.5)
    expect()(row).to_contain_text("98.5 % vs 95.0 %", timeout=8000)


def test_a_deleted_host_leaves_every_open_screen(page: Any, srvmon_server: ServerProcess) -> None:
    """vm fires and web-2 does not; vm is deleted through the API (another operator's
    browser, a script): its tile and its alert row go, the badge with them, within 2 s and
    without a reload, on the fleet screen and on the alerts screen of a second tab."""
    put_rule(srvmon_server, CPU_RULE)
    named(srvmon_server, A, "vm", 97.0, [container("db")])
    named(srvmon_server, B, "web-2", 40.0)
    with_token(page, srvmon_server)
    open_page(page, srvmon_server, "#/")
    second = page.context.new_page()
    open_page(second, srvmon_server, "#/alerts")
    tile = page.locator(f'.tile[data-host="{A}"]')
    expect()(tile).to_have_attribute("data-status", "critical")
    expect()(page.locator(f'.tile[data-host="{B}"]')).to_have_count(1)
    expect()(page.locator("#alert-count")).to_have_text("1")
    row = second.locator("#active-alerts tr[data-fingerprint]", has_text="cpu hot")
    expect()(row).to_have_count(1)
    page.evaluate("window.__reloads = 0")

    status, _ = request(
        srvmon_server.base_url, f"/api/v1/machines/{A}", srvmon_server.token, "DELETE"
    )
    assert status == 204
    expect()(tile).to_have_count(0, timeout=LIVE_MS)
    expect()(page.locator("#alert-count")).to_be_hidden(timeout=LIVE_MS)
    expect()(page.locator(f'.tile[data-host="{B}"]')).to_have_count(1)
    expect()(row).to_have_count(0, timeout=LIVE_MS)
    expect()(second.locator("#alert-count")).to_be_hidden(timeout=LIVE_MS)
    assert page.evaluate("window.__reloads") == 0  # the same page: no reload happened
    second.close()
