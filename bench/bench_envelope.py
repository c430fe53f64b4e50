"""What leaving out null fields saves: envelope bytes and the server's decode per sample.

    python bench/bench_envelope.py [--hosts 50] [--containers 30] [--rounds 7]

One consumer-sized request (``{"batches": [...]}`` of ``--hosts`` envelopes) is built twice
from the same batches: as ``encode_batch`` writes it (a field that is null where its
default is null is left out), and with every field written, as collectors did before
2026-12-03 (the reference, same run). For each, printed per sample (host or container):
bytes, the parse (orjson), and the whole ``decode_and_view`` the server runs on an ingest
body (parse, structure, validate, view). Best of ``--rounds``. Two kinds of container:

- ``fleet``: the containers of ``bench_fleet.py`` (five figures, no labels);
- ``collector``: ``srvmon_core.testing.make_container_sample``, a running container with
  compose labels, a start time and every rate the collector reads from cgroups.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_pipeline import make_batch as fleet_batch  # noqa: E402
from srvmon_core.codec import encode_batch, unstructure  # noqa: E402
from srvmon_core.schema import Batch  # noqa: E402
from srvmon_core.testing import make_batch, make_container_sample  # noqa: E402
from srvmon_server import wirejson  # noqa: E402
from srvmon_server.ingest import decode_and_view  # noqa: E402


def collector_batch(host: int, containers: int) -> Batch:
    samples = tuple(
        make_container_sample(id=f"c{host}-{i}", name=f"svc-{i}") for i in range(containers)
    )
    return make_batch(host_id=f"host-{host:05d}", hostname=f"host-{host:05d}", containers=samples)


def every_field(batch: Batch) -> bytes:
    return json.dumps(unstructure(batch), separators=(",", ":"), allow_nan=False).encode()


def request(envelopes: list[bytes]) -> bytes:
    return b'{"batches":[' + b",".join(envelopes) + b"]}"


def best_us(works: dict[str, Callable[[], Any]], samples: int, rounds: int) -> dict[str, float]:
    """Per work, its best round in microseconds per sample; the works take turns each
    round, so a machine that speeds up or slows down meanwhile weighs on all alike."""
    times: dict[str, list[float]] = {name: [] for name in works}
    for _ in range(rounds):
        for name, work in works.items():
            start = time.perf_counter()
            work()
            times[name].append(time.perf_counter() - start)
    return {name: min(spent) / samples * 1e6 for name, spent in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--containers", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    samples = args.hosts * (args.containers + 1)
    kinds: dict[str, Callable[[int, int], Batch]] = {
        "fleet": lambda h, n: fleet_batch(h, 0, n),
        "collector": collector_batch,
    }
    print(f"{args.hosts} envelopes of 1 host + {args.containers} containers ({samples} samples)")
    for kind, build in kinds.items():
        batches = [build(h, args.containers) for h in range(args.hosts)]
        lean = request([encode_batch(b) for b in batches])
        full = request([every_field(b) for b in batches])
        assert decode_and_view(lean) == decode_and_view(full), "both forms must decode alike"
        bodies = {"nulls left out": lean, "every field": full}
        parse = best_us(
            {name: functools.partial(wirejson.parse, body) for name, body in bodies.items()},
            samples,
            args.rounds,
        )
        decode = best_us(
            {name: functools.partial(decode_and_view, body) for name, body in bodies.items()},
            samples,
            args.rounds,
        )
        figures = {}
        for name, body in bodies.items():
            figures[name] = (len(body) / samples, parse[name], decode[name])
            print(
                f"  {kind:9} {name:14}: {len(body) / samples:6.0f} bytes/sample, "
                f"parse {parse[name]:5.2f} us, decode_and_view {decode[name]:5.2f} us per sample"
            )
        (lb, lp, ld), (fb, fp, fd) = figures["nulls left out"], figures["every field"]
        print(
            f"  {kind:9} left out / every field: bytes {lb / fb:.2f}, parse {lp / fp:.2f}, "
            f"decode_and_view {ld / fd:.2f}"
        )


if __name__ == "__main__":
    main()
