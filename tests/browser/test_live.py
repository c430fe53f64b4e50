"""The live view in a real chromium: each screen gets what it shows, freshness comes from
the server, a slow tab sees the newest values, the consumer's largest batch disconnects
nobody, and the dense fleet shows 500 hosts at once."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.browser.feed import CPU_RULE, batch, container, expect, ingest, request
from tests.browser.live import (
    EVENT_PROBE,
    SlowLink,
    batches_body,
    fake_clock_now,
    host_name,
)
from tests.fixtures.browser import ServerProcess, screenshot
from tests.helpers import missing

pytestmark = pytest.mark.browser

LAPTOP = {"width": 1366, "height": 768}


def open_page(page: Any, base_url: str, route: str = "#/") -> None:
    page.goto(f"{base_url}/{route}")
    expect()(page.locator("#conn")).to_have_text("live", timeout=10000)


def probe(page: Any) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate("window.__probe")
    return result


def post_batches(base_url: str, token: str, body: bytes) -> list[dict[str, Any]]:
    """POST a ``{"batches": [...]}`` body; 500 hosts' first batch creates 15,500 machines,
    which may take a while on a busy machine."""
    req = urllib.request.Request(f"{base_url}/api/v1/ingest", data=body, method="POST")
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=180) as response:
        assert response.status == 200
        answer = json.loads(response.read())
    results: list[dict[str, Any]] = answer["results"]
    assert all("stored" in r for r in results), results[:3]
    return results


def cells(page: Any, attribute: str) -> dict[str, str]:
    shown: dict[str, str] = page.evaluate(
        """name => Object.fromEntries([...document.querySelectorAll('.cell')]
            .map(c => [c.dataset.host, c.getAttribute(name)]))""",
        attribute,
    )
    return shown


def wait_until(check: Any, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last is True:
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} not within {seconds} s (last: {last})")


def test_fleet_view_gets_summaries_never_container_samples(
    page: Any, srvmon_server: ServerProcess
) -> None:
    """The fleet screen subscribes to view=fleet: it gets host summaries (container counts
    included) and no sample event at all; a host page subscribes to that host and gets its
    own containers' samples only, its container table loaded on demand."""
    page.add_init_script(EVENT_PROBE)
    boxes = [container(f"svc-{n}", state="exited" if n == 0 else "running") for n in range(5)]
    for host_id in ("alpha", "beta", "gamma"):
        ingest(srvmon_server.base_url, srvmon_server.token, batch(host_id, containers=boxes))
    open_page(page, srvmon_server.base_url)
    for host_id, cpu in (("alpha", 31.5), ("beta", 32.5), ("gamma", 33.5)):
        ingest(
            srvmon_server.base_url, srvmon_server.token, batch(host_id, cpu=cpu, containers=boxes)
        )
    tile = page.locator('.tile[data-host="gamma"]')
    expect()(tile.locator('[data-metric="cpu_percent"]')).to_have_text("33.5 %")
    expect()(tile.locator(".tile-containers")).to_have_text("5 containers, 1 unhealthy/stopped")
    seen = probe(page)
    assert [u.split("/api/v1/events")[1] for u in seen["urls"]] == ["?view=fleet"]
    assert seen["counts"].get("summary", 0) >= 6
    assert "sample" not in seen["counts"] and "machine" not in seen["counts"]

    page.click('.tile[data-host="alpha"] .tile-name')
    expect()(page.locator("#container-rows tr")).to_have_count(5)
    for host_id in ("beta", "alpha"):
        ingest(srvmon_server.base_url, srvmon_server.token, batch(host_id, containers=boxes))
    expect()(page.locator("#container-rows tr").first).to_be_visible()
    wait_until(
        lambda: probe(page)["sampleHosts"].get("alpha/container", 0) >= 5,
        5,
        "alpha's container samples",
    )
    seen = probe(page)
    assert "?view=host&host=alpha" in seen["urls"][-1]
    assert set(seen["sampleHosts"]) == {"alpha/host", "alpha/container"}


def test_silent_comes_from_the_server_and_ends_with_the_next_sample(
    page: Any, start_inprocess: Any
) -> None:
    """A host is silent when the server's own check says so (its clock, not the tab's event
    arrivals): the tile greys with the local time of the last sample; the next sample makes
    it ok. A tab that merely receives nothing for a while shows no host silent."""
    clock = fake_clock_now()
    server = start_inprocess(clock, silent_after_seconds=30, silence_check_seconds=0.1)
    for host_id in ("alpha", "beta"):
        ingest(server.base_url, server.token, batch(host_id, at=clock.now))
    open_page(page, server.base_url)
    tile = page.locator('.tile[data-host="alpha"]')
    expect()(tile).to_have_attribute("data-status", "ok")
    page.wait_for_timeout(3500)  # more than 3 x the 1 s interval with nothing arriving
    expect()(tile).to_have_attribute("data-status", "ok")
    last_sample_ms = int(clock.now.timestamp() * 1000)
    clock.advance(31)
    ingest(server.base_url, server.token, batch("beta", at=clock.now))
    expect()(tile).to_have_attribute("data-status", "silent", timeout=3000)
    expect()(page.locator('.tile[data-host="beta"]')).not_to_have_attribute("data-status", "silent")
    local = page.evaluate(
        """ms => new Date(ms).toLocaleString(undefined, {year: "numeric", month: "2-digit",
        day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit"})""",
        last_sample_ms,
    )
    expect()(tile.locator(".silent-mark")).to_have_text(f"silent since {local}")
    ingest(server.base_url, server.token, batch("alpha", at=clock.now))
    expect()(tile).not_to_have_attribute("data-status", "silent", timeout=3000)
    expect()(tile.locator(".silent-mark")).to_be_hidden()


