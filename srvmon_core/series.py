"""Run the alert engine over a recorded series of batches (notebooks, replays, tests)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from srvmon_core.engine import AlertEvent, EngineState, check_silence, evaluate_batch
from srvmon_core.rules import Rule
from srvmon_core.schema import Batch


def evaluate_series(rules: Sequence[Rule], batches: Iterable[Batch]) -> list[AlertEvent]:
    """Every alert event the batches produce, in order, with time taken from the batches.

    Before each batch, silence is checked at that batch's timestamp, so a host that stops
    reporting while others go on fires its ``silent`` rules. Batches should come in time
    order; a batch older than its predecessor is evaluated at its own timestamp anyway.
    """
    state = EngineState()
    events: list[AlertEvent] = []
    for batch in batches:
        state, fired = check_silence(rules, state, batch.timestamp)
        events.extend(fired)
        state, fired = evaluate_batch(rules, state, batch, batch.timestamp)
        events.extend(fired)
    return events
