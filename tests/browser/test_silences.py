"""The Silences screen: create with matchers and a time window, list, expire."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.browser.feed import request
from tests.browser.test_dashboard import expect, open_page
from tests.fixtures.browser import ServerProcess

pytestmark = pytest.mark.browser


def test_create_list_and_expire_a_silence(page: Any, srvmon_server: ServerProcess) -> None:
    """A silence made in the form (after giving the write token) is stored with its matchers,
    window and comment, listed on screen, and gone from the active list once expired."""
    open_page(page, srvmon_server, "#/silences")
    form = page.locator("#silence-form")
    form.locator('[name="machine"]').fill("web-*")
    form.locator('[name="rule"]').fill("cpu-hot")
    form.locator('[name="starts_at"]').fill("2030-01-02T03:04")
    form.locator('[name="ends_at"]').fill("2030-01-02T05:04")
    form.locator('[name="comment"]').fill("kernel upgrade")
    form.locator("button[type=submit]").click()
    page.fill("#token-input", srvmon_server.token)
    page.click("#token-form button[type=submit]")
    expect()(page.locator("#silence-message")).to_have_text("silence created")
    rows = page.locator("#silence-rows tr")
    expect()(rows).to_have_count(1)
    expect()(rows).to_contain_text("machine=web-* rule=cpu-hot")
    expect()(rows).to_contain_text("kernel upgrade")

    _, listed = request(srvmon_server.base_url, "/api/v1/silences")
    assert len(listed["silences"]) == 1
    stored = listed["silences"][0]
    assert stored["matchers"] == {"machine": "web-*", "rule": "cpu-hot"}
    assert stored["comment"] == "kernel upgrade"
    offset_s = page.evaluate("new Date('2030-01-02T03:04').getTimezoneOffset() * 60")
    starts = datetime.fromisoformat(stored["starts_at"]).astimezone(UTC).replace(tzinfo=None)
    ends = datetime.fromisoformat(stored["ends_at"]).astimezone(UTC).replace(tzinfo=None)
    assert (starts - datetime(2030, 1, 2, 3, 4)).total_seconds() == offset_s
    assert (ends - starts).total_seconds() == 7200

    rows.get_by_role("button", name="Expire").click()
    expect()(page.locator("#silence-message")).to_have_text(f"silence {stored['id']} expired")
    expect()(rows).to_have_count(0)
    _, after = request(srvmon_server.base_url, "/api/v1/silences")
    assert after["silences"] == []