def test_the_badge_shows_the_age_of_the_newest_data(page: Any, start_inprocess: Any) -> None:
    """Next to the connection state, the age of the newest sample shown, by the server's
    clock (hello's server_time), not the tab's: samples 20 s old read about 20 s and are
    marked stale; a sample of the server's present brings it under 5 s, not stale."""
    clock = fake_clock_now()
    server = start_inprocess(clock)
    ingest(server.base_url, server.token, batch("alpha", at=clock.now - timedelta(seconds=20)))
    open_page(page, server.base_url)
    age = page.locator("#data-age")
    expect()(age).to_be_visible()
    expect()(age).to_have_class(re.compile(r"\bstale\b"))
    old_ms = int(age.get_attribute("data-age-ms") or "-1")
    assert 20_000 <= old_ms < 26_000, old_ms
    assert age.inner_text() in {f"{s} s" for s in range(20, 27)}
    ingest(server.base_url, server.token, batch("alpha", at=clock.now))
    expect()(age).not_to_have_class(re.compile(r"\bstale\b"), timeout=3000)
    fresh_ms = int(age.get_attribute("data-age-ms") or "-1")
    assert 0 <= fresh_ms < 5_000, fresh_ms


def test_a_slow_tab_sees_the_newest_values_not_stale_ones(page: Any, start_inprocess: Any) -> None:
    """The page reads through a link far slower than the server publishes (summaries are
    not rate-limited here, so they come as fast as batches are stored). The server keeps
    only the newest summary per host for it: after the burst every cell shows the last
    round within seconds, each host's values arrive in order (never an older after a
    newer), and most of the published summaries were never sent."""
    server = start_inprocess(summary_interval_seconds=0.0, sse_send_buffer_bytes=16384)
    hosts, rounds = 40, 60
    cpu = [[r + (h % 10) / 10 for h in range(hosts)] for r in range(rounds)]  # round = int(cpu)
    at = datetime.now(UTC)
    post_batches(server.base_url, server.token, batches_body(hosts, 0, at, lambda h: cpu[0][h]))
    link = SlowLink(server.running.port, bytes_per_second=60_000)
    try:
        page.add_init_script(EVENT_PROBE)
        page.set_viewport_size(LAPTOP)
        open_page(page, f"http://127.0.0.1:{link.port}", "#/?mode=dense")
        expect()(page.locator(".cell")).to_have_count(hosts)
        for r in range(1, rounds):
            when = at + timedelta(seconds=r)
            post_batches(
                server.base_url,
                server.token,
                batches_body(hosts, 0, when, lambda h, r=r: cpu[r][h]),
            )
        finished = time.monotonic()
        final = {host_name(h): f"{cpu[-1][h]:.1f}" for h in range(hosts)}
        wait_until(lambda: cells(page, "data-cpu") == final, 10, "the newest values on screen")
        caught_up = time.monotonic() - finished
        seen = probe(page)
        assert seen["errors"] == 0 and len(seen["urls"]) == 1  # never disconnected
        for h in range(hosts):
            arrived = [int(v) for v in seen["cpu"][host_name(h)]]
            assert arrived == sorted(set(arrived)), (host_name(h), arrived)
            assert arrived[-1] == rounds - 1
        received = sum(len(v) for v in seen["cpu"].values())
        published = hosts * rounds
        assert received < published / 2, (received, published)
        assert caught_up < 6, caught_up
    finally:
        link.close()


HOT = {host_name(123): 97.0, host_name(321): 98.5, host_name(444): 99.0}
WARM = {host_name(7): 85.0, host_name(250): 90.0}
FLEET, CONTAINERS = 500, 30


def fleet_cpu(round_no: int) -> dict[str, float]:
    """Each round's CPU per host: most between 20 and 60 %, three critical, two warning."""
    calm = {host_name(h): 20.0 + (h * 7 + round_no * 3) % 40 + 0.5 for h in range(FLEET)}
    bump = round_no * 0.5
    return calm | {k: v + bump for k, v in HOT.items()} | {k: v + bump for k, v in WARM.items()}


