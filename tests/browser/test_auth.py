"""Reads behind a token (``--read-auth``): the dashboard asks once, then works live."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.feed import batch, ingest
from tests.browser.test_dashboard import LIVE_MS, expect, seed
from tests.fixtures.browser import ServerProcess

pytestmark = pytest.mark.browser


def test_read_token_is_asked_once_and_used_for_fetch_and_events(
    page: Any, stopped_server: ServerProcess
) -> None:
    """With read auth on, the first 401 shows the token form; after the token is given the
    fleet loads over REST (Bearer) and live samples arrive over SSE (?token=); the token
    stays in sessionStorage, so a reload does not ask again."""
    stopped_server.extra = ["--read-auth"]
    stopped_server.start()
    seed(stopped_server, ["alpha", "beta"])
    page.goto(f"{stopped_server.base_url}/#/")
    dialog = page.locator("#token-dialog")
    expect()(dialog).to_be_visible()
    expect()(page.locator(".tile")).to_have_count(0)
    page.fill("#token-input", stopped_server.token)
    page.click("#token-form button[type=submit]")
    expect()(dialog).to_be_hidden()
    expect()(page.locator(".tile")).to_have_count(2)
    expect()(page.locator("#conn")).to_have_text("live")
    ingest(stopped_server.base_url, stopped_server.token, batch("alpha", cpu=55.5))
    expect()(page.locator('.tile[data-host="alpha"] [data-metric="cpu_percent"]')).to_have_text(
        "55.5 %", timeout=LIVE_MS
    )
    assert page.evaluate("sessionStorage.getItem('srvmon.token')") == stopped_server.token

    page.reload()
    expect()(page.locator("#conn")).to_have_text("live")
    expect()(page.locator(".tile")).to_have_count(2)
    expect()(dialog).to_be_hidden()
