"""Regenerate the dashboard screenshots of the README and docs/dashboard.md.

A realistic room: 50 hosts (web, api, db, cache, worker, edge) with their containers and 30
minutes of history at 30 s, fed to a real ``srvmon server`` through its batched ingest API;
the hosts then keep reporting every 5 s while the pictures are taken. One alert fires
(db-03's disk, critical) and one is silenced (the queue container on worker-07, its memory),
so the screens show both. Debian's chromium is driven by playwright.

    .venv/bin/python docs/screenshots/regenerate.py            # writes docs/screenshots/*.png
    .venv/bin/python docs/screenshots/regenerate.py --out /tmp/shots --hosts 20

Needs the ``test`` extra (playwright) and /usr/bin/chromium; never downloads a browser.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from srvmon_core.codec import encode_batch
from srvmon_core.schema import Batch, ContainerSample, DiskUsage, HostSample, NetIO

HERE = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
TOKEN = "screenshots-write-token"
GIB = 1024**3
MIB = 1024**2
ROLES = {  # role → (containers with their images, count of hosts)
    "web": (
        [
            ("nginx", "nginx:1.27"),
            ("app", "shop/web:4.2"),
            ("node-exporter", "prom/node-exporter:1.8"),
        ],
        14,
    ),
    "api": (
        [("api", "shop/api:4.2"), ("worker", "shop/api:4.2"), ("envoy", "envoyproxy/envoy:1.31")],
        10,
    ),
    "db": (
        [
            ("postgres", "postgres:16"),
            ("pgbouncer", "bitnami/pgbouncer:1.23"),
            ("backup", "shop/pg-backup:2"),
        ],
        6,
    ),
    "cache": ([("redis", "redis:7.4"), ("sentinel", "redis:7.4")], 6),
    "worker": (
        [("queue", "rabbitmq:3.13"), ("jobs", "shop/jobs:4.2"), ("cron", "shop/cron:1.3")],
        8,
    ),
    "edge": ([("haproxy", "haproxy:3.0"), ("certbot", "certbot/certbot:v2.11")], 6),
}
RULES = [
    {
        "id": "db-disk",
        "name": "Database disk filling up",
        "selector": {"kind": "host", "machine": "db-*"},
        "metric": "disk_used_percent_max",
        "warn": 80.0,
        "crit": 90.0,
        "warn_recovery": 75.0,
    },
    {
        "id": "container-memory",
        "name": "Container memory",
        "selector": {"kind": "container"},
        "metric": "memory_percent",
        "warn": 90.0,
        "crit": 97.0,
    },
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(base: str, path: str, method: str = "GET", body: Any = None) -> Any:
    data = body if isinstance(body, bytes | None) else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {TOKEN}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        raw = response.read()
        return json.loads(raw) if raw else None


class Room:
    """The fleet: host names, ids and their containers, and a value for any moment."""

    def __init__(self, hosts: int, seed: int = 13) -> None:
        self.random = random.Random(seed)
        roles = [(role, n) for role, (_, n) in ROLES.items()]
        total = sum(n for _, n in roles)
        self.hosts: list[tuple[str, str, str]] = []  # (host id, hostname, role)
        for role, n in roles:
            for i in range(1, max(1, round(n * hosts / total)) + 1):
                name = f"{role}-{i:02d}"
                self.hosts.append((f"{self.random.getrandbits(128):032x}", name, role))
        self.hosts = self.hosts[:hosts]
        self.base = {h: self.random.uniform(8, 45) for h, _, _ in self.hosts}

    def value(self, host: str, minute: float, spread: float = 12.0) -> float:
        base = self.base[host]
        wave = spread * (0.5 + 0.5 * math.sin(minute / 4 + base))
        return round(min(78.0, base + wave + self.random.uniform(-2, 2)), 1)

    def batch(self, host: str, name: str, role: str, at: datetime, minute: float) -> Batch:
        memory = self.value(host, minute + 7, 6) + 10
        disk = 91.4 if name == "db-03" else round(35 + self.base[host] / 2, 1)
        total = 64 * GIB if role == "db" else 32 * GIB
        used = int(total * memory / 100)
        cpu = self.value(host, minute)
        host_sample = HostSample(
            cpu_percent=cpu,
            cpu_per_core_percent=tuple(
                round(max(0.0, cpu + self.random.uniform(-8, 8)), 1) for _ in range(8)
            ),
            load_1=round(cpu / 12, 2),
            load_5=round(cpu / 13, 2),
            load_15=round(cpu / 14, 2),
            memory_total_bytes=total,
            memory_used_bytes=used,
            memory_available_bytes=total - used,
            memory_percent=memory,
            disks=(
                DiskUsage(
                    mount="/",
                    device="/dev/nvme0n1p2",
                    fstype="ext4",
                    total_bytes=500 * GIB,
                    used_bytes=int(500 * GIB * disk / 100),
                    used_percent=disk,
                ),
            ),
            disk_read_bytes_per_s=self.random.uniform(0.2, 6) * MIB,
            disk_write_bytes_per_s=self.random.uniform(0.5, 12) * MIB,
            net=(
                NetIO(
                    interface="eth0",
                    rx_bytes_per_s=self.random.uniform(0.3, 9) * MIB,
                    tx_bytes_per_s=self.random.uniform(0.1, 4) * MIB,
                ),
            ),
            uptime_seconds=86_400 * 23,
            process_count=180 + int(cpu),
        )
        containers = []
        for container, image in ROLES[role][0]:
            share = self.random.uniform(0.05, 0.4)
            mem = (
                92.6
                if (name == "worker-07" and container == "queue")
                else round(20 + 40 * share, 1)
            )
            containers.append(
                ContainerSample(
                    id=hashlib.sha256(f"{host}/{container}".encode()).hexdigest()[:12],
                    name=container,
                    image=image,
                    labels={
                        "com.docker.compose.project": role,
                        "com.docker.compose.service": container,
                    },
                    cpu_percent=round(cpu * share, 2),
                    memory_working_set_bytes=int(2 * GIB * mem / 100),
                    memory_limit_bytes=2 * GIB,
                    memory_percent=mem,
                    net_rx_bytes_per_s=self.random.uniform(10, 900) * 1024,
                    net_tx_bytes_per_s=self.random.uniform(5, 400) * 1024,
                    block_read_bytes_per_s=self.random.uniform(0, 200) * 1024,
                    block_write_bytes_per_s=self.random.uniform(0, 600) * 1024,
                    pids=4 + int(share * 40),
                )
            )
        return Batch(
            host_id=host,
            hostname=name,
            timestamp=at,
            interval_seconds=30.0,
            host=host_sample,
            containers=tuple(containers),
        )


def feed_history(base: str, room: Room, minutes: int) -> None:
    now = datetime.now(UTC)
    envelopes = []
    for step in range(minutes * 2 + 1):
        minute = step / 2
        at = now - timedelta(minutes=minutes) + timedelta(seconds=30 * step)
        for host, name, role in room.hosts:
            envelopes.append(json.loads(encode_batch(room.batch(host, name, role, at, minute))))
    for start in range(0, len(envelopes), 400):
        call(base, "/api/v1/ingest", "POST", {"batches": envelopes[start : start + 400]})


def keep_reporting(base: str, room: Room, minutes: int, stop: threading.Event) -> None:
    """Every host reports every 5 s, so nothing goes silent while the pictures are taken."""
    started = time.monotonic()
    while not stop.wait(5):
        minute = minutes + (time.monotonic() - started) / 60
        now = datetime.now(UTC)
        envelopes = [
            json.loads(encode_batch(room.batch(h, n, r, now, minute))) for h, n, r in room.hosts
        ]
        try:
            call(base, "/api/v1/ingest", "POST", {"batches": envelopes})
        except (urllib.error.URLError, OSError):
            return


def start_server(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    srvmon = Path(sys.executable).with_name("srvmon")
    command = [
        str(srvmon),
        "server",
        "--port",
        str(port),
        "--token",
        TOKEN,
        "--data-dir",
        str(workdir),
    ]
    log = (workdir / "server.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            call(base, "/api/v1/health")
            return process, base
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"srvmon server did not start; see {workdir / 'server.log'}")


def take(base: str, room: Room, out: Path) -> list[Path]:
    from playwright.sync_api import expect, sync_playwright

    web = next(h for h, n, _ in room.hosts if n == "web-01")
    made = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.add_init_script(f"sessionStorage.setItem('srvmon.token', '{TOKEN}')")

        def shot(name: str, route: str, ready: str, before: Any = None) -> None:
            page.goto(f"{base}/{route}")
            expect(page.locator("#conn")).to_have_text("live", timeout=15000)
            expect(page.locator(ready).first).to_be_visible(timeout=15000)
            if before:
                before()
            page.wait_for_timeout(800)
            path = out / f"dashboard-{name}.png"
            page.screenshot(path=str(path))
            made.append(path)

        def charts_drawn() -> None:
            expect(page.locator("canvas.chart:not([data-points])")).to_have_count(0, timeout=15000)

        def edit_rule() -> None:
            page.locator('tr[data-rule-id="db-disk"] .edit-rule').click()

        def search_history() -> None:
            page.fill('#history-form [name="machine"]', "db-*")
            page.click("#history-form button[type=submit]")

        shot("overview", "#/", ".tile")
        shot("host", f"#/host/{web}", "#container-rows tr", charts_drawn)
        shot("container", f"#/host/{web}/container/app", "canvas.chart", charts_drawn)
        shot("alerts", "#/alerts", "#active-alerts tr[data-fingerprint]")
        shot("history", "#/alerts", "#history-rows tr", search_history)
        shot("rules", "#/rules", "tr[data-rule-id]", edit_rule)
        shot("silences", "#/silences", "#silence-rows tr")
        page.set_viewport_size({"width": 390, "height": 844})
        shot("phone", "#/", ".tile")
        browser.close()
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder for the PNGs")
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--minutes", type=int, default=30)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    room = Room(args.hosts)
    with tempfile.TemporaryDirectory(prefix="srvmon-shots-") as scratch:
        process, base = start_server(Path(scratch))
        stop = threading.Event()
        try:
            for rule in RULES:
                call(base, f"/api/v1/rules/{rule['id']}", "PUT", rule)
            feed_history(base, room, args.minutes)
            worker = next(h for h, n, _ in room.hosts if n == "worker-07")
            ends = (datetime.now(UTC) + timedelta(hours=6)).isoformat()
            call(
                base,
                "/api/v1/silences",
                "POST",
                {
                    "matchers": {"machine": "worker-07/queue", "rule": "container-memory"},
                    "ends_at": ends,
                    "comment": "queue migration tonight, memory expected high",
                },
            )
            active = call(base, "/api/v1/alerts")["alerts"]
            firing = sorted(
                (a["machine_name"], a["rule_id"], a["silenced"])
                for a in active
                if a["state"] == "firing"
            )
            print(f"{len(room.hosts)} hosts; firing: {firing}; worker-07 is {worker}")
            threading.Thread(
                target=keep_reporting, args=(base, room, args.minutes, stop), daemon=True
            ).start()
            for path in take(base, room, args.out):
                print(path)
        finally:
            stop.set()
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=20)


if __name__ == "__main__":
    main()
