"""Charts that read well: at 360, 1400 and 2560 px and every range, no two axis labels
overlap (boxes measured in the DOM), y labels are distinct, the x axis is the data's own
extent until the window fills, values arrive live, and a container page shows the
container's own state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from attrs import evolve

from srvmon_core.schema import ContainerSample
from tests.browser.feed import batch, container, ingest
from tests.browser.test_dashboard import LIVE_MS, expect, open_page
from tests.fixtures.browser import ServerProcess

pytestmark = pytest.mark.browser

HOST = "3d1282c0aa0000000000000000000001"
WIDTHS = (360, 1400, 2560)
RANGES = ("15m", "1h", "24h", "7d")

LAYOUT = """() => [...document.querySelectorAll(".charts figure")].map((figure) => {
  const canvas = figure.querySelector("canvas");
  const box = figure.getBoundingClientRect();
  return {
    metric: canvas.dataset.metric,
    points: Number(canvas.dataset.points),
    xFrom: Number(canvas.dataset.xFrom),
    xTo: Number(canvas.dataset.xTo),
    figure: [box.left, box.top, box.right, box.bottom],
    labels: [...figure.querySelectorAll(".chart-labels span")].map((span) => {
      const r = span.getBoundingClientRect();
      const box = [r.left, r.top, r.right, r.bottom];
      return { cls: span.className, text: span.textContent, box };
    }),
  };
})"""


def tiny(name: str) -> ContainerSample:
    """A container whose rates are a byte or two a second: the case that printed
    "1 B/s, 1 B/s, 0 B/s"."""
    return evolve(
        container(name, cpu=0.02),
        net_rx_bytes_per_s=1.2,
        net_tx_bytes_per_s=0.4,
        block_read_bytes_per_s=0.0,
        block_write_bytes_per_s=1.6,
    )


def thirty_minutes(server: ServerProcess) -> float:
    """A host named vm with two containers, reporting every 30 s for the last 30 min;
    returns the first sample's epoch seconds."""
    now = datetime.now(UTC)
    first = now - timedelta(minutes=30)
    for i in range(61):
        at = first + timedelta(seconds=30 * i)
        boxes = [tiny("web"), container("db", state="exited")]
        one = batch(HOST, at=at, cpu=20.0 + (i % 7) * 3.1, containers=boxes, interval=30.0)
        ingest(server.base_url, server.token, evolve(one, hostname="vm"))
    return first.timestamp()


def overlaps(a: list[float], b: list[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def check_layout(charts: list[dict[str, Any]], where: str) -> None:
    for chart in charts:
        name = f"{where} {chart['metric']}"
        labels = chart["labels"]
        for i, first in enumerate(labels):
            left, top, right, bottom = chart["figure"]
            x0, y0, x1, y1 = first["box"]
            assert left - 0.5 <= x0 and x1 <= right + 0.5, (name, first, chart["figure"])
            assert top - 0.5 <= y0 and y1 <= bottom + 0.5, (name, first, chart["figure"])
            for second in labels[i + 1 :]:
                assert not overlaps(first["box"], second["box"]), (name, first, second)
        ys = [label["text"] for label in labels if label["cls"] == "tick-y"]
        assert len(ys) == len(set(ys)), (name, ys)
        if chart["points"]:
            assert len(ys) >= 2, (name, ys)
            assert sum(label["cls"] == "tick-x" for label in labels) >= 2, (name, labels)


def test_no_tick_label_overlaps_at_three_widths(page: Any, srvmon_server: ServerProcess) -> None:
    """Host and container charts at 360, 1400 and 2560 px, each range: label boxes never
    intersect and stay inside their chart; y labels differ; container rates of a byte a
    second read 0 B/s, 1 B/s, 2 B/s."""
    thirty_minutes(srvmon_server)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        for route in (f"#/host/{HOST}", f"#/host/{HOST}/container/web"):
            open_page(page, srvmon_server, route)
            for name in RANGES:
                page.click(f'.range-picker button[data-range="{name}"]')
                expect()(page.locator(f'.range-picker button[data-range="{name}"]')).to_have_class(
                    "active"
                )
                expect()(page.locator("canvas.chart:not([data-points])")).to_have_count(0)
                page.wait_for_timeout(150)  # the answers of this range are drawn
                check_layout(page.evaluate(LAYOUT), f"{width}px {route} {name}")
            if route.endswith("/web"):
                page.click('.range-picker button[data-range="1h"]')
                rx = page.locator('figure:has(canvas[data-metric="net_rx_bytes_per_s"]) .tick-y')
                expect()(rx).to_have_text(["0 B/s", "1 B/s", "2 B/s"])


def test_the_x_axis_is_the_data_extent_and_values_arrive_live(
    page: Any, srvmon_server: ServerProcess
) -> None:
    """30 minutes of data on the 1h range span the chart's width (not its right half); a
    sample ingested now is on the 15m chart within 2 s without a reload; the container page
    shows the container's state, not the host's."""
    first = thirty_minutes(srvmon_server)
    open_page(page, srvmon_server, f"#/host/{HOST}")
    page.click('.range-picker button[data-range="1h"]')
    cpu = page.locator('canvas.chart[data-metric="cpu_percent"]')
    expect()(cpu).to_have_attribute("data-points", "61")
    x_from = float(cpu.get_attribute("data-x-from") or 0)
    assert abs(x_from - first) < 2, (x_from, first)

    page.click('.range-picker button[data-range="15m"]')
    expect()(cpu).not_to_have_attribute("data-points", "61")
    before = int(cpu.get_attribute("data-points") or 0)
    assert before in (30, 31)  # the samples of the last 900 s, 30 s apart
    one = batch(HOST, cpu=88.0, interval=30.0)
    ingest(srvmon_server.base_url, srvmon_server.token, evolve(one, hostname="vm"))
    expect()(cpu).to_have_attribute("data-points", str(before + 1), timeout=LIVE_MS)

    open_page(page, srvmon_server, f"#/host/{HOST}/container/db")
    pill = page.locator("#machine-status")
    expect()(pill).to_have_text("exited")
    expect()(pill).to_have_attribute("data-status", "warning")
    expect()(page.locator("h1")).to_have_text("vm/db")
    open_page(page, srvmon_server, f"#/host/{HOST}/container/web")
    expect()(pill).to_have_text("running")
