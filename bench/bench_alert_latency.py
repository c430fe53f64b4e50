"""Breach-to-SSE latency: POST a breaching batch, time until its ``alert`` event arrives.

A real server (make_app on SQLite) in a thread, one SSE client on a raw socket in another
thread. Each round posts a breaching batch (cpu 95 % against a warn-at-50 rule, fires at
once), waits for the firing event, then posts a calm batch and waits for the resolve. The
reference is the plain ingest round-trip (POST to 200) of the same batches in the same run.

    python bench/bench_alert_latency.py [--rounds 100]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import http.client
import json
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._server import TOKEN, BenchServer, percentile, read_events  # noqa: E402
from srvmon_core.codec import encode_batch  # noqa: E402
from srvmon_core.schema import Batch, HostSample  # noqa: E402

RULE = {
    "id": "bench-cpu",
    "name": "bench cpu",
    "metric": "cpu_percent",
    "warn": 50.0,
    "selector": {"kind": "host"},
}


def _more_than(arrivals: dict[tuple[int, str], float], index: int) -> bool:
    return len(arrivals) > index


def batch(at: datetime, cpu: float) -> bytes:
    return encode_batch(
        Batch(
            host_id="bench-host",
            hostname="bench",
            timestamp=at,
            host=HostSample(
                cpu_percent=cpu,
                load_1=0,
                load_5=0,
                load_15=0,
                memory_total_bytes=1,
                memory_used_bytes=0,
                memory_available_bytes=1,
                memory_percent=0,
            ),
        )
    )


def post(conn: http.client.HTTPConnection, path: str, body: bytes, method: str = "POST") -> float:
    started = time.perf_counter()
    conn.request(method, path, body=body, headers={"Authorization": f"Bearer {TOKEN}"})
    resp = conn.getresponse()
    resp.read()
    if resp.status >= 300:
        raise SystemExit(f"{path}: HTTP {resp.status}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args()
    server = BenchServer()
    arrivals: dict[tuple[int, str], float] = {}
    arrived = threading.Condition()
    connected = threading.Event()

    def on_event(name: str, data: Any, _wall: float) -> bool:
        if name == "alert":
            with arrived:
                arrivals[(len(arrivals), data["to_state"])] = time.perf_counter()
                arrived.notify_all()
        return False

    reader = threading.Thread(
        target=lambda: asyncio.run(
            read_events(server.port, "/api/v1/events?topics=alerts", on_event, connected.set)
        ),
        daemon=True,
    )
    reader.start()
    connected.wait(10)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for rule in json.loads(_get(conn, "/api/v1/rules"))["rules"]:
            post(conn, f"/api/v1/rules/{rule['id']}", b"", method="DELETE")
        post(conn, "/api/v1/rules", json.dumps(RULE).encode())
        at = datetime.now(UTC)
        breach, ingest = [], []
        for n in range(args.rounds):
            for cpu, state in ((95.0, "firing"), (5.0, "resolved")):
                at += timedelta(seconds=1)
                body = batch(at, cpu)
                started = time.perf_counter()
                round_trip = post(conn, "/api/v1/ingest", body)
                index = 2 * n + (state == "resolved")
                with arrived:
                    arrived.wait_for(functools.partial(_more_than, arrivals, index), 10)
                got = arrivals.get((index, state))
                if got is None:
                    raise SystemExit(f"round {n}: no {state} event")
                if state == "firing":
                    breach.append(got - started)
                del round_trip
            # the reference: a calm batch of the same size, no alert transition
            at += timedelta(seconds=1)
            ingest.append(post(conn, "/api/v1/ingest", batch(at, 5.0)))
    finally:
        conn.close()
        server.stop()
    p50, p99 = percentile(breach, 50), percentile(breach, 99)
    i50, i99 = percentile(ingest, 50), percentile(ingest, 99)
    print(
        f"ingest round-trip (reference), {len(ingest)} posts: "
        f"p50 {i50 * 1000:.2f} ms, p99 {i99 * 1000:.2f} ms"
    )
    print(
        f"breach to SSE alert, {len(breach)} alerts: "
        f"p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms"
    )
    print(f"ratio vs ingest round-trip: p50 x{p50 / i50:.2f}, p99 x{p99 / i99:.2f}")


def _get(conn: http.client.HTTPConnection, path: str) -> bytes:
    conn.request("GET", path)
    resp = conn.getresponse()
    return resp.read()


if __name__ == "__main__":
    main()
