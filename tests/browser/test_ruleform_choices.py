"""The rule editor's selects offer exactly the choices srvmon_core.rules accepts and the
metrics srvmon_core.metrics defines (no browser needed: the lists are read from the JS)."""

from __future__ import annotations

import re
import typing
from pathlib import Path

from srvmon_core import rules
from srvmon_core.metrics import METRICS

FORM = (Path(__file__).resolve().parents[2] / "srvmon_server/static/views/ruleform.js").read_text()


def js_list(name: str) -> list[str]:
    match = re.search(rf"export const {name} = \[([^\]]*)\]", FORM)
    assert match is not None, name
    return re.findall(r'"([^"]+)"', match.group(1))


def test_selects_offer_the_literals_of_the_rule_schema() -> None:
    """Kinds, selector kinds, directions, levels and window aggregates, in order."""
    for js, literal in (
        ("RULE_KINDS", rules.RuleKind),
        ("SELECTOR_KINDS", rules.SelectorKind),
        ("DIRECTIONS", rules.Direction),
        ("LEVELS", rules.Level),
        ("WINDOW_AGGS", rules.WindowAgg),
    ):
        assert js_list(js) == list(typing.get_args(literal)), js


def test_metric_selects_list_every_flat_metric() -> None:
    """The metric select of hosts and of containers lists each kind's metrics, in order."""
    assert js_list("HOST_METRICS") == [m.name for m in METRICS if m.kind == "host"]
    assert js_list("CONTAINER_METRICS") == [m.name for m in METRICS if m.kind == "container"]
