"""The dashboard in a real chromium against the real ``srvmon server`` process."""

from __future__ import annotations

import time
from typing import Any

import attrs
import pytest

from srvmon_core.schema import NetIO
from tests.browser.feed import (
    CPU_RULE,
    batch,
    container,
    expect,
    host_sample,
    ingest,
    request,
)
from tests.fixtures.browser import PHONE, ServerProcess, screenshot

pytestmark = pytest.mark.browser
MIB = 1024**2

LIVE_MS = 2000
"""The spec: what is ingested shows on screen within 2 s."""


def open_page(page: Any, server: ServerProcess, route: str = "#/") -> None:
    page.goto(f"{server.base_url}/{route}")
    expect()(page.locator("#conn")).to_have_text("live", timeout=10000)


def seed(server: ServerProcess, host_ids: list[str]) -> None:
    for host_id in host_ids:
        ingest(
            server.base_url,
            server.token,
            batch(
                host_id,
                cpu=12.5,
                containers=[container("web"), container("db", state="exited")],
            ),
        )


def put_rule(server: ServerProcess, rule: dict[str, Any]) -> None:
    status, answer = request(
        server.base_url, f"/api/v1/rules/{rule['id']}", server.token, "PUT", rule
    )
    assert status == 200, answer


def test_overview_shows_seeded_hosts_and_live_values(
    page: Any, srvmon_server: ServerProcess
) -> None:
    """Every seeded host gets a tile with its container counts; a new sample's CPU value is
    on screen within 2 s of its ingest; the filter box narrows the tiles."""
    hosts = ["alpha", "beta", "gamma"]
    seed(srvmon_server, hosts)
    open_page(page, srvmon_server)
    tiles = page.locator(".tile")
    expect()(tiles).to_have_count(3)
    for host_id in hosts:
        tile = page.locator(f'.tile[data-host="{host_id}"]')
        expect()(tile.locator(".tile-containers")).to_have_text("2 containers, 1 unhealthy/stopped")
        expect()(tile.locator('[data-metric="cpu_percent"]')).to_have_text("12.5 %")

    ingest(srvmon_server.base_url, srvmon_server.token, batch("beta", cpu=73.4))
    started = time.monotonic()
    expect()(page.locator('.tile[data-host="beta"] [data-metric="cpu_percent"]')).to_have_text(
        "73.4 %", timeout=LIVE_MS
    )
    assert time.monotonic() - started < LIVE_MS / 1000
    expect()(page.locator('.tile[data-host="alpha"] [data-metric="cpu_percent"]')).to_have_text(
        "12.5 %"
    )

    page.fill("#fleet-filter", "gam")
    expect()(page.locator(".tile:visible")).to_have_count(1)
    expect()(page.locator("#fleet-summary")).to_have_text("1 of 3 hosts")
    page.fill("#fleet-filter", "?eta")  # a glob: whole-name match on host id or hostname
    expect()(page.locator(".tile:visible")).to_have_count(1)
    expect()(page.locator(".tile:visible")).to_have_attribute("data-host", "beta")


def test_threshold_breach_shows_alert_within_two_seconds(
    page: Any, srvmon_server: ServerProcess
) -> None:
    """A sample above a rule's critical threshold puts the alert into the active alerts
    panel (machine, level, value vs threshold) and a toast within 2 s, and colours the tile."""
    put_rule(srvmon_server, CPU_RULE)
    seed(srvmon_server, ["alpha"])
    open_page(page, srvmon_server, "#/alerts")
    row = page.locator("#active-alerts tr[data-fingerprint]", has_text="cpu hot")
    expect()(page.locator("#active-alerts tr").first).to_be_visible()
    expect()(row).to_have_count(0)

    ingest(srvmon_server.base_url, srvmon_server.token, batch("alpha", cpu=97.0))
    started = time.monotonic()
    expect()(row).to_have_count(1, timeout=LIVE_MS)
    assert time.monotonic() - started < LIVE_MS / 1000
    expect()(row).to_contain_text("alpha")
    expect()(row).to_contain_text("critical")
    expect()(row).to_contain_text("97.0 % vs 95.0 %")
    expect()(page.locator(".toast", has_text="alpha")).to_have_count(1)
    page.click("nav a[data-route=overview]")
    expect()(page.locator('.tile[data-host="alpha"]')).to_have_attribute("data-status", "critical")


