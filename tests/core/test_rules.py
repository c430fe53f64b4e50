"""Rule configuration: parsing, validation errors with paths, precedence."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from srvmon_core.defaults import DEFAULT_RULES
from srvmon_core.engine import MachineRef
from srvmon_core.errors import ConfigError
from srvmon_core.rules import (
    Rule,
    Selector,
    effective_rules,
    load_rules,
    rule_from_dict,
    rule_to_dict,
)

pytestmark = pytest.mark.core

TOML = """
[[rule]]
id = "cpu"
name = "CPU busy"
metric = "cpu_percent"
warn = 85
crit = 95
warn_recovery = 80
for_seconds = 60
window_seconds = 30
window_agg = "max"
repeat_seconds = 600
selector = { kind = "host", machine = "web-*" }

[[rule]]
id = "shop-down"
name = "Shop container stopped"
kind = "container_stopped"
level = "critical"
[rule.selector]
kind = "container"
host = "rack1-*"
labels = { "com.docker.compose.project" = "shop*" }
"""


def test_load_toml() -> None:
    """TOML [[rule]] tables become Rules with every given field and defaults elsewhere."""
    cpu, shop = load_rules(TOML, "toml")
    assert cpu == Rule(
        id="cpu",
        name="CPU busy",
        metric="cpu_percent",
        warn=85.0,
        crit=95.0,
        warn_recovery=80.0,
        for_seconds=60.0,
        window_seconds=30.0,
        window_agg="max",
        repeat_seconds=600.0,
        selector=Selector(kind="host", machine="web-*"),
    )
    assert shop.kind == "container_stopped" and shop.level == "critical"
    assert shop.selector == Selector(
        kind="container", host="rack1-*", labels={"com.docker.compose.project": "shop*"}
    )
    assert shop.enabled and shop.for_seconds == 0.0 and shop.metric is None


def test_load_json_object_and_list_agree() -> None:
    """JSON accepts {"rules": [...]} and a bare list, and both equal the TOML rules."""
    rules = load_rules(TOML, "toml")
    as_dicts = [rule_to_dict(r) for r in rules]
    assert load_rules(json.dumps({"rules": as_dicts}), "json") == rules
    assert load_rules(json.dumps(as_dicts), "json") == rules


def test_defaults_round_trip_through_dicts() -> None:
    """rule_to_dict then rule_from_dict gives the same rule, for every default rule."""
    for rule in DEFAULT_RULES:
        assert rule_from_dict(json.loads(json.dumps(rule_to_dict(rule)))) == rule


@given(
    warn=st.floats(min_value=-1e6, max_value=1e6),
    gap=st.floats(min_value=0, max_value=1e6),
    below=st.booleans(),
)
def test_any_valid_threshold_round_trips(warn: float, gap: float, below: bool) -> None:
    """Any consistent warn/crit pair survives rule_to_dict → JSON → rule_from_dict."""
    crit = warn - gap if below else warn + gap
    rule = Rule(
        id="r",
        name="r",
        metric="load_1",
        warn=warn,
        crit=crit,
        direction="below" if below else "above",
    )
    assert rule_from_dict(json.loads(json.dumps(rule_to_dict(rule)))) == rule


BAD_RULES = [
    ({"id": "x", "metric": "cpu_percent", "warn": "high"}, "$.rules[1].warn", "must be a number"),
    ({"id": "x", "metric": "cpu_percent", "warn": True}, "$.rules[1].warn", "must be a number"),
    ({"id": "x", "metric": "cpu_percent"}, "$.rules[1].warn", "at least one of warn and crit"),
    ({"id": "x", "metric": "no_such", "warn": 1}, "$.rules[1].metric", "unknown any metric"),
    (
        {"id": "x", "metric": "pids", "warn": 1, "selector": {"kind": "host"}},
        "$.rules[1].metric",
        "unknown host metric",
    ),
    ({"name": "x", "metric": "cpu_percent", "warn": 1}, "$.rules[1].id", "is required"),
    ({"id": "", "metric": "cpu_percent", "warn": 1}, "$.rules[1].id", "must not be empty"),
    ({"id": "x", "metric": "cpu_percent", "warn": 1, "wran": 2}, "$.rules[1].wran", "unknown"),
    ({"id": "x", "kind": "magic"}, "$.rules[1].kind", "must be one of"),
    (
        {"id": "x", "metric": "cpu_percent", "warn": 1, "direction": "up"},
        "$.rules[1].direction",
        "",
    ),
    ({"id": "x", "metric": "cpu_percent", "warn": 90, "crit": 80}, "$.rules[1].crit", "below warn"),
    (
        {"id": "x", "metric": "cpu_percent", "warn": 80, "warn_recovery": 85},
        "$.rules[1].warn_recovery",
        "hysteresis",
    ),
    (
        {"id": "x", "metric": "cpu_percent", "direction": "below", "warn": 10, "warn_recovery": 5},
        "$.rules[1].warn_recovery",
        "hysteresis",
    ),
    (
        {"id": "x", "metric": "cpu_percent", "crit": 80, "warn_recovery": 70},
        "$.rules[1].warn_recovery",
        "needs warn",
    ),
    (
        {"id": "x", "metric": "cpu_percent", "warn": 1, "for_seconds": -1},
        "$.rules[1].for_seconds",
        ">= 0",
    ),
    ({"id": "x", "kind": "silent"}, "$.rules[1].silent_seconds", "required"),
    ({"id": "x", "kind": "silent", "silent_seconds": 0}, "$.rules[1].silent_seconds", "> 0"),
    (
        {"id": "x", "kind": "silent", "silent_seconds": 5, "metric": "cpu_percent"},
        "$.rules[1].metric",
        "absent",
    ),
    (
        {"id": "x", "kind": "container_stopped", "selector": {"kind": "host"}},
        "$.rules[1].selector.kind",
        "containers",
    ),
    (
        {"id": "x", "kind": "container_stopped", "selector": {"machine": 3}},
        "$.rules[1].selector.machine",
        "string",
    ),
    (
        {"id": "x", "kind": "container_stopped", "selector": {"labels": {"a": 1}}},
        "$.rules[1].selector.labels.a",
        "string",
    ),
    (
        {"id": "x", "kind": "container_stopped", "selector": {"rack": "a"}},
        "$.rules[1].selector.rack",
        "unknown",
    ),
    (
        {"id": "x", "kind": "container_stopped", "enabled": "yes"},
        "$.rules[1].enabled",
        "true or false",
    ),
    (
        {"id": "x", "kind": "container_stopped", "level": "page"},
        "$.rules[1].level",
        "must be one of",
    ),
    ({"id": "ok", "kind": "container_stopped"}, "$.rules[1].id", "duplicate"),
    ("not a rule", "$.rules[1]", "must be an object"),
]
GOOD = {"id": "ok", "metric": "cpu_percent", "warn": 1}


@pytest.mark.parametrize(("bad", "path", "message"), BAD_RULES)
def test_invalid_json_rule_names_the_field(bad: object, path: str, message: str) -> None:
    """Each invalid rule in a JSON file raises ConfigError with its exact field path."""
    with pytest.raises(ConfigError) as info:
        load_rules(json.dumps({"rules": [GOOD, bad]}), "json")
    assert info.value.path == path
    assert message in info.value.message


def _toml_value(value: object) -> str:
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
        )
    return json.dumps(value) if not isinstance(value, bool) else str(value).lower()


@pytest.mark.parametrize(
    ("bad", "path", "message"), [b for b in BAD_RULES if isinstance(b[0], dict)]
)
def test_invalid_toml_rule_names_the_field(bad: dict[str, object], path: str, message: str) -> None:
    """The same invalid rules written as TOML give the same paths, under $.rule[1]."""
    tables = []
    for rule in (GOOD, bad):
        tables.append("[[rule]]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in rule.items()))
    with pytest.raises(ConfigError) as info:
        load_rules("\n".join(tables), "toml")
    assert info.value.path == path.replace("$.rules", "$.rule")
    assert message in info.value.message


@pytest.mark.parametrize(
    ("text", "fmt", "path", "message"),
    [
        ("[[rule]\n", "toml", "$", "not valid TOML"),
        ("{", "json", "$", "not valid JSON"),
        ('{"rulez": []}', "json", "$.rulez", "unknown top-level key"),
        ('{"rules": {}}', "json", "$.rules", "must be a list"),
        ("3", "json", "$", "must be an object"),
        ("", "yaml", "$", "unknown rule file format"),
    ],
)
def test_invalid_rule_files(text: str, fmt: str, path: str, message: str) -> None:
    """Malformed files raise ConfigError, never a parser exception."""
    with pytest.raises(ConfigError) as info:
        load_rules(text, fmt)  # type: ignore[arg-type]
    assert info.value.path == path and message in info.value.message


def test_empty_files_mean_no_rules() -> None:
    """An empty TOML file or {} is a valid, empty rule set."""
    assert load_rules("", "toml") == [] and load_rules("{}", "json") == []


WEB1 = MachineRef(key="id-web1", kind="host", host_id="id-web1", hostname="web-1", name="web-1")
DB1 = MachineRef(key="id-db1", kind="host", host_id="id-db1", hostname="db-1", name="db-1")
SHOP = MachineRef(
    key="id-web1:shop",
    kind="container",
    host_id="id-web1",
    hostname="web-1",
    name="shop",
    labels={"tier": "front"},
)


def cpu(rule_id: str, selector: Selector, **kw: object) -> Rule:
    return Rule(id=rule_id, name=rule_id, metric="cpu_percent", warn=80.0, selector=selector, **kw)  # type: ignore[arg-type]


FLEET = cpu("fleet", Selector())
GLOB = cpu("glob", Selector(machine="web-*"))
EXACT = cpu("exact", Selector(machine="web-1"))
BY_KEY = cpu("by-key", Selector(machine="id-db1"))
MEM = Rule(id="mem", name="mem", metric="memory_percent", warn=90.0)
LOW = cpu("low", Selector(), direction="below")
LABEL = cpu("label", Selector(labels={"tier": "fr*"}))
HOST_OF_CONTAINER = cpu("on-web", Selector(kind="container", host="web-*"))


@pytest.mark.parametrize(
    ("rules", "machine", "expected"),
    [
        ([FLEET, GLOB, EXACT, MEM], WEB1, ["exact", "mem"]),
        ([FLEET, GLOB, MEM], WEB1, ["glob", "mem"]),
        ([FLEET, GLOB, EXACT, MEM], DB1, ["fleet", "mem"]),
        ([FLEET, GLOB, BY_KEY], DB1, ["by-key"]),
        ([FLEET, LOW], WEB1, ["fleet", "low"]),
        ([FLEET, GLOB, cpu("glob2", Selector(host="web*"))], WEB1, ["glob", "glob2"]),
        ([FLEET, cpu("off", Selector(machine="web-1"), enabled=False)], WEB1, []),
        ([cpu("off", Selector(), enabled=False), GLOB], DB1, []),
        ([FLEET, LABEL], SHOP, ["label"]),
        ([FLEET, HOST_OF_CONTAINER], SHOP, ["on-web"]),
        ([FLEET, HOST_OF_CONTAINER], WEB1, ["fleet"]),
        ([cpu("hosts", Selector(kind="host"))], SHOP, []),
        ([Rule(id="pids", name="pids", metric="pids", warn=1.0)], WEB1, []),
        (
            list(DEFAULT_RULES),
            SHOP,
            [
                "default.container.unhealthy",
                "default.container.stopped",
                "default.container.restarted",
            ],
        ),
    ],
)
def test_effective_rules_precedence(
    rules: list[Rule], machine: MachineRef, expected: list[str]
) -> None:
    """Exact machine beats glob/host/labels beats the fleet default, per kind+metric+direction."""
    assert [r.id for r in effective_rules(rules, machine)] == expected
