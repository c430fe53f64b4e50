"""A fleet at 1 Hz into ONE server process, from a cold start: does it reach a steady state?

    python bench/bench_fleet.py [--hosts 1000] [--containers 30] [--seconds 120]
                                [--lanes 20] [--hot 10] [--mariadb] [--scrape-seconds 0]

A ``srvmon server`` process (its own SQLite file, or ``--mariadb``: its own mariadbd) starts
on an empty database. At once ``--hosts`` hosts with ``--containers`` containers each report
once a second over HTTP ingest, the way consumers deliver: the hosts are split into
``--lanes`` lanes, each lane posts strictly in order, one ``{"batches": [...]}`` request at
a time, everything due since its last request (at most 500 envelopes, as the consumer).
``--hot`` hosts cross a threshold rule (no ``for``) every 10 s, one way then the other, so
alert events keep coming (about hot/10 a second). The default rules stay on, the ``silent``
rule (30 s) among them: a host that waits longer than that for its batches to get in fires
a *false* silent alert.

Printed:

- the cold start: when every machine (hosts x (1 + containers)) was first stored;
- steady state, over the last half of the run: samples produced and stored per second,
  their ratio, how far behind the lanes are (seconds of batches waiting), alert events,
  false ``silent`` alert events over the whole run, and the latency of requests a user
  makes meanwhile (``/api/v1/health``, ``/api/v1/alerts``, one machine, the machine list);
- with ``--scrape-seconds N``, a Prometheus meanwhile: ``/metrics`` every N seconds, and
  its latency;
- the server's CPU per stored sample;
- the reference, measured in the same run: SQLAlchemy ``executemany`` of the same rows
  into a fresh database of the same kind (1,000 rows per commit), and stored/ceiling.

The time one alert event costs the DB thread with this many machines is
``bench/bench_alert_state.py`` (0.65 ms SQLite, 0.95 ms MariaDB at 31,000 machines).
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bench.bench_pipeline import (  # noqa: E402
    TOKEN,
    Procs,
    cpu_seconds,
    make_batch,
    percentile,
    raw_insert_ceiling,
    start_server,
)
from srvmon_core.codec import encode_batch  # noqa: E402

MARK = "2026-01-01T00:00:00Z"
"""The timestamp every template envelope carries, replaced per tick."""
MARK_AT = datetime(2026, 1, 1, tzinfo=UTC)
HOT_RULE = {
    "id": "bench-hot",
    "name": "bench hot",
    "kind": "threshold",
    "selector": {"kind": "host"},
    "metric": "cpu_percent",
    "direction": "above",
    "warn": 90.0,
}
MAX_ENVELOPES = 500


def templates(hosts: int, containers: int, hot: int) -> tuple[list[bytes], list[bytes]]:
    """Per host, its envelope at rest and (hot hosts) its envelope above the rule."""
    calm, burning = [], []
    for h in range(hosts):
        batch = make_batch(h, 0, containers, cpu=20.0, at=MARK_AT)
        calm.append(encode_batch(batch))
        burning.append(
            encode_batch(make_batch(h, 0, containers, cpu=97.0, at=MARK_AT)) if h < hot else b""
        )
    if MARK.encode() not in calm[0]:
        raise SystemExit("the template envelope does not carry the expected timestamp")
    return calm, burning


def stamp(tick_start: float, tick: int) -> bytes:
    at = datetime.fromtimestamp(tick_start + tick, UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ").encode()


class Lane(threading.Thread):
    """Posts its hosts' envelopes in order, everything due since its last request."""

    def __init__(self, bench: Fleet, hosts: range) -> None:
        super().__init__(daemon=True)
        self.bench = bench
        self.hosts = hosts
        self.next_tick = 0
        self.latencies: list[tuple[float, float]] = []
        self.accepted = 0
        self.errors = 0

    def run(self) -> None:
        bench = self.bench
        conn = http.client.HTTPConnection("127.0.0.1", bench.port, timeout=120)
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        per_tick = len(self.hosts)
        while not bench.stop.is_set():
            due = bench.current_tick()
            if self.next_tick > due:
                bench.stop.wait(0.02)
                continue
            ticks = max(1, min(due - self.next_tick + 1, MAX_ENVELOPES // per_tick))
            body = bench.body(self.hosts, self.next_tick, ticks)
            began = time.monotonic()
            try:
                conn.request("POST", "/api/v1/ingest", body=body, headers=headers)
                answer = conn.getresponse()
                payload = answer.read()
            except (OSError, http.client.HTTPException):
                self.errors += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", bench.port, timeout=120)
                continue
            if answer.status != 200:
                self.errors += 1
                bench.stop.wait(0.5)
                continue
            self.latencies.append((time.monotonic(), time.monotonic() - began))
            results = json.loads(payload)["results"]
            self.accepted += sum(r.get("stored", 0) for r in results)
            self.next_tick += ticks


class Fleet:
    def __init__(self, args: argparse.Namespace, port: int) -> None:
        self.args = args
        self.port = port
        self.calm, self.burning = templates(args.hosts, args.containers, args.hot)
        self.stop = threading.Event()
        self.tick_start = float(int(time.time()) + 1)
        self.started = time.monotonic() + (self.tick_start - time.time())
        per_lane = -(-args.hosts // args.lanes)
        self.lanes = [
            Lane(self, range(i, min(i + per_lane, args.hosts)))
            for i in range(0, args.hosts, per_lane)
        ]

    def current_tick(self) -> int:
        return int(time.monotonic() - self.started)

    def body(self, hosts: range, first_tick: int, ticks: int) -> bytes:
        parts = []
        for tick in range(first_tick, first_tick + ticks):
            mark = stamp(self.tick_start, tick)
            hot_now = (tick // 10) % 2 == 1
            for h in hosts:
                template = self.burning[h] if hot_now and self.burning[h] else self.calm[h]
                parts.append(template.replace(MARK.encode(), mark))
        return b'{"batches":[' + b",".join(parts) + b"]}"

    def behind_seconds(self) -> float:
        """How far the slowest lane is behind the clock, in seconds of batches."""
        due = self.current_tick()
        return float(max(0, *(due - lane.next_tick for lane in self.lanes)))


def get_latency(url: str) -> float:
    began = time.monotonic()
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=120) as answer:
        answer.read()
    return time.monotonic() - began


def scrape(base: str, every: float, stop: threading.Event, out: list[tuple[float, float]]) -> None:
    """Prometheus meanwhile: ``/metrics`` every ``every`` seconds (never if 0); (time,
    latency) each."""
    while every > 0 and not stop.wait(every):
        try:
            out.append((time.monotonic(), get_latency(base + "/metrics")))
        except OSError:
            out.append((time.monotonic(), float("inf")))


def probe(base: str, stop: threading.Event, out: dict[str, list[tuple[float, float]]]) -> None:
    """A user meanwhile: health, active alerts and one machine every 2 s, the machine list
    every 10 s; (time, latency) per request."""
    n = 0
    while not stop.wait(2.0):
        paths = ["/api/v1/health", "/api/v1/alerts", "/api/v1/machines/bench-00000"]
        if n % 5 == 0:
            paths.append("/api/v1/machines")
        for path in paths:
            try:
                out.setdefault(path, []).append((time.monotonic(), get_latency(base + path)))
            except OSError:
                out.setdefault(path, []).append((time.monotonic(), float("inf")))
        n += 1


def figures(base: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{base}/metrics", timeout=60) as answer:
        text = answer.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("srvmon_server_"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def count(engine: sa.Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(sql)).scalar_one())


def put_rule(base: str, rule: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{base}/api/v1/rules/{rule['id']}",
        data=json.dumps(rule).encode(),
        method="PUT",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30):
        pass


def summary(values: list[float]) -> str:
    if not values:
        return "none"
    return (
        f"p50 {percentile(values, 50) * 1000:.0f} ms, p95 {percentile(values, 95) * 1000:.0f} ms,"
        f" max {max(values) * 1000:.0f} ms (n={len(values)})"
    )


def report_latencies(
    latencies: dict[str, list[tuple[float, float]]],
    scrapes: list[tuple[float, float]],
    since: float,
) -> None:
    """The user's requests after ``since``, per path and all together, then the scrapes."""
    for path in sorted(latencies):
        print(f"  GET {path}: {summary([v for t, v in latencies[path] if t >= since])}")
    steady = [v for path in latencies for t, v in latencies[path] if t >= since]
    print(f"  every request in the window: {summary(steady)}")
    scraped = [v for t, v in scrapes if t >= since]
    if scraped:
        print(f"  GET /metrics (Prometheus, apart from the above): {summary(scraped)}")


def run(args: argparse.Namespace, db_url: str, ceiling_url: str, workdir: Path) -> None:
    machines = args.hosts * (1 + args.containers)
    procs = Procs(workdir)
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    try:
        server, base = start_server(procs, db_url)
        put_rule(base, HOT_RULE)
        port = int(base.rsplit(":", 1)[1])
        fleet = Fleet(args, port)
        latencies: dict[str, list[tuple[float, float]]] = {}
        prober = threading.Thread(target=probe, args=(base, fleet.stop, latencies), daemon=True)
        scrapes: list[tuple[float, float]] = []
        scraper = threading.Thread(
            target=scrape, args=(base, args.scrape_seconds, fleet.stop, scrapes), daemon=True
        )
        cold_began = time.monotonic()
        for lane in fleet.lanes:
            lane.start()
        prober.start()
        scraper.start()
        all_known = None
        half = cold_began + args.seconds / 2
        window: dict[str, float] = {}
        while time.monotonic() < cold_began + args.seconds:
            time.sleep(1.0)
            if all_known is None and count(engine, "SELECT COUNT(*) FROM machines") >= machines:
                all_known = time.monotonic() - cold_began
            if not window and time.monotonic() >= half:
                window = {
                    "at": time.monotonic(),
                    "accepted": sum(lane.accepted for lane in fleet.lanes),
                    "cpu": cpu_seconds(server.pid),
                    "events": figures(base).get("srvmon_server_alert_events_total", 0.0),
                    "behind": fleet.behind_seconds(),
                }
            print(
                f"  t={time.monotonic() - cold_began:5.0f}s  stored "
                f"{sum(lane.accepted for lane in fleet.lanes):>9,}  behind "
                f"{fleet.behind_seconds():4.0f} s",
                flush=True,
            )
        end = {
            "at": time.monotonic(),
            "accepted": sum(lane.accepted for lane in fleet.lanes),
            "cpu": cpu_seconds(server.pid),
            "events": figures(base).get("srvmon_server_alert_events_total", 0.0),
            "behind": fleet.behind_seconds(),
        }
        fleet.stop.set()
        for lane in fleet.lanes:
            lane.join(130)
        prober.join(130)
        scraper.join(130)
        span = end["at"] - window["at"]
        stored_rate = (end["accepted"] - window["accepted"]) / span
        produced_rate = machines  # every machine once a second
        silent = count(
            engine,
            "SELECT COUNT(*) FROM alert_events WHERE rule_id = 'default.host.silent'"
            " AND to_state = 'firing'",
        )
        ceiling, _ = raw_insert_ceiling(
            ceiling_url, [make_batch(h, s, args.containers) for s in range(10) for h in range(100)]
        )
        cpu_us = (end["cpu"] - window["cpu"]) / max(1.0, end["accepted"] - window["accepted"])
        print(f"fleet: {args.hosts} hosts x {args.containers} containers = {machines:,} machines")
        print(
            f"cold start: every machine stored after "
            f"{'never' if all_known is None else f'{all_known:.1f} s'}"
        )
        print(
            f"steady state (last {span:.0f} s): produced {produced_rate:,.0f} samples/s, stored "
            f"{stored_rate:,.0f} samples/s = {stored_rate / produced_rate:.2f} of produced; "
            f"behind {window['behind']:.0f} s -> {end['behind']:.0f} s"
        )
        print(
            f"alert events: {end['events'] - window['events']:.0f} in the window "
            f"({(end['events'] - window['events']) / span:.2f}/s); false 'silent' firings over "
            f"the whole run: {silent}"
        )
        report_latencies(latencies, scrapes, window["at"])
        print(f"server CPU: {cpu_us * 1e6:.1f} us per stored sample")
        print(
            f"reference: executemany ceiling {ceiling:,.0f} rows/s; stored/ceiling "
            f"{stored_rate / ceiling:.2f}; produced/ceiling {produced_rate / ceiling:.2f}"
        )
    finally:
        procs.stop_all()
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--containers", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--lanes", type=int, default=20)
    parser.add_argument("--hot", type=int, default=10)
    parser.add_argument("--mariadb", action="store_true", help="run on a MariaDB of its own")
    parser.add_argument(
        "--scrape-seconds",
        type=float,
        default=0.0,
        help="also GET /metrics this often, as Prometheus would (0: never)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="srvmon-bench-fleet-") as tmp:
        workdir = Path(tmp)
        if not args.mariadb:
            run(args, f"sqlite:///{workdir / 'fleet.db'}", f"sqlite:///{workdir / 'c.db'}", workdir)
            return
        from bench.bench_ingest import fresh_database, mysql_server

        with mysql_server(None) as server:
            run(args, fresh_database(server), fresh_database(server), workdir)


if __name__ == "__main__":
    main()