def test_editing_a_threshold_persists_and_takes_effect(
    page: Any, srvmon_server: ServerProcess
) -> None:
    """In the Rules screen: a bad value shows the API's error next to its field; a good
    value asks for the write token, is stored (REST returns it) and decides the next sample."""
    put_rule(srvmon_server, CPU_RULE)
    seed(srvmon_server, ["alpha"])
    open_page(page, srvmon_server, "#/rules")
    page.locator('tr[data-rule-id="cpu-hot"] .edit-rule').click()

    page.fill('#rule-editor [data-field="warn"]', "99")  # above crit 95: refused
    page.click("#rule-editor button[type=submit]")
    page.fill("#token-input", srvmon_server.token)  # writes need the write token
    page.click("#token-form button[type=submit]")
    field_error = page.locator('#rule-editor [data-error-for="crit"]')
    expect()(field_error).to_be_visible()
    expect()(field_error).to_contain_text("warn")

    page.fill('#rule-editor [data-field="warn"]', "50")
    page.click("#rule-editor button[type=submit]")
    expect()(page.locator("#rule-saved")).to_be_visible()
    status, stored = request(srvmon_server.base_url, "/api/v1/rules/cpu-hot")
    assert status == 200
    assert stored["warn"] == 50.0
    expect()(page.locator('tr[data-rule-id="cpu-hot"] [data-col="warn"]')).to_have_text("50")

    ingest(srvmon_server.base_url, srvmon_server.token, batch("alpha", cpu=45.0))
    _, quiet = request(srvmon_server.base_url, "/api/v1/alerts")
    assert [a for a in quiet["alerts"] if a["rule_id"] == "cpu-hot"] == []
    ingest(srvmon_server.base_url, srvmon_server.token, batch("alpha", cpu=60.0))
    _, firing = request(srvmon_server.base_url, "/api/v1/alerts")
    fired = [a for a in firing["alerts"] if a["rule_id"] == "cpu-hot"]
    assert [(a["machine_key"], a["level"], a["threshold"]) for a in fired] == [
        ("alpha", "warning", 50.0)
    ]


def test_reconnects_after_server_is_killed_and_restarted(
    page: Any, srvmon_server: ServerProcess
) -> None:
    """SIGKILL the server: the indicator turns to reconnecting; restart it on the same port:
    the indicator is live again without a page reload and new samples reach the tiles."""
    seed(srvmon_server, ["alpha"])
    open_page(page, srvmon_server)
    page.evaluate("window.__loaded = 'same page'")
    srvmon_server.kill()
    expect()(page.locator("#conn")).to_have_text("reconnecting", timeout=10000)
    srvmon_server.start()
    expect()(page.locator("#conn")).to_have_text("live", timeout=20000)
    assert page.evaluate("window.__loaded") == "same page"
    ingest(srvmon_server.base_url, srvmon_server.token, batch("alpha", cpu=66.6))
    expect()(page.locator('.tile[data-host="alpha"] [data-metric="cpu_percent"]')).to_have_text(
        "66.6 %", timeout=LIVE_MS
    )


def test_screenshots_of_every_screen(page: Any, srvmon_server: ServerProcess) -> None:
    """Each screen renders its main element with real data at 1280x800 and at phone width;
    the PNGs are kept in tests/artifacts/ for the docs."""
    put_rule(srvmon_server, CPU_RULE)
    hosts = [f"web-{n}" for n in range(1, 7)]
    seed(srvmon_server, hosts)
    ingest(srvmon_server.base_url, srvmon_server.token, batch("web-2", cpu=97.0))
    ingest(srvmon_server.base_url, srvmon_server.token, batch("web-4", cpu=85.0))
    screens = {
        "overview": ("#/", ".tile"),
        "host": ("#/host/web-1", "#container-rows tr"),
        "container": ("#/host/web-1/container/web", "canvas.chart"),
        "alerts": ("#/alerts", "#active-alerts tr[data-fingerprint]"),
        "rules": ("#/rules", "tr[data-rule-id]"),
        "silences": ("#/silences", "#silence-form"),
    }
    for name, (route, ready) in screens.items():
        open_page(page, srvmon_server, route)
        expect()(page.locator(ready).first).to_be_visible()
        if route.startswith("#/host/"):  # charts drawn from the series API
            expect()(page.locator("canvas.chart:not([data-points])")).to_have_count(0)
        path = screenshot(page, f"dashboard-{name}")
        assert path.stat().st_size > 5000
    page.set_viewport_size(PHONE)
    open_page(page, srvmon_server, "#/")
    expect()(page.locator(".tile").first).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways at phone width ({width}px)"
    screenshot(page, "dashboard-phone")


