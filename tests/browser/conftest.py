"""Fixtures of the browser tests beyond tests/fixtures/browser.py."""

from tests.browser.live import start_inprocess

__all__ = ["start_inprocess"]
