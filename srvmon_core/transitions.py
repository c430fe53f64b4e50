"""Every alert state transition, as data. Everything that moves an alert lives here.

An alert (one rule on one machine) is stored in one of three states: ``ok``, ``pending``
or ``firing``. The engine turns each observation into exactly one *signal*, looks up
``TRANSITIONS[(state, signal)]`` and, when the entry names an event, emits it. There is no
other code path that changes an alert's state, and docs/alerts.md shows the same table,
rendered by :func:`render_markdown` and :func:`render_mermaid` (a test keeps them equal).

Signals:

- ``clear``: the value is back inside the recovery threshold (or the condition ended).
- ``breach``: a threshold is crossed but the ``for`` duration has not elapsed yet.
- ``held``: a threshold has been crossed for at least the ``for`` duration.
- ``same``: still firing at the same level, no repeat due.
- ``escalate`` / ``deescalate``: still firing, at a higher / lower level.
- ``repeat_due``: still firing at the same level and ``repeat_seconds`` have passed.
- ``gone``: the machine disappeared (a removed container).
"""

from __future__ import annotations

from typing import Literal

from attrs import frozen

State = Literal["ok", "pending", "firing"]
Signal = Literal["clear", "breach", "held", "same", "escalate", "deescalate", "repeat_due", "gone"]
EventKind = Literal[
    "pending",
    "cancelled",
    "firing",
    "escalated",
    "deescalated",
    "repeat",
    "resolved",
    "silenced",
    "unsilenced",
]
"""``silenced`` / ``unsilenced`` move no state: a silence started or ended on a pending or
firing alert (:mod:`srvmon_core.silencing`)."""
EventState = Literal["ok", "pending", "firing", "resolved"]


@frozen(kw_only=True)
class Transition:
    """Where a signal takes an alert, and the event (if any) it emits."""

    to: State
    event: EventKind | None = None
    event_to_state: EventState | None = None
    """The ``to_state`` written in the event (``resolved`` for firing → ok)."""


TRANSITIONS: dict[tuple[State, Signal], Transition] = {
    ("ok", "clear"): Transition(to="ok"),
    ("ok", "breach"): Transition(to="pending", event="pending", event_to_state="pending"),
    ("ok", "held"): Transition(to="firing", event="firing", event_to_state="firing"),
    ("pending", "clear"): Transition(to="ok", event="cancelled", event_to_state="ok"),
    ("pending", "breach"): Transition(to="pending"),
    ("pending", "held"): Transition(to="firing", event="firing", event_to_state="firing"),
    ("pending", "gone"): Transition(to="ok", event="cancelled", event_to_state="ok"),
    ("firing", "same"): Transition(to="firing"),
    ("firing", "escalate"): Transition(to="firing", event="escalated", event_to_state="firing"),
    ("firing", "deescalate"): Transition(to="firing", event="deescalated", event_to_state="firing"),
    ("firing", "repeat_due"): Transition(to="firing", event="repeat", event_to_state="firing"),
    ("firing", "clear"): Transition(to="ok", event="resolved", event_to_state="resolved"),
    ("firing", "gone"): Transition(to="ok", event="resolved", event_to_state="resolved"),
}


def transition(state: State, signal: Signal) -> Transition:
    """Look one transition up; an impossible pair is a bug in the engine, not bad input."""
    try:
        return TRANSITIONS[(state, signal)]
    except KeyError:
        raise AssertionError(f"no transition from {state} on {signal}") from None


def render_markdown() -> str:
    """The transition table as a Markdown table (docs/alerts.md includes it verbatim)."""
    lines = ["| from | signal | to | event |", "|---|---|---|---|"]
    for (state, signal), move in TRANSITIONS.items():
        event = f"`{move.event}` ({state} → {move.event_to_state})" if move.event else "—"
        lines.append(f"| {state} | {signal} | {move.to} | {event} |")
    return "\n".join(lines) + "\n"


def render_mermaid() -> str:
    """The transition table as a mermaid state diagram (self-loops without events omitted)."""
    lines = ["```mermaid", "stateDiagram-v2", "    [*] --> ok"]
    for (state, signal), move in TRANSITIONS.items():
        if move.event is None:
            continue
        lines.append(f"    {state} --> {move.to}: {signal} / {move.event}")
    lines.append("```")
    return "\n".join(lines) + "\n"
