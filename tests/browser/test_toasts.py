"""Toasts: one per alert that goes to firing, at most 5 at once, none for silenced alerts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from srvmon_core.codec import encode_batch
from tests.browser.feed import batch, ingest, request
from tests.browser.test_dashboard import CPU_RULE, expect, open_page, put_rule
from tests.fixtures.browser import ServerProcess

pytestmark = pytest.mark.browser

MAX_TOASTS = 5
TOAST_MS = 8000
"""app.js: at most 5 toasts at once, each removed after 8 s."""
WAIT_MS = 10000
"""Generous waits for what the browser receives; the values checked are exact."""

RECORD_TOASTS = """() => {
  window.__toasted = [];
  new MutationObserver((changes) => {
    for (const change of changes) {
      for (const node of change.addedNodes) window.__toasted.push(node.textContent);
    }
  }).observe(document.getElementById("toasts"), { childList: true });
}"""
"""Log the text of every toast ever added, so one removed since still counts."""


def seed_hosts(server: ServerProcess, host_ids: list[str]) -> None:
    """Hosts below every threshold and without containers (a stopped container would fire
    the default rule after 15 s, and toast)."""
    for host_id in host_ids:
        ingest(server.base_url, server.token, batch(host_id, cpu=12.5))


def toast_text(host_id: str, cpu: float = 97.0) -> str:
    """A toast names the machine as people do: its hostname (feed.batch: <id>.example)."""
    return f"critical: {host_id}.example cpu hot {cpu:.1f} % (threshold 95.0 %)"


def test_at_most_five_toasts_the_most_recent_ones(page: Any, srvmon_server: ServerProcess) -> None:
    """12 machines breach the critical threshold in one ingest request: each firing alert is
    toasted in order, only the 5 most recent stay on screen, a click removes one, and the
    others go after 8 s (page clock paused, so the 8 s cannot run out while we look)."""
    put_rule(srvmon_server, CPU_RULE)
    hosts = [f"node-{n:02d}" for n in range(1, 13)]
    seed_hosts(srvmon_server, hosts)
    page.clock.install()
    open_page(page, srvmon_server)
    expect()(page.locator(".tile")).to_have_count(len(hosts))
    page.clock.pause_at(datetime.now(UTC) + timedelta(seconds=1))
    page.evaluate(RECORD_TOASTS)

    body = {"batches": [json.loads(encode_batch(batch(h, cpu=97.0))) for h in hosts]}
    status, answer = request(
        srvmon_server.base_url, "/api/v1/ingest", srvmon_server.token, "POST", body
    )
    assert status == 200, answer
    assert [r.get("stored") for r in answer["results"]] == [1] * len(hosts)
    _, active = request(srvmon_server.base_url, "/api/v1/alerts")
    firing = sorted(a["machine_key"] for a in active["alerts"] if a["state"] == "firing")
    assert firing == hosts

    page.wait_for_function(
        "n => window.__toasted.length >= n", arg=len(hosts), polling=100, timeout=WAIT_MS
    )
    assert page.evaluate("window.__toasted") == [toast_text(h) for h in hosts]
    toasts = page.locator("#toasts .toast")
    expect()(toasts).to_have_count(MAX_TOASTS)
    latest = hosts[-MAX_TOASTS:]  # node-08 .. node-12, oldest on top
    expect()(toasts).to_have_text([toast_text(h) for h in latest])
    expect()(toasts.locator("strong")).to_have_text([f"critical: {h}.example" for h in latest])

    toasts.filter(has_text="node-10").click()
    expect()(toasts).to_have_count(MAX_TOASTS - 1)
    expect()(toasts).to_have_text([toast_text(h) for h in latest if h != "node-10"])

    page.clock.run_for(TOAST_MS - 1000)
    expect()(toasts).to_have_count(MAX_TOASTS - 1)
    page.clock.run_for(1000)
    expect()(toasts).to_have_count(0)
    assert len(page.evaluate("window.__toasted")) == len(hosts)


def test_silenced_alert_is_listed_but_not_toasted(page: Any, srvmon_server: ServerProcess) -> None:
    """With a silence on alpha, alpha's breach reaches the browser and is listed as
    "firing (silenced)" in the active alerts, but no toast is ever added; beta's breach right
    after it, not silenced, is toasted (the only toast)."""
    put_rule(srvmon_server, CPU_RULE)
    seed_hosts(srvmon_server, ["alpha", "beta"])
    ends = datetime.now(UTC) + timedelta(hours=1)
    status, silence = request(
        srvmon_server.base_url,
        "/api/v1/silences",
        srvmon_server.token,
        "POST",
        {"matchers": {"machine": "alpha"}, "ends_at": ends.isoformat(), "comment": "rack work"},
    )
    assert status == 201, silence
    open_page(page, srvmon_server, "#/alerts")
    expect()(page.locator("#active-alerts tr.empty")).to_have_text("no active alerts")
    expect()(page.locator(".toast")).to_have_count(0)
    page.evaluate(RECORD_TOASTS)

    ingest(srvmon_server.base_url, srvmon_server.token, batch("alpha", cpu=97.0))
    page.wait_for_function(
        """() => [...window.srvmon.alerts.values()].some(
          (a) => a.machine === "alpha" && a.state === "firing" && a.silenced)""",
        polling=100,
        timeout=WAIT_MS,
    )
    cpu_rows = page.locator("#active-alerts tr[data-fingerprint]", has_text="cpu hot")
    row = cpu_rows.filter(has_text="alpha")
    expect()(row).to_have_count(1, timeout=WAIT_MS)
    expect()(row.locator("td").nth(1)).to_have_text("firing (silenced)")
    expect()(row).to_contain_text("97.0 % vs 95.0 %")
    toasts = page.locator("#toasts .toast")
    expect()(toasts).to_have_count(0)
    assert page.evaluate("window.__toasted") == []
    expect()(page.locator("#alert-count")).to_be_hidden()  # the badge counts only unsilenced

    ingest(srvmon_server.base_url, srvmon_server.token, batch("beta", cpu=97.0))
    expect()(toasts).to_have_count(1, timeout=WAIT_MS)
    expect()(toasts).to_have_text(toast_text("beta"))
    assert page.evaluate("window.__toasted") == [toast_text("beta")]
    expect()(cpu_rows).to_have_count(2)
    expect()(page.locator("#alert-count")).to_have_text("1")
    expect()(cpu_rows.filter(has_text="beta").locator("td").nth(1)).to_have_text("firing")
