"""Rules compiled for the engine: each rule once per machine kind, each machine's plan once.

The engine (:mod:`srvmon_core.engine`) asks :func:`plan_for` which checks apply to a
machine; the answer is cached in the state and rebuilt only when the rule set or the
machine's identity (hostname, labels) changes. A :class:`Check` holds one rule with its
thresholds sign-folded (a ``below`` rule is an ``above`` rule on the negated value), so one
threshold check is a dict lookup and at most three float comparisons.
"""

from __future__ import annotations

from collections.abc import Sequence

from attrs import define

from srvmon_core.alert_state import LEVELS, EngineState, MachineRef
from srvmon_core.rules import Rule, effective_rules

_INF = float("inf")

THRESHOLD, SILENT, STOPPED, RESTARTED, UNHEALTHY = range(5)
KIND_CODES = {
    "threshold": THRESHOLD,
    "silent": SILENT,
    "container_stopped": STOPPED,
    "container_restarted": RESTARTED,
    "container_unhealthy": UNHEALTHY,
}


class Check:
    """One rule compiled for one machine kind. Thresholds are sign-folded: above-only."""

    __slots__ = (
        "code",
        "crit",
        "crit_rec",
        "for_seconds",
        "level",
        "metric",
        "repeat",
        "rule",
        "sign",
        "warn",
        "warn_rec",
        "window",
        "window_max",
    )

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.code = KIND_CODES[rule.kind]
        self.sign = 1.0 if rule.direction == "above" else -1.0
        s = self.sign
        self.warn = _INF if rule.warn is None else s * rule.warn
        self.crit = _INF if rule.crit is None else s * rule.crit
        self.warn_rec = self.warn if rule.warn_recovery is None else s * rule.warn_recovery
        self.crit_rec = self.crit if rule.crit_recovery is None else s * rule.crit_recovery
        self.for_seconds = 0.0 if self.code == RESTARTED else rule.for_seconds
        self.window = rule.window_seconds
        self.window_max = rule.window_agg == "max"
        self.repeat = rule.repeat_seconds
        self.level = LEVELS.index(rule.level)
        self.metric = rule.metric or ""

    def target(self, value: float, current: int) -> int:
        """The level a value calls for, with hysteresis around the current level."""
        sv = self.sign * value
        if current == 2:
            if sv >= self.crit_rec:
                return 2
            return 1 if sv >= self.warn_rec else 0
        if sv >= self.crit:
            return 2
        if current == 1:
            return 1 if sv >= self.warn_rec else 0
        return 1 if sv >= self.warn else 0

    def threshold(self, level: int, recovering: bool) -> float | None:
        """The configured threshold behind a level, in the rule's own sign."""
        if self.code == SILENT:
            return self.rule.silent_seconds
        if self.code != THRESHOLD or level == 0:
            return None
        rule = self.rule
        if level == 2:
            recovery = rule.crit if rule.crit_recovery is None else rule.crit_recovery
            return recovery if recovering else rule.crit
        recovery = rule.warn if rule.warn_recovery is None else rule.warn_recovery
        return recovery if recovering else rule.warn


@define
class Plan:
    ref: MachineRef
    checks: list[Check]
    silent: list[Check]
    """The ``silent`` checks among ``checks`` (the per-second sweep looks at these only)."""


def plan_for(rules: Sequence[Rule], state: EngineState, ref: MachineRef) -> Plan:
    plan = state.plans.get(ref.key)
    if plan is not None and (plan.ref is ref or plan.ref == ref):
        return plan
    compiled = state.compiled
    checks = []
    for rule in effective_rules(rules, ref):
        check = compiled.get(id(rule))
        if check is None:
            check = compiled[id(rule)] = Check(rule)
        checks.append(check)
    plan = Plan(ref=ref, checks=checks, silent=[c for c in checks if c.code == SILENT])
    state.plans[ref.key] = plan
    return plan
