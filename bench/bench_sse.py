"""SSE fan-out: publish-to-receipt latency with N clients over real sockets.

A real server (make_app on SQLite) runs in this process; the N SSE clients run as asyncio
raw sockets in a child process, so client parsing does not steal the server's loop. Each
published event carries its wall-clock send time; a client's latency is receipt minus send.
The reference is the same measurement with one client, in the same run.

    python bench/bench_sse.py [--clients 1000] [--events 20]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _server import BenchServer, percentile, read_events


def clients_process(port: int, clients: int, events: int, ready: Any, out: Any) -> None:
    async def main() -> list[float]:
        latencies: list[float] = []
        connected = 0

        def on_connect() -> None:
            nonlocal connected
            connected += 1
            if connected == clients:
                ready.set()

        def on_event(name: str, data: Any, received: float) -> bool:
            if name == "sample" and "sent" in data:
                latencies.append(received - data["sent"])
                return bool(data["seq"] == events - 1)
            return False

        tasks = [
            read_events(port, "/api/v1/events?topics=metrics", on_event, on_connect)
            for _ in range(clients)
        ]
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=120)
        return latencies

    out.put(asyncio.run(main()))


def run(server: BenchServer, clients: int, events: int) -> list[float]:
    ctx = multiprocessing.get_context("spawn")
    ready, out = ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=clients_process, args=(server.port, clients, events, ready, out))
    proc.start()
    if not ready.wait(60):
        proc.kill()
        raise SystemExit("clients did not connect")
    deadline = time.monotonic() + 10
    hub = server.context.hub
    while hub.client_count < clients and time.monotonic() < deadline:
        time.sleep(0.01)
    for seq in range(events):
        server.call(
            lambda seq=seq: hub.publish(
                "sample", {"key": f"bench-{seq}", "seq": seq, "sent": time.time()}, f"bench-{seq}"
            )
        )
        time.sleep(0.1)
    latencies: list[float] = out.get(timeout=120)
    proc.join(30)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--events", type=int, default=20)
    args = parser.parse_args()
    server = BenchServer(client_queue_size=1000)
    try:
        reference = run(server, 1, args.events)
        fanout = run(server, args.clients, args.events)
    finally:
        server.stop()
    ref_p50, ref_p99 = percentile(reference, 50), percentile(reference, 99)
    p50, p99 = percentile(fanout, 50), percentile(fanout, 99)
    expected = args.clients * args.events
    print(
        f"reference: 1 client, {len(reference)} deliveries: "
        f"p50 {ref_p50 * 1000:.2f} ms, p99 {ref_p99 * 1000:.2f} ms"
    )
    print(
        f"fan-out: {args.clients} clients, {len(fanout)}/{expected} deliveries: "
        f"p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms"
    )
    print(f"ratio vs 1 client: p50 x{p50 / ref_p50:.1f}, p99 x{p99 / ref_p99:.1f}")
    print(f"target p99 <= 500 ms: {'met' if p99 <= 0.5 else 'MISSED'}")


if __name__ == "__main__":
    main()
