"""SSE fan-out: publish-to-receipt latency with N clients over real sockets, and what one
published sample costs the server as clients (fleet views, full streams) are added.

Latency: a real server (make_app on SQLite) runs in this process; the N SSE clients run as
asyncio raw sockets in a child process, so client parsing does not steal the server's loop.
Each published event carries its wall-clock send time; a client's latency is receipt minus
send. The reference is the same measurement with one client, in the same run.

Fan-out cost: the hub alone (no sockets), one fleet's samples (1,000 hosts x 31 machines)
published with 0, 10, 100 and 1,000 clients connected, each client then taking what waits
for it (which encodes the frames). The reference is the same fleet with no client. A fleet
view takes no samples, so its cost must not grow with the number of fleet clients; every
full-stream client costs one queue slot per sample, and each frame is encoded once however
many clients send it.

    python bench/bench_sse.py [--clients 1000] [--events 20] [--no-latency]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._server import BenchServer, percentile, read_events  # noqa: E402
from srvmon_server import sse  # noqa: E402
from srvmon_server.hub import Hub  # noqa: E402
from srvmon_server.sse import Subscription, view_subscription  # noqa: E402


def publish_probe(hub: Hub, seq: int) -> None:
    """One timed sample event, stamped as it is published (on the server's loop)."""
    hub.publish("sample", {"key": f"bench-{seq}", "seq": seq, "sent": time.time()}, f"bench-{seq}")


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
        server.call(functools.partial(publish_probe, hub, seq))
        time.sleep(0.1)
    latencies: list[float] = out.get(timeout=120)
    proc.join(30)
    return latencies


def fanout_cost(
    clients: int, kind: str, hosts: int = 1000, machines: int = 31
) -> tuple[float, int]:
    """Seconds per published sample (publish + every client taking its queue) and frames
    encoded, for one round of ``hosts`` x ``machines`` samples."""
    hub = Hub(ring_size=10_000, client_queue_size=10_000)
    subscription = view_subscription("fleet") if kind == "fleet" else Subscription()
    subscribed = [hub.subscribe(subscription, lambda: None, lambda: None) for _ in range(clients)]
    encoded = 0
    real = sse.format_event

    def counting(event_id: int | None, name: str, data: object) -> bytes:
        nonlocal encoded
        encoded += 1
        return real(event_id, name, data)

    sse.format_event = counting  # type: ignore[assignment]
    payloads = [
        (f"host-{h:04d}" + ("" if m == 0 else f":svc-{m:02d}"), f"host-{h:04d}")
        for h in range(hosts)
        for m in range(machines)
    ]
    try:
        started = time.perf_counter()
        for key, host in payloads:
            data = {
                "key": key,
                "kind": "container",
                "host_id": host,
                "metrics": {"cpu_percent": 1.0},
            }
            hub.publish("sample", data, key, host=host)
        for s in subscribed:
            s.client.take_all()
        elapsed = time.perf_counter() - started
    finally:
        sse.format_event = real
    return elapsed / len(payloads), encoded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--no-latency", action="store_true", help="only the fan-out cost")
    args = parser.parse_args()

    print("fan-out cost per published sample (1,000 hosts x 31 machines, best of 5):")
    reference = min(fanout_cost(0, "fleet")[0] for _ in range(5))
    print(f"  no client: {reference * 1e6:.2f} us")
    for kind in ("fleet", "full-stream"):
        for clients in (10, 100, 1000):
            runs = [fanout_cost(clients, kind) for _ in range(5)]
            cost = min(r[0] for r in runs)
            encoded = runs[0][1]
            print(
                f"  {clients:>5} {kind} clients: {cost * 1e6:8.2f} us "
                f"(x{cost / reference:.1f} the no-client reference), "
                f"{encoded} frames encoded for {31_000} samples"
            )
    if args.no_latency:
        return
    server = BenchServer(client_queue_size=1000)
    try:
        reference_lat = run(server, 1, args.events)
        fanout = run(server, args.clients, args.events)
    finally:
        server.stop()
    ref_p50, ref_p99 = percentile(reference_lat, 50), percentile(reference_lat, 99)
    p50, p99 = percentile(fanout, 50), percentile(fanout, 99)
    expected = args.clients * args.events
    print(
        f"reference: 1 client, {len(reference_lat)} deliveries: "
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
