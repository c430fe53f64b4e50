"""Alert engine throughput: rule x sample checks per second on one core.

1,000 hosts x 10 threshold rules (a mix of plain, windowed, for-duration and below rules),
one batch per host per tick. The reference is a bare Python loop doing the same number of
float comparisons over pre-flattened dicts, timed in the same run so machine noise cancels.

Then the silent sweep (``check_silence``, which the server runs every second over every
machine it knows): ``--sweep-hosts`` hosts with ``--sweep-containers`` containers each and
the default rules, every machine heard from a second ago. The reference is a bare loop over
the same machines comparing each one's last sample time with one cutoff.

    python bench/bench_engine.py [--hosts 1000] [--ticks 30]
                                 [--sweep-hosts 1000] [--sweep-containers 30]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_pipeline import make_batch  # noqa: E402
from srvmon_core.defaults import DEFAULT_RULES  # noqa: E402
from srvmon_core.engine import (  # noqa: E402
    EngineState,
    check_silence,
    evaluate_batch,
    evaluate_view,
)
from srvmon_core.rules import Rule, Selector  # noqa: E402
from srvmon_core.schema import Batch, HostSample  # noqa: E402
from srvmon_core.view import batch_view  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HOSTS = Selector(kind="host")

RULES: list[Rule] = [
    Rule(
        id="cpu",
        name="cpu",
        selector=HOSTS,
        metric="cpu_percent",
        warn=85,
        crit=95,
        warn_recovery=80,
        window_seconds=30,
        for_seconds=60,
    ),
    Rule(
        id="mem",
        name="mem",
        selector=HOSTS,
        metric="memory_percent",
        warn=85,
        crit=95,
        for_seconds=60,
    ),
    Rule(id="swap", name="swap", selector=HOSTS, metric="swap_percent", warn=50, crit=80),
    Rule(id="load1", name="load1", selector=HOSTS, metric="load_1", warn=16, crit=32),
    Rule(
        id="load5",
        name="load5",
        selector=HOSTS,
        metric="load_5",
        warn=12,
        crit=24,
        window_seconds=10,
        window_agg="max",
    ),
    Rule(id="load15", name="load15", selector=HOSTS, metric="load_15", warn=8, crit=16),
    Rule(id="iowait", name="iowait", selector=HOSTS, metric="cpu_iowait_percent", warn=20),
    Rule(
        id="avail",
        name="avail",
        selector=HOSTS,
        metric="memory_available_bytes",
        direction="below",
        warn=2e9,
        crit=5e8,
    ),
    Rule(id="procs", name="procs", selector=HOSTS, metric="process_count", warn=2000),
    Rule(
        id="uptime",
        name="uptime",
        selector=HOSTS,
        metric="uptime_seconds",
        direction="below",
        warn=600,
    ),
]


def make_ticks(hosts: int, ticks: int, seed: int = 7) -> list[list[Batch]]:
    """Deterministic batches; about 3% of hosts run hot so some alerts move."""
    rng = random.Random(seed)
    hot = {h for h in range(hosts) if rng.random() < 0.03}
    out = []
    for tick in range(ticks):
        batches = []
        for h in range(hosts):
            busy = 90.0 if h in hot else rng.uniform(5, 60)
            batches.append(
                Batch(
                    host_id=f"host-{h:04d}",
                    hostname=f"host-{h:04d}",
                    timestamp=T0 + timedelta(seconds=tick),
                    host=HostSample(
                        cpu_percent=busy + rng.uniform(-3, 3),
                        cpu_iowait_percent=rng.uniform(0, 5),
                        load_1=rng.uniform(0, 20),
                        load_5=rng.uniform(0, 10),
                        load_15=rng.uniform(0, 6),
                        memory_total_bytes=64_000_000_000,
                        memory_used_bytes=20_000_000_000,
                        memory_available_bytes=44_000_000_000,
                        memory_percent=busy,
                        swap_percent=rng.uniform(0, 10),
                        uptime_seconds=86_400.0 + tick,
                        process_count=400,
                    ),
                )
            )
        out.append(batches)
    return out


def run_engine(ticks: list[list[Batch]]) -> tuple[float, int]:
    """evaluate_batch: the engine plus viewing each batch (srvmon_core.view)."""
    state = EngineState()
    events = 0
    rules = tuple(RULES)
    started = time.perf_counter()
    for batches in ticks:
        now = batches[0].timestamp
        for batch in batches:
            state, fired = evaluate_batch(rules, state, batch, now)
            events += len(fired)
    return time.perf_counter() - started, events


def run_engine_on_views(ticks: list[list[Batch]]) -> float:
    """evaluate_view on views made beforehand: what the server pays for alerts (it views
    each batch once, for storage, SSE and the engine)."""
    views = [[batch_view(b) for b in batches] for batches in ticks]
    state = EngineState()
    rules = tuple(RULES)
    started = time.perf_counter()
    for batch_views in views:
        now = batch_views[0].timestamp
        for view in batch_views:
            state, _ = evaluate_view(rules, state, view, now)
    return time.perf_counter() - started


def run_reference(ticks: list[list[Batch]]) -> float:
    """The same number of comparisons as a bare loop over pre-flattened dicts."""
    flat = [
        [{r.metric: float(getattr(b.host, r.metric)) for r in RULES if r.metric} for b in batches]
        for batches in ticks
    ]
    limits = [(str(r.metric), float(r.warn or 0.0)) for r in RULES]
    hits = 0
    started = time.perf_counter()
    for dicts in flat:
        for values in dicts:
            for metric, limit in limits:
                if values[metric] >= limit:
                    hits += 1
    elapsed = time.perf_counter() - started
    assert hits >= 0
    return elapsed


def sweep_state(hosts: int, containers: int) -> EngineState:
    """The engine's state after one batch of every host (``bench_pipeline``'s fleet
    batches), with the default rules."""
    state = EngineState()
    for h in range(hosts):
        state, _ = evaluate_batch(DEFAULT_RULES, state, make_batch(h, 0, containers, at=T0), T0)
    return state


def time_sweep(state: EngineState, repeat: int) -> float:
    """Best time of one ``check_silence`` a second after every machine was heard from."""
    best = float("inf")
    now = T0 + timedelta(seconds=1)
    for _ in range(repeat):
        started = time.perf_counter()
        state, fired = check_silence(DEFAULT_RULES, state, now, grace_seconds=0.25)
        best = min(best, time.perf_counter() - started)
        assert fired == [], "nobody is silent a second after reporting"
    return best


def time_sweep_reference(state: EngineState, repeat: int) -> float:
    """A bare loop over the same machines: one datetime comparison each."""
    best = float("inf")
    cutoff = T0 - timedelta(seconds=30)
    for _ in range(repeat):
        started = time.perf_counter()
        quiet = [key for key, machine in state.machines.items() if machine.last_seen <= cutoff]
        best = min(best, time.perf_counter() - started)
        assert quiet == []
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--ticks", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs")
    parser.add_argument("--sweep-hosts", type=int, default=1000)
    parser.add_argument("--sweep-containers", type=int, default=30)
    args = parser.parse_args()
    ticks = make_ticks(args.hosts, args.ticks)
    checks = args.hosts * args.ticks * len(RULES)
    engine_s = min(run_engine(ticks)[0] for _ in range(args.repeat))
    _, events = run_engine(ticks)
    views_s = min(run_engine_on_views(ticks) for _ in range(args.repeat))
    reference_s = min(run_reference(ticks) for _ in range(args.repeat))
    rate = checks / views_s
    print(f"machines={args.hosts} rules={len(RULES)} ticks={args.ticks} checks={checks:,}")
    print(
        f"engine (evaluate_view): {rate:,.0f} checks/s ({views_s * 1e3 / args.ticks:.1f} ms/tick)"
    )
    print(
        f"with viewing each batch (evaluate_batch): {checks / engine_s:,.0f} checks/s "
        f"({engine_s * 1e3 / args.ticks:.1f} ms per tick)"
    )
    print(f"reference: {checks / reference_s:,.0f} comparisons/s (bare loop, flat dicts)")
    print(f"ratio engine/reference: {reference_s / views_s:.3f}  events={events}")
    print(f"target 500,000 checks/s: {'met' if rate >= 500_000 else 'NOT met'}")
    state = sweep_state(args.sweep_hosts, args.sweep_containers)
    sweep_s = time_sweep(state, 5 * args.repeat)
    floor_s = time_sweep_reference(state, 5 * args.repeat)
    print(
        f"silent sweep (check_silence) over {len(state.machines):,} machines: "
        f"{sweep_s * 1e3:.1f} ms; reference (one comparison per machine) "
        f"{floor_s * 1e3:.1f} ms; ratio sweep/reference {sweep_s / floor_s:.1f}"
    )


if __name__ == "__main__":
    main()
