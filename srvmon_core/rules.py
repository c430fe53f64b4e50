"""Alert rules: what to watch, on which machines, and which rule wins for a machine.

A :class:`Rule` validates itself when built, so an invalid rule cannot exist. Rules come
from TOML or JSON (:func:`load_rules`) or from the REST API (:func:`rule_from_dict`);
both raise :class:`ConfigError` naming the offending field, e.g. ``$.rules[2].warn``.

docs/alerts.md documents every field.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Literal

from attrs import field, fields, frozen

from srvmon_core.errors import ConfigError
from srvmon_core.metrics import CONTAINER_METRIC_NAMES, HOST_METRIC_NAMES
from srvmon_core.names import is_glob, names_of, pattern_matches
from srvmon_core.schema import text_problem
from srvmon_core.structure import structure

if TYPE_CHECKING:
    from srvmon_core.engine import MachineRef

SelectorKind = Literal["host", "container", "any"]
RuleKind = Literal[
    "threshold", "silent", "container_stopped", "container_restarted", "container_unhealthy"
]
Direction = Literal["above", "below"]
WindowAgg = Literal["avg", "max"]
Level = Literal["warning", "critical"]

CONTAINER_RULE_KINDS = frozenset(
    {"container_stopped", "container_restarted", "container_unhealthy"}
)
DEFAULT_HOLD_SECONDS = 300.0
"""How long a ``container_restarted`` alert stays firing after the last restart."""


@frozen(kw_only=True)
class Selector:
    """Which machines a rule applies to. Every given constraint must match."""

    kind: SelectorKind = "any"
    machine: str | None = None
    """A machine name or key, exact or a glob (``vm``, ``web-*``, ``vm/db``; see
    :mod:`srvmon_core.names`)."""
    host: str | None = None
    """For containers: a glob matched against the host id or the hostname."""
    labels: dict[str, str] = field(factory=dict)
    """Container labels that must be present; values may be globs."""

    @property
    def specificity(self) -> int:
        """2: names one machine exactly; 1: a glob, host or labels; 0: the fleet default."""
        if self.machine is not None and not is_glob(self.machine):
            return 2
        if self.machine is not None or self.host is not None or self.labels:
            return 1
        return 0

    def matches(self, machine: MachineRef) -> bool:
        """Whether this selector picks ``machine``."""
        if self.kind not in ("any", machine.kind):
            return False
        if self.machine is not None and not pattern_matches(
            self.machine, names_of(machine.key, machine.kind, machine.hostname, machine.name)
        ):
            return False
        if self.host is not None and not (
            fnmatchcase(machine.host_id, self.host) or fnmatchcase(machine.hostname, self.host)
        ):
            return False
        for key, pattern in self.labels.items():
            value = machine.labels.get(key)
            if value is None or not fnmatchcase(value, pattern):
                return False
        return True


@frozen(kw_only=True)
class Rule:
    """One alert rule. Construction raises ConfigError if the fields contradict each other."""

    id: str
    name: str
    kind: RuleKind = "threshold"
    selector: Selector = field(factory=Selector)
    metric: str | None = None
    direction: Direction = "above"
    warn: float | None = None
    crit: float | None = None
    warn_recovery: float | None = None
    crit_recovery: float | None = None
    for_seconds: float = 0.0
    window_seconds: float = 0.0
    window_agg: WindowAgg = "avg"
    repeat_seconds: float | None = None
    enabled: bool = True
    silent_seconds: float | None = None
    hold_seconds: float | None = None
    level: Level = "warning"
    """Severity of the built-in kinds (silent, container_*); threshold rules use warn/crit."""

    def __attrs_post_init__(self) -> None:
        _check_rule(self)

    @property
    def group(self) -> tuple[str, str | None, str]:
        """Rules in one group compete for a machine: the most specific selector wins."""
        return (self.kind, self.metric, self.direction)


def _fail(field_name: str, message: str) -> ConfigError:
    return ConfigError(message, f"$.{field_name}")


RULE_ID_MAX = 128
"""Longest rule id (characters): ids are stored in 255-wide key columns and used in URLs."""
RULE_NAME_MAX = 256
SELECTOR_GLOB_MAX = 200
SELECTOR_LABELS_MAX = 32


def _check_selector(selector: Selector) -> None:
    for name in ("machine", "host"):
        value = getattr(selector, name)
        if value is not None and not 1 <= len(value) <= SELECTOR_GLOB_MAX:
            raise _fail(
                f"selector.{name}", f"must be a glob of 1 to {SELECTOR_GLOB_MAX} characters"
            )
    if len(selector.labels) > SELECTOR_LABELS_MAX:
        raise _fail("selector.labels", f"must have at most {SELECTOR_LABELS_MAX} labels")
    for key, pattern in selector.labels.items():
        if not 1 <= len(key) <= 255 or len(pattern) > SELECTOR_GLOB_MAX:
            raise _fail(
                "selector.labels",
                f"label keys are 1 to 255 characters, globs at most {SELECTOR_GLOB_MAX}",
            )


def _check_rule(rule: Rule) -> None:
    problem = text_problem(rule.id, RULE_ID_MAX, empty=False)
    if problem is not None:
        raise _fail("id", problem)
    if len(rule.name) > RULE_NAME_MAX:
        raise _fail("name", f"must be at most {RULE_NAME_MAX} characters")
    _check_selector(rule.selector)
    for name in ("for_seconds", "window_seconds"):
        value = getattr(rule, name)
        if not math.isfinite(value) or value < 0:
            raise _fail(name, "must be a finite number >= 0")
    for name in ("repeat_seconds", "silent_seconds", "hold_seconds"):
        value = getattr(rule, name)
        if value is not None and (not math.isfinite(value) or value <= 0):
            raise _fail(name, "must be a finite number > 0")
    if rule.kind == "threshold":
        _check_threshold(rule)
        return
    if rule.metric is not None:
        raise _fail("metric", f"must be absent for kind {rule.kind}")
    if rule.warn is not None or rule.crit is not None:
        raise _fail("warn", f"thresholds do not apply to kind {rule.kind}; use level")
    if rule.kind == "silent" and rule.silent_seconds is None:
        raise _fail("silent_seconds", "is required for kind silent")
    if rule.kind in CONTAINER_RULE_KINDS and rule.selector.kind == "host":
        raise _fail("selector.kind", f"kind {rule.kind} applies to containers, not hosts")


def _check_threshold(rule: Rule) -> None:
    if rule.metric is None:
        raise _fail("metric", "is required for kind threshold")
    known = {
        "host": HOST_METRIC_NAMES,
        "container": CONTAINER_METRIC_NAMES,
        "any": HOST_METRIC_NAMES | CONTAINER_METRIC_NAMES,
    }[rule.selector.kind]
    if rule.metric not in known:
        raise _fail("metric", f"unknown {rule.selector.kind} metric {rule.metric!r}")
    if rule.warn is None and rule.crit is None:
        raise _fail("warn", "at least one of warn and crit is required")
    for name in ("warn", "crit", "warn_recovery", "crit_recovery"):
        value = getattr(rule, name)
        if value is not None and not math.isfinite(value):
            raise _fail(name, "must be a finite number")
    sign = 1.0 if rule.direction == "above" else -1.0
    relation = "above" if sign > 0 else "below"
    if rule.warn is not None and rule.crit is not None and sign * rule.crit < sign * rule.warn:
        raise _fail("crit", f"must not be {'below' if sign > 0 else 'above'} warn")
    for level in ("warn", "crit"):
        threshold = getattr(rule, level)
        recovery = getattr(rule, f"{level}_recovery")
        if recovery is None:
            continue
        if threshold is None:
            raise _fail(f"{level}_recovery", f"needs {level}")
        if sign * recovery > sign * threshold:
            raise _fail(f"{level}_recovery", f"must not be {relation} {level} (hysteresis)")


# --- from and to plain data -------------------------------------------------------------


def rule_from_dict(data: object, path: str = "$") -> Rule:
    """Build a rule from plain data (parsed JSON or TOML), raising ConfigError with a path.

    Structured by the config converter (:mod:`srvmon_core.structure`): strict JSON types,
    no unknown keys; ``name`` defaults to the ``id``.
    """
    if isinstance(data, Mapping) and "name" not in data and isinstance(data.get("id"), str):
        data = {**data, "name": data["id"]}
    return structure(data, Rule, path)


def rule_to_dict(rule: Rule) -> dict[str, object]:
    """Plain JSON-ready data; ``rule_from_dict(rule_to_dict(r)) == r``."""
    out: dict[str, object] = {a.name: getattr(rule, a.name) for a in fields(Rule)}
    selector = rule.selector
    out["selector"] = {
        "kind": selector.kind,
        "machine": selector.machine,
        "host": selector.host,
        "labels": dict(selector.labels),
    }
    return out


def load_rules(text: str, format: Literal["toml", "json"]) -> list[Rule]:
    """Parse a rule file: TOML ``[[rule]]`` tables, or JSON ``{"rules": [...]}`` or a list."""
    if format == "toml":
        try:
            doc: object = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"not valid TOML: {exc}") from None
        key = "rule"
    elif format == "json":
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"not valid JSON: {exc}") from None
        key = "rules"
    else:
        raise ConfigError(f"unknown rule file format {format!r}; use toml or json")
    if isinstance(doc, list):
        items: object = doc
        base = "$"
    else:
        if not isinstance(doc, Mapping):
            raise ConfigError(f"must be an object, got {type(doc).__name__}", "$")
        top = doc
        unknown = sorted(set(top) - {key})
        if unknown:
            raise ConfigError(f"unknown top-level key; rules go in {key!r}", f"$.{unknown[0]}")
        items = top.get(key, [])
        base = f"$.{key}"
    if not isinstance(items, list):
        raise ConfigError("must be a list of rules", base)
    rules = [rule_from_dict(item, f"{base}[{i}]") for i, item in enumerate(items)]
    seen: set[str] = set()
    for i, rule in enumerate(rules):
        if rule.id in seen:
            raise ConfigError(f"duplicate rule id {rule.id!r}", f"{base}[{i}].id")
        seen.add(rule.id)
    return rules


# --- precedence ---------------------------------------------------------------------------


def applies_to_kind(rule: Rule, machine_kind: str) -> bool:
    """Whether a rule of this kind can ever apply to a host or a container."""
    if rule.kind in CONTAINER_RULE_KINDS:
        return machine_kind == "container"
    if rule.kind == "threshold" and rule.metric is not None:
        names = HOST_METRIC_NAMES if machine_kind == "host" else CONTAINER_METRIC_NAMES
        return rule.metric in names
    return True


def effective_rules(rules: Sequence[Rule], machine: MachineRef) -> list[Rule]:
    """Exactly the rules that apply to ``machine``, after precedence, in input order.

    Within a group (same kind, metric and direction) only the matching rules of the highest
    specificity apply: one naming the machine exactly beats a glob, host or label rule,
    which beats the fleet default. A disabled winner mutes its group for this machine.
    """
    best: dict[tuple[str, str | None, str], int] = {}
    matching: list[Rule] = []
    for rule in rules:
        if not applies_to_kind(rule, machine.kind) or not rule.selector.matches(machine):
            continue
        matching.append(rule)
        spec = rule.selector.specificity
        if spec > best.get(rule.group, -1):
            best[rule.group] = spec
    return [r for r in matching if r.enabled and r.selector.specificity == best[r.group]]
