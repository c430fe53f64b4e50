"""The server's CPU per sample in one process, without HTTP: decode, store, alerts, events.

    python bench/bench_ingest_cpu.py [--hosts 1000] [--containers 30] [--seconds 3] [--rounds 3]

A server context (``build_context``, its own SQLite file, the default rules, the GC
settings of ``srvmon server``) takes ``--seconds`` fleet-seconds of ``--hosts`` hosts
with ``--containers`` containers each, as consumer-sized requests of 50 envelopes, each
through ``decode_body`` and ``ingest_batches`` as the ingest handler runs them. The
first fleet-second (every machine new) is not timed. Printed per round: process CPU per
stored sample for the whole pipeline, and for the decode alone (``decode_and_view`` of
the same bodies, the reference, measured in the same round), and their ratio: what
storing, alerting and publishing cost on top of decoding. The machine's speed swings
between rounds on shared machines; the ratio moves much less.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_fleet import MARK, templates  # noqa: E402
from srvmon_core.view import BatchView  # noqa: E402
from srvmon_server.command import tune_gc  # noqa: E402
from srvmon_server.config import ServerConfig  # noqa: E402
from srvmon_server.context import build_context  # noqa: E402
from srvmon_server.ingest import Decoded, decode_and_view, decode_body, ingest_batches  # noqa: E402
from srvmon_server.storage import IngestResult, Storage  # noqa: E402

PER_REQUEST = 50


def requests(calm: list[bytes], first: datetime, seconds: int) -> list[list[bytes]]:
    """Per fleet-second, its request bodies."""
    out = []
    for second in range(seconds):
        stamp = (first + timedelta(seconds=second)).strftime("%Y-%m-%dT%H:%M:%SZ").encode()
        envelopes = [c.replace(MARK.encode(), stamp) for c in calm]
        out.append(
            [
                b'{"batches":[' + b",".join(envelopes[i : i + PER_REQUEST]) + b"]}"
                for i in range(0, len(envelopes), PER_REQUEST)
            ]
        )
    return out


def views(decoded: Decoded) -> list[BatchView]:
    """A decoded body's views; the bench's bodies are all valid."""
    items = decoded if isinstance(decoded, list) else [decoded]
    bad = [item for item in items if not isinstance(item, BatchView)]
    if bad:
        raise SystemExit(f"the bench's body did not decode: {bad[0]}")
    return [item for item in items if isinstance(item, BatchView)]


async def one_round(calm: list[bytes], seconds: int) -> tuple[float, float, int]:
    """(pipeline CPU µs per sample, decode-only CPU µs per sample, samples stored)."""
    with tempfile.TemporaryDirectory() as workdir:
        storage = Storage.open(f"sqlite:///{workdir}/bench.db")
        context = build_context(
            ServerConfig(write_tokens={"bench"}), storage, clock=lambda: datetime.now(UTC)
        )
        try:
            first = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=seconds + 5)
            cold, *timed = requests(calm, first, seconds + 1)
            for body in cold:
                await ingest_batches(context, views(await decode_body(body)))
            bodies = [body for second in timed for body in second]
            started = time.process_time()
            for body in bodies:
                decode_and_view(body)
            decoding = time.process_time() - started
            stored = 0
            started = time.process_time()
            for body in bodies:
                results = await ingest_batches(context, views(await decode_body(body)))
                stored += sum(r.stored for r in results if isinstance(r, IngestResult))
            pipeline = time.process_time() - started
        finally:
            context.close()
        return pipeline / stored * 1e6, decoding / stored * 1e6, stored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--containers", type=int, default=30)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    calm, _ = templates(args.hosts, args.containers, 0)
    machines = args.hosts * (args.containers + 1)
    print(f"{args.hosts} hosts x {args.containers} containers = {machines:,} machines")
    tune_gc()
    for number in range(1, args.rounds + 1):
        pipeline, decoding, stored = asyncio.run(one_round(calm, args.seconds))
        print(
            f"  round {number}: {stored:,} samples; pipeline {pipeline:.1f} us per sample, "
            f"decode alone {decoding:.1f} us; pipeline / decode {pipeline / decoding:.2f}; "
            f"one core carries {1e6 / pipeline:,.0f} samples/s"
        )


if __name__ == "__main__":
    main()