def test_per_machine_override_wins_for_that_machine_only(
    page: Any, srvmon_server: ServerProcess
) -> None:
    """ "Override…" creates a rule whose selector names one machine; the API then lists it
    (not the fleet rule) among the rules that apply to that machine, and its lower threshold
    fires for that machine but not for another one with the same value."""
    put_rule(srvmon_server, CPU_RULE)
    seed(srvmon_server, ["alpha", "beta"])
    page.add_init_script(f"sessionStorage.setItem('srvmon.token', '{srvmon_server.token}')")
    open_page(page, srvmon_server, "#/rules")
    page.fill("#applies-machine", "alpha")
    page.locator('tr[data-rule-id="cpu-hot"]').get_by_role("button", name="Override…").click()
    expect()(page.locator('#rule-editor [data-field="id"]')).to_have_value("cpu-hot@alpha")
    expect()(page.locator('#rule-editor [data-field="selector.machine"]')).to_have_value("alpha")
    page.fill('#rule-editor [data-field="warn"]', "30")
    page.click("#rule-editor button[type=submit]")
    expect()(page.locator("#rule-saved")).to_have_text("rule cpu-hot@alpha created")

    status, stored = request(srvmon_server.base_url, "/api/v1/rules/cpu-hot@alpha")
    assert status == 200, stored
    assert (stored["selector"]["machine"], stored["warn"], stored["crit"]) == ("alpha", 30.0, 95.0)
    _, applied = request(srvmon_server.base_url, "/api/v1/machines/alpha/rules")
    ids = {rule["id"] for rule in applied["rules"]}
    assert "cpu-hot@alpha" in ids
    assert "cpu-hot" not in ids
    page.get_by_role("button", name="Show the rules that apply").click()
    expect()(page.locator("#applies li", has_text="cpu-hot@alpha")).to_have_count(1)
    selector_cell = page.locator('tr[data-rule-id="cpu-hot@alpha"] td[data-col="selector"]')
    expect()(selector_cell).to_have_text("hosts = alpha")  # the selector in words

    ingest(srvmon_server.base_url, srvmon_server.token, batch("alpha", cpu=40.0))
    ingest(srvmon_server.base_url, srvmon_server.token, batch("beta", cpu=40.0))
    _, active = request(srvmon_server.base_url, "/api/v1/alerts")
    fired = sorted(
        (a["machine_key"], a["rule_id"], a["threshold"])
        for a in active["alerts"]
        if a["rule_id"].startswith("cpu-hot")
    )
    assert fired == [("alpha", "cpu-hot@alpha", 30.0)]


def test_host_detail_sorts_containers_and_charts_series(
    page: Any, srvmon_server: ServerProcess
) -> None:
    """The container table lists the host's containers with their live figures, sorts by a
    clicked header (again: reversed), and a row opens that container's charts, drawn from as
    many series points as the REST API returns for the same range."""
    boxes = [container("web", cpu=5.0), container("api", cpu=30.0), container("db", state="exited")]
    for _ in range(3):
        ingest(srvmon_server.base_url, srvmon_server.token, batch("alpha", containers=boxes))
    open_page(page, srvmon_server, "#/host/alpha")
    names = page.locator("#container-rows tr td:first-child")
    expect()(names).to_have_text(["api", "db", "web"])
    expect()(page.locator('#container-rows tr[data-key="alpha:api"]')).to_contain_text("30.0 %")
    expect()(page.locator('#container-rows tr[data-key="alpha:api"]')).to_contain_text(
        "50.0 MiB / 200 MiB (25 %)"
    )
    cpu_header = page.locator('#containers th[data-sort="cpu"]')
    cpu_header.click()
    expect()(names).to_have_text(["db", "web", "api"])
    cpu_header.click()
    expect()(names).to_have_text(["api", "web", "db"])

    page.locator('#container-rows tr[data-key="alpha:web"]').click()
    expect()(page).to_have_url(f"{srvmon_server.base_url}/#/host/alpha/container/web")
    chart = page.locator('canvas.chart[data-metric="cpu_percent"]')
    expect()(chart).to_have_attribute("data-points", "3")
    _, series = request(
        srvmon_server.base_url, "/api/v1/machines/alpha%3Aweb/series?metric=cpu_percent"
    )
    assert [p[1] for p in series["points"]] == [5.0, 5.0, 5.0]


