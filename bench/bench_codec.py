"""Throughput of the wire codec in samples/s, against plain json in the same run.

A batch of 1 host + N containers counts N + 1 samples. Each figure is the median of
several rounds. The reference is json.dumps / json.loads of the very same plain dicts,
so the ratio says what cattrs structuring and validation cost on top of JSON itself.
The "structure only" rows leave JSON parsing out; the stock cattrs row (no strict types)
shows what the strict hooks cost.

    python bench/bench_codec.py [--containers 20] [--seconds 0.3] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from cattrs.preconf.json import make_converter

from srvmon_core.codec import CONVERTER, decode_batch, encode_batch, make_wire_converter
from srvmon_core.schema import Batch
from srvmon_core.testing import make_batch, make_container_sample


def _rate(work: Callable[[], Any], seconds: float) -> float:
    """Calls per second of ``work``, run for about ``seconds``."""
    calls = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(50):
            work()
        calls += 50
        now = time.perf_counter()
        if now >= deadline:
            return calls / (now - start)


def _paired(
    work: Callable[[], Any], reference: Callable[[], Any], seconds: float, rounds: int
) -> tuple[float, float, float]:
    """Median calls/s of work and reference, and the median of per-round ratios.

    Each round times both back to back, so a noisy neighbour hits both sides alike.
    """
    ours, theirs, ratios = [], [], []
    for _ in range(rounds):
        a, b = _rate(work, seconds), _rate(reference, seconds)
        ours.append(a)
        theirs.append(b)
        ratios.append(a / b)
    return statistics.median(ours), statistics.median(theirs), statistics.median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=0.3, help="per side and round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    containers = tuple(
        make_container_sample(id=f"{i:012x}", name=f"svc-{i}") for i in range(args.containers)
    )
    batch = make_batch(containers=containers)
    samples = 1 + len(containers)
    raw = encode_batch(batch)
    plain = json.loads(raw)
    assert decode_batch(raw) == batch
    detailed = make_wire_converter(detailed_validation=True)
    stock = make_converter(forbid_extra_keys=False)  # cattrs' own JSON preset, lax types

    def detailed_decode() -> Batch:
        return detailed.structure(json.loads(raw), Batch)

    cases: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = [
        ("encode_batch", lambda: encode_batch(batch), lambda: json.dumps(plain)),
        ("decode_batch", lambda: decode_batch(raw), lambda: json.loads(raw)),
        ("decode, detailed converter only", detailed_decode, lambda: json.loads(raw)),
        (
            "structure only (fast converter)",
            lambda: CONVERTER.structure(plain, Batch),
            lambda: json.loads(raw),
        ),
        (
            "structure only (stock cattrs, lax)",
            lambda: stock.structure(plain, Batch),
            lambda: json.loads(raw),
        ),
    ]
    print(f"batch: 1 host + {len(containers)} containers = {samples} samples, {len(raw)} bytes")
    print(f"{'operation':34} {'samples/s':>12} {'json samples/s':>15} {'ratio':>7}")
    for name, work, reference in cases:
        ours, theirs, ratio = _paired(work, reference, args.seconds, args.rounds)
        print(f"{name:34} {ours * samples:12,.0f} {theirs * samples:15,.0f} {ratio:7.2f}")


if __name__ == "__main__":
    main()
