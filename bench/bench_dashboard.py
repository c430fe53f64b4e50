"""Dashboard under fleet load: 100 hosts x 20 containers at 1 Hz into a real server, the
fleet overview open in chromium. Prints the page's JS heap and DOM node count at 1 minute
and at the end, and the ratio end / 1 minute (flat = no leak: about 1.0).

    python bench/bench_dashboard.py [--minutes 5] [--hosts 100] [--containers 20]

Starts ``srvmon server`` on a free port with a temporary SQLite database, or uses the
server at ``--url`` (then ``--token`` must be its write token).
"""

from __future__ import annotations

import argparse
import http.client
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from srvmon_core.codec import encode_batch  # noqa: E402
from srvmon_core.schema import Batch, ContainerSample, HostSample, NetIO  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
GIB = 1024**3


def make_batch(host: int, containers: int, now: datetime) -> bytes:
    rng = random.Random()
    used = rng.uniform(0.2, 0.8)
    sample = HostSample(
        cpu_percent=rng.uniform(0, 100),
        load_1=rng.uniform(0, 4),
        load_5=1.0,
        load_15=1.0,
        memory_total_bytes=64 * GIB,
        memory_used_bytes=int(64 * GIB * used),
        memory_available_bytes=int(64 * GIB * (1 - used)),
        memory_percent=used * 100,
        net=(NetIO(interface="eth0", rx_bytes_per_s=rng.uniform(0, 1e7), tx_bytes_per_s=1e5),),
    )
    boxes = tuple(
        ContainerSample(
            id=f"c{host}-{n}",
            name=f"svc-{n}",
            image="shop/app:1",
            labels={"com.docker.compose.project": "shop"},
            cpu_percent=rng.uniform(0, 50),
            memory_working_set_bytes=rng.randint(10, 500) * 1024**2,
            memory_limit_bytes=1024**3,
            memory_percent=rng.uniform(1, 50),
            net_rx_bytes_per_s=rng.uniform(0, 1e6),
            net_tx_bytes_per_s=rng.uniform(0, 1e5),
        )
        for n in range(containers)
    )
    batch = Batch(
        host_id=f"host-{host:03d}",
        hostname=f"host-{host:03d}.rack",
        timestamp=now,
        host=sample,
        containers=boxes,
    )
    return encode_batch(batch)


class Feeder(threading.Thread):
    """Posts one batch per host per second over keep-alive connections (4 workers)."""

    def __init__(self, url: str, token: str, hosts: int, containers: int) -> None:
        super().__init__(daemon=True)
        self.url = urlsplit(url)
        self.token = token
        self.hosts = hosts
        self.containers = containers
        self.stop_event = threading.Event()
        self.posted = 0
        self.failed = 0
        self.late_seconds = 0
        self.local = threading.local()

    def post(self, body: bytes) -> None:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.url.hostname, self.url.port, timeout=30)
            self.local.conn = conn
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        try:
            conn.request("POST", "/api/v1/ingest", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            ok = response.status == 200
        except OSError:
            self.local.conn = None
            ok = False
        if ok:
            self.posted += 1
        else:
            self.failed += 1

    def run(self) -> None:
        with ThreadPoolExecutor(max_workers=4) as pool:
            next_tick = time.monotonic()
            while not self.stop_event.is_set():
                now = datetime.now(UTC)
                bodies = [make_batch(h, self.containers, now) for h in range(self.hosts)]
                list(pool.map(self.post, bodies))
                next_tick += 1.0
                delay = next_tick - time.monotonic()
                if delay > 0:
                    self.stop_event.wait(delay)
                else:
                    self.late_seconds += 1
                    next_tick = time.monotonic()


def start_server(workdir: Path, token: str) -> tuple[subprocess.Popen[bytes], str]:
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = Path(sys.executable).with_name("srvmon")
    command = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from srvmon_cli.main import main; main()"]
    )
    log = (workdir / "server.log").open("ab")
    process = subprocess.Popen(
        [
            *command,
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--db-url",
            f"sqlite:///{workdir}/db",
            "--token",
            token,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"srvmon server exited; see {workdir}/server.log")
        try:
            with urllib.request.urlopen(f"{url}/api/v1/health", timeout=1):
                return process, url
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("srvmon server did not become ready in 30 s")


def page_figures(cdp: object) -> dict[str, float]:
    cdp.send("HeapProfiler.collectGarbage")  # type: ignore[attr-defined]
    metrics = cdp.send("Performance.getMetrics")["metrics"]  # type: ignore[attr-defined]
    return {m["name"]: m["value"] for m in metrics}


STATE_JS = """() => ({
    samples: window.__samples,
    alerts: window.srvmon.alerts.size,
    containers: [...window.srvmon.hosts.values()].reduce((n, h) => n + h.containers.size, 0),
})"""


def report(label: str, figures: dict[str, float], state: dict[str, int]) -> None:
    print(
        f"{label:>8}: JS heap {figures['JSHeapUsedSize'] / 1024**2:7.2f} MiB, "
        f"DOM nodes {int(figures['Nodes']):6d}, listeners {int(figures['JSEventListeners']):5d}; "
        f"sample events seen {state['samples']}, containers held {state['containers']}, "
        f"active alerts held {state['alerts']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--containers", type=int, default=20)
    parser.add_argument("--url", help="use this running server instead of starting one")
    parser.add_argument("--token", default="bench-write-token")
    args = parser.parse_args()
    if args.minutes < 1:
        parser.error("--minutes must be at least 1 (the first figure is taken at 1 minute)")

    from playwright.sync_api import sync_playwright

    workdir = Path(tempfile.mkdtemp(prefix="srvmon-bench-"))
    process = None
    if args.url:
        url = args.url
    else:
        process, url = start_server(workdir, args.token)
    feeder = Feeder(url, args.token, args.hosts, args.containers)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.add_init_script(
                "window.__samples = 0; const Native = EventSource;"
                " window.EventSource = class extends Native { constructor(...a) { super(...a);"
                " this.addEventListener('sample', () => { window.__samples += 1; }); } };"
            )
            feeder.start()
            page.goto(f"{url}/#/")
            cdp = page.context.new_cdp_session(page)
            cdp.send("Performance.enable")
            started = time.monotonic()
            page.wait_for_timeout(60_000)
            first = page_figures(cdp)
            report("1 min", first, page.evaluate(STATE_JS))
            remaining = args.minutes * 60 - (time.monotonic() - started)
            if remaining > 0:
                page.wait_for_timeout(remaining * 1000)
            last = page_figures(cdp)
            report(f"{args.minutes:g} min", last, page.evaluate(STATE_JS))
            tiles = page.evaluate("document.querySelectorAll('.tile').length")
            browser.close()
    finally:
        feeder.stop_event.set()
        feeder.join(timeout=30)
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
    elapsed = args.minutes * 60
    print(
        f"ingest: {feeder.posted} batches posted ({feeder.posted / elapsed:.1f}/s, "
        f"target {args.hosts}/s), {feeder.failed} failed, {feeder.late_seconds} late ticks; "
        f"{tiles} tiles on the page"
    )
    print(
        f"ratio end / 1 min: JS heap {last['JSHeapUsedSize'] / first['JSHeapUsedSize']:.3f}, "
        f"DOM nodes {last['Nodes'] / first['Nodes']:.3f}  (flat = 1.0)"
    )


if __name__ == "__main__":
    main()