@pytest.fixture(scope="module")
def fleet_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``srvmon server`` with 500 hosts x 30 containers stored (one stopped each) and a CPU
    rule that makes three of them critical and two warning. It takes 16 MiB bodies: 500
    envelopes of 31 samples, as the collector encodes them, are 8.6 MB (the consumer
    itself keeps its requests under 4 MiB)."""
    server = ServerProcess(
        tmp_path_factory.mktemp("fleet"), extra=["--max-body-bytes", str(16 * 1024 * 1024)]
    )
    try:
        server.start()
    except RuntimeError as exc:
        missing("srvmon server", str(exc))
    status, answer = request(
        server.base_url, "/api/v1/rules/cpu-hot", server.token, "PUT", CPU_RULE
    )
    assert status == 200, answer
    cpu = fleet_cpu(0)
    body = batches_body(FLEET, CONTAINERS, datetime.now(UTC), lambda h: cpu[host_name(h)])
    post_batches(server.base_url, server.token, body)
    yield server
    server.stop()


def test_largest_consumer_batch_while_a_browser_watches(
    page: Any, fleet_server: ServerProcess
) -> None:
    """The consumer's largest request (500 envelopes x 31 samples, one POST) while a
    browser watches the fleet: the stream stays open (no error, no reconnect, no resync,
    nobody dropped) and every host's cell shows the newest values."""
    base, token = fleet_server.base_url, fleet_server.token
    page.add_init_script(EVENT_PROBE)
    page.set_viewport_size(LAPTOP)
    open_page(page, base)
    expect()(page.locator(".cell")).to_have_count(FLEET)
    newest = fleet_cpu(1)
    at = datetime.now(UTC) + timedelta(seconds=1)
    body = batches_body(FLEET, CONTAINERS, at, lambda h: newest[host_name(h)])
    results = post_batches(base, token, body)
    assert sum(r["stored"] for r in results) == FLEET * (CONTAINERS + 1)
    expected = {key: f"{value:.1f}" for key, value in newest.items()}
    wait_until(lambda: cells(page, "data-cpu") == expected, 10, "every host's newest CPU")
    expect()(page.locator("#conn")).to_have_text("live")
    seen = probe(page)
    assert seen["errors"] == 0 and seen["opens"] == 1 and len(seen["urls"]) == 1
    assert "resync" not in seen["counts"] and "sample" not in seen["counts"]
    text = metrics_text(base)
    assert "srvmon_server_sse_dropped_clients_total 0.0" in text
    assert "srvmon_server_sse_resyncs_total 0.0" in text


def metrics_text(base_url: str) -> str:
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as answer:
        text: str = answer.read().decode()
    return text


def test_dense_fleet_at_500_hosts(page: Any, fleet_server: ServerProcess) -> None:
    """500 hosts x 30 containers at 1366x768: one cell per host, all on the first screen,
    the critical and warning hosts first and counted in the toolbar, CPU/memory as
    attributes and bars; a click opens the host with its 30 containers loaded on demand."""
    base = fleet_server.base_url
    page.add_init_script(EVENT_PROBE)
    page.set_viewport_size(LAPTOP)
    open_page(page, base)
    grid = page.locator(".cell")
    expect()(grid).to_have_count(FLEET)
    expect()(page.locator("#fleet-summary")).to_have_text(f"{FLEET} of {FLEET} hosts")
    expect()(page.locator("#fleet-states")).to_have_text("3 critical · 2 warning")
    first_five = [grid.nth(n).get_attribute("data-host") for n in range(5)]
    assert first_five[:3] == sorted(HOT) and first_five[3:] == sorted(WARM)
    box = page.evaluate(
        """() => {
          const crit = [...document.querySelectorAll('.cell[data-status="critical"]')];
          const all = [...document.querySelectorAll('.cell')];
          return {
            critical: crit.length,
            criticalBottom: Math.max(...crit.map(c => c.getBoundingClientRect().bottom)),
            lastBottom: Math.max(...all.map(c => c.getBoundingClientRect().bottom)),
            scrollY: window.scrollY, height: window.innerHeight,
          };
        }"""
    )
    assert box["critical"] == 3 and box["scrollY"] == 0
    assert box["criticalBottom"] <= box["height"]
    assert box["lastBottom"] <= box["height"], box  # the whole room on one screen
    _, listed = request(base, f"/api/v1/machines?limit={FLEET}")
    stored = {h["key"]: h["metrics"] for h in listed["hosts"]}
    assert cells(page, "data-cpu") == {k: f"{m['cpu_percent']:.1f}" for k, m in stored.items()}
    assert set(cells(page, "data-mem").values()) == {"40.0"}
    screenshot(page, "dashboard-fleet-dense")
    page.locator(f'.cell[data-host="{host_name(321)}"]').click()
    expect()(page).to_have_url(f"{base}/#/host/{host_name(321)}")
    expect()(page.locator("#container-rows tr")).to_have_count(CONTAINERS)
    expect()(page.locator("#container-rows tr.bad")).to_have_count(1)
    assert f"view=host&host={host_name(321)}" in probe(page)["urls"][-1]