def test_reopens_the_stream_itself_when_the_browser_gives_up(
    page: Any, srvmon_server: ServerProcess
) -> None:
    """While the server restarts, a proxy-like 503 on the stream makes EventSource close for
    good; the dashboard shows reconnecting, reopens the stream itself with
    ?last_event_id=<last id seen>, and is live again with new samples, without a reload."""
    seed(srvmon_server, ["alpha"])
    stream_urls: list[str] = []
    page.on("request", lambda r: stream_urls.append(r.url) if "/api/v1/events" in r.url else None)
    open_page(page, srvmon_server)
    ingest(srvmon_server.base_url, srvmon_server.token, batch("alpha", cpu=21.0))
    expect()(page.locator('.tile[data-host="alpha"] [data-metric="cpu_percent"]')).to_have_text(
        "21.0 %", timeout=LIVE_MS
    )
    last_id = page.evaluate("window.srvmon.stream.lastId")
    assert last_id is not None
    refused: list[str] = []

    def unavailable(route: Any) -> None:
        refused.append(route.request.url)
        route.fulfill(status=503, body="restarting")

    page.route("**/api/v1/events*", unavailable)
    srvmon_server.kill()
    expect()(page.locator("#conn")).to_have_text("reconnecting", timeout=10000)
    srvmon_server.start()
    deadline = time.monotonic() + 15
    while not refused and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert refused, "the stream was never retried"
    page.unroute("**/api/v1/events*")
    expect()(page.locator("#conn")).to_have_text("live", timeout=20000)
    assert any(f"last_event_id={last_id}" in url for url in stream_urls[1:]), stream_urls
    ingest(srvmon_server.base_url, srvmon_server.token, batch("alpha", cpu=42.0))
    expect()(page.locator('.tile[data-host="alpha"] [data-metric="cpu_percent"]')).to_have_text(
        "42.0 %", timeout=LIVE_MS
    )


def test_overview_sorts_by_cpu_and_status_and_keeps_it_in_the_url(
    page: Any, srvmon_server: ServerProcess
) -> None:
    """Sort by CPU puts the busiest host first, by status puts critical before warning before
    ok; the choice lives in the URL, so a reload keeps it."""
    put_rule(srvmon_server, CPU_RULE)
    for host_id, cpu in (("alpha", 50.0), ("beta", 97.0), ("gamma", 85.0), ("delta", 10.0)):
        ingest(srvmon_server.base_url, srvmon_server.token, batch(host_id, cpu=cpu))
    open_page(page, srvmon_server)
    order = page.locator(".tile")
    expect()(order).to_have_count(4)
    page.select_option("#fleet-sort", "cpu")
    expect()(order.locator(".tile-name")).to_have_text(
        ["beta.example", "gamma.example", "alpha.example", "delta.example"]
    )
    assert order.nth(0).locator(".tile-name").get_attribute("title") == "beta"  # key on hover
    page.select_option("#fleet-sort", "status")
    expect()(order.nth(0)).to_have_attribute("data-host", "beta")
    expect()(order.nth(1)).to_have_attribute("data-host", "gamma")
    assert page.url.endswith("#/?q=&sort=status&mode=auto")
    page.reload()
    expect()(page.locator("#fleet-sort")).to_have_value("status")
    expect()(order.nth(0)).to_have_attribute("data-host", "beta")


def test_a_tile_shows_its_whole_network_figure_at_every_width(
    page: Any, srvmon_server: ServerProcess
) -> None:
    """The Net row holds two rates; on a narrow tile it wraps between them, and neither is
    clipped (the value's scroll box fits its box) at the screenshots', a laptop's and a
    phone's width."""
    sample = attrs.evolve(
        batch("netty"),
        host=attrs.evolve(
            host_sample(),
            net=(NetIO(interface="eth0", rx_bytes_per_s=7.6 * MIB, tx_bytes_per_s=1.8 * MIB),),
        ),
    )
    ingest(srvmon_server.base_url, srvmon_server.token, sample)
    open_page(page, srvmon_server, "#/?q=&sort=name&mode=tiles")
    value = page.locator('.tile[data-host="netty"] .tile-value[data-metric="net_bytes_per_s"]')
    expect()(value).to_have_text("↓7.6 MiB/s ↑1.8 MiB/s")  # (playwright folds white space)
    assert value.text_content() == "↓7.6\u00a0MiB/s ↑1.8\u00a0MiB/s"
    for size in ({"width": 1280, "height": 800}, {"width": 1366, "height": 768}, PHONE):
        page.set_viewport_size(size)
        box = value.evaluate("e => [e.scrollWidth, e.clientWidth, e.scrollHeight, e.clientHeight]")
        assert box[0] <= box[1] and box[2] <= box[3], (size, box)
