"""The live view at fleet scale: N hosts x 30 containers at 1 Hz into one `srvmon server`
(SQLite), the fleet overview open in chromium at 1366x768. The reference, in the same run
on the same server, is the dashboard as it was before views existed (git commit
REFERENCE_COMMIT, served to the page by playwright): it subscribes to
`topics=metrics,alerts` for every machine, the old full stream.

    python bench/bench_dashboard.py [--hosts 50,200,500,1000] [--containers 30]
                                    [--seconds 30] [--heap-minutes 0] [--no-reference]

For each host count, on a fresh server and database, for each page (`views` = today's,
`full-stream` = the reference): the first render (navigation to every host drawn with
values), the browser main-thread time per second (CDP TaskDuration), the sample → browser
lag (sample timestamp to the page's handler, p50/p95), the age of every host's values on
screen (sampled every 2 s, p95), the JS heap after GC, the server's CPU, samples stored vs
produced, and whether every critical host is on the first screen. `--heap-minutes M` also
keeps today's page open M minutes at the first host count and prints its heap at 1 minute
and at the end (after GC): flat = about 1.0.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from srvmon_core.codec import encode_batch  # noqa: E402
from srvmon_core.schema import Batch, ContainerSample, DiskUsage, HostSample, NetIO  # noqa: E402

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
VIEWPORT = {"width": 1366, "height": 768}
REFERENCE_COMMIT = "36e312f"
"""The last commit before views, summaries and conflation: its dashboard is the reference."""
GIB = 1024**3
PLACEHOLDER = "2000-01-01T00:00:00Z"
VARIANTS = 4
REQUEST_ENVELOPES = 500
REQUEST_BYTES = 4 * 1024 * 1024
"""As the consumer does: at most 500 envelopes and 4 MiB per request."""
POSTERS = 4
"""Concurrent requests (the consumer posts one per partition at a time)."""


# --- the fleet -------------------------------------------------------------------------------


def disk_percent(host: int) -> float:
    """A few hosts have a full disk (critical after the default rule's 30 s), a few a
    filling one (warning); the rest are fine."""
    if host % 50 == 13:
        return 97.0
    if host % 50 == 29:
        return 88.0
    return 40.0 + host % 30


def make_batch(host: int, containers: int, rng: random.Random) -> Batch:
    used = rng.uniform(0.2, 0.8)
    disk = disk_percent(host)
    sample = HostSample(
        cpu_percent=round(rng.uniform(0, 80), 1),
        load_1=rng.uniform(0, 4),
        load_5=1.0,
        load_15=1.0,
        memory_total_bytes=64 * GIB,
        memory_used_bytes=int(64 * GIB * used),
        memory_available_bytes=int(64 * GIB * (1 - used)),
        memory_percent=round(used * 100, 1),
        disks=(
            DiskUsage(
                mount="/",
                device="/dev/sda1",
                fstype="ext4",
                total_bytes=500 * GIB,
                used_bytes=int(500 * GIB * disk / 100),
                used_percent=disk,
            ),
        ),
        net=(NetIO(interface="eth0", rx_bytes_per_s=rng.uniform(0, 1e7), tx_bytes_per_s=1e5),),
    )
    boxes = tuple(
        ContainerSample(
            id=f"c{host}-{n}",
            name=f"svc-{n:02d}",
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
    return Batch(
        host_id=f"host-{host:04d}",
        hostname=f"host-{host:04d}.rack",
        timestamp=datetime(2000, 1, 1, tzinfo=UTC),
        interval_seconds=1.0,
        host=sample,
        containers=boxes,
    )


def templates(hosts: int, containers: int) -> list[list[bytes]]:
    """VARIANTS encoded envelopes per host with a placeholder timestamp (encoding 31,000
    samples a second in the feeder would compete with the server for the two cores)."""
    rng = random.Random(7)
    out = []
    for host in range(hosts):
        variants = []
        for _ in range(VARIANTS):
            body = encode_batch(make_batch(host, containers, rng))
            assert PLACEHOLDER.encode() in body
            variants.append(body)
        out.append(variants)
    return out


class Feeder(threading.Thread):
    """One round per second: every host's envelope with that second's timestamp, posted as
    `{"batches": [...]}` of at most 500 envelopes and 4 MiB on 4 keep-alive connections
    (the consumer's way).
    A round not posted within 3 s is dropped (counted): the server could not keep up."""

    def __init__(self, url: str, token: str, envelopes: list[list[bytes]], samples: int) -> None:
        super().__init__(daemon=True)
        self.url = urlsplit(url)
        self.token = token
        self.envelopes = envelopes
        self.samples_per_round = samples
        self.stop_event = threading.Event()
        self.work: queue.Queue[tuple[float, bytes, int] | None] = queue.Queue()
        self.lock = threading.Lock()
        self.produced = 0
        self.posted = 0
        self.failed = 0
        self.dropped = 0

    def run(self) -> None:
        posters = [threading.Thread(target=self.post_loop, daemon=True) for _ in range(POSTERS)]
        for poster in posters:
            poster.start()
        tick = 0
        next_tick = time.monotonic()
        while not self.stop_event.is_set():
            stamp = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
            ts = stamp.encode()
            variant = tick % VARIANTS
            # start each round elsewhere in the fleet: when the server cannot keep up and
            # late requests are dropped, every host loses some rounds, not always the last
            start = (tick * 97) % len(self.envelopes)
            order = self.envelopes[start:] + self.envelopes[:start]
            bodies = [v[variant].replace(PLACEHOLDER.encode(), ts) for v in order]
            now = time.monotonic()
            group: list[bytes] = []
            size = 0
            for one in bodies:
                if group and (len(group) == REQUEST_ENVELOPES or size + len(one) > REQUEST_BYTES):
                    self.work.put((now, b'{"batches":[' + b",".join(group) + b"]}", len(group)))
                    group, size = [], 0
                group.append(one)
                size += len(one) + 1
            if group:
                self.work.put((now, b'{"batches":[' + b",".join(group) + b"]}", len(group)))
            with self.lock:
                self.produced += self.samples_per_round
            tick += 1
            next_tick += 1.0
            self.stop_event.wait(max(0.0, next_tick - time.monotonic()))
        for _ in posters:
            self.work.put(None)

    def post_loop(self) -> None:
        conn: http.client.HTTPConnection | None = None
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        per_envelope = self.samples_per_round // len(self.envelopes)
        while True:
            item = self.work.get()
            if item is None:
                return
            made, body, count = item
            if time.monotonic() - made > 3.0:
                with self.lock:
                    self.dropped += count * per_envelope
                continue
            if conn is None:
                host = self.url.hostname or "127.0.0.1"
                conn = http.client.HTTPConnection(host, self.url.port, timeout=60)
            try:
                conn.request("POST", "/api/v1/ingest", body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except OSError:
                conn = None
                ok = False
            with self.lock:
                if ok:
                    self.posted += count * per_envelope
                else:
                    self.failed += count * per_envelope


# --- the server ------------------------------------------------------------------------------


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


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def samples_stored(url: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith("srvmon_server_ingest_samples_total "):
                return float(line.split()[1])
    return 0.0


def active_alerts(url: str) -> str:
    """Active alerts by rule and state: a steady server has the disk alerts the fleet was
    built with and no flood of `silent` ones."""
    with urllib.request.urlopen(f"{url}/api/v1/alerts", timeout=60) as answer:
        alerts = json.loads(answer.read())["alerts"]
    counts: dict[str, int] = {}
    for alert in alerts:
        name = f"{alert['rule_id']} {alert['state']}"
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "none"


def known_hosts(url: str) -> int:
    with urllib.request.urlopen(f"{url}/api/v1/machines?limit=1", timeout=60) as answer:
        return int(json.loads(answer.read())["total"])


def machines_bytes(url: str) -> tuple[int, int]:
    """Bytes and pages of the whole hosts-only summary (GET /api/v1/machines)."""
    total = pages = 0
    cursor = None
    while True:
        query = "limit=1000" + (f"&cursor={cursor}" if cursor else "")
        with urllib.request.urlopen(f"{url}/api/v1/machines?{query}", timeout=60) as answer:
            body = answer.read()
        total += len(body)
        pages += 1
        cursor = json.loads(body)["next_cursor"]
        if not cursor:
            return total, pages


# --- the page --------------------------------------------------------------------------------

PROBE = """
window.__bench = {lags: [], collecting: false};
(() => {
  const Native = window.EventSource;
  window.EventSource = class extends Native {
    constructor(url, options) {
      super(url, options);
      const note = (at) => {
        const bench = window.__bench;
        if (bench.collecting && at) bench.lags.push(Date.now() - Date.parse(at));
      };
      this.addEventListener("summary", (e) => note(JSON.parse(e.data).last_seen));
      this.addEventListener("sample", (e) => {
        const data = JSON.parse(e.data);
        if (data.kind === "host") note(data.timestamp);
      });
    }
  };
})();
"""
"""Sample time → the page's handler, for host-level data (a `summary` today, a host's
`sample` in the full stream)."""

FIRST_RENDER_JS = """n => {
  const cells = document.querySelectorAll('.cell[data-cpu]:not([data-cpu=""])').length;
  const tiles = [...document.querySelectorAll('.tile [data-metric="cpu_percent"]')]
    .filter(e => e.textContent !== '\\u2013' && e.textContent !== '').length;
  return Math.max(cells, tiles) >= n ? performance.now() : false;
}"""

SHOWN_AGE_JS = """() => {
  const now = Date.now();
  return [...window.srvmon.hosts.values()].map(h => {
    const at = h.lastSeenMs || h.lastSampleMs || 0;
    return at ? now - at : null;
  }).filter(v => v !== null);
}"""

CRITICAL_JS = """() => {
  const crit = [...document.querySelectorAll('[data-status="critical"]')];
  return {count: crit.length, scrollY: window.scrollY, height: window.innerHeight,
          onScreen: crit.filter(c => c.getBoundingClientRect().bottom <= window.innerHeight
                                     && c.getBoundingClientRect().top >= 0).length};
}"""


def reference_files(commit: str) -> dict[str, bytes]:
    """The dashboard's files at ``commit`` (path under static/ → bytes)."""
    listing = subprocess.run(
        ["git", "-C", str(ROOT), "ls-tree", "-r", "--name-only", commit, "srvmon_server/static"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    files = {}
    for path in listing:
        files[path.removeprefix("srvmon_server/static/")] = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{commit}:{path}"], check=True, capture_output=True
        ).stdout
    return files


def serve_reference(page: Any, files: dict[str, bytes]) -> None:
    types = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}

    def handle(route: Any) -> None:
        path = urlsplit(route.request.url).path
        name = "index.html" if path == "/" else path.removeprefix("/static/")
        body = files.get(name)
        if body is None:
            route.continue_()
            return
        kind = types.get(Path(name).suffix, "application/octet-stream")
        route.fulfill(status=200, body=body, headers={"Content-Type": f"{kind}; charset=utf-8"})

    page.route(lambda url: urlsplit(url).path == "/" or "/static/" in url, handle)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def metrics(cdp: Any, gc: bool = False) -> dict[str, float]:
    if gc:
        cdp.send("HeapProfiler.collectGarbage")
    return {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}


def measure_page(
    browser: Any,
    url: str,
    *,
    hosts: int,
    seconds: float,
    reference: dict[str, bytes] | None,
    server_pid: int,
    feeder: Feeder,
) -> dict[str, Any]:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.add_init_script(PROBE)
    if reference is not None:
        serve_reference(page, reference)
    cdp = context.new_cdp_session(page)
    cdp.send("Performance.enable")
    page.goto(f"{url}/#/")
    try:
        first = page.wait_for_function(FIRST_RENDER_JS, arg=hosts, polling="raf", timeout=120_000)
    except Exception:
        context.close()
        raise
    first_render = float(first.json_value()) / 1000
    page.wait_for_timeout(5000)
    before = metrics(cdp, gc=True)
    cpu_before = cpu_seconds(server_pid)
    stored_before = samples_stored(url)
    with feeder.lock:
        produced_before = feeder.produced
    started = time.monotonic()
    page.evaluate("window.__bench.collecting = true")
    ages: list[float] = []
    while time.monotonic() - started < seconds:
        page.wait_for_timeout(2000)
        ages += page.evaluate(SHOWN_AGE_JS)
    page.evaluate("window.__bench.collecting = false")
    elapsed = time.monotonic() - started
    after = metrics(cdp)
    cpu_after = cpu_seconds(server_pid)
    stored_after = samples_stored(url)
    with feeder.lock:
        produced_after = feeder.produced
    lags = page.evaluate("window.__bench.lags")
    heap = metrics(cdp, gc=True)["JSHeapUsedSize"]
    critical = page.evaluate(CRITICAL_JS)
    drawn = page.evaluate("window.srvmon.freshness ? window.srvmon.freshness() : null")
    context.close()
    return {
        "first_render_s": first_render,
        "main_ms_per_s": (after["TaskDuration"] - before["TaskDuration"]) / elapsed * 1000,
        "script_ms_per_s": (after["ScriptDuration"] - before["ScriptDuration"]) / elapsed * 1000,
        "layout_ms_per_s": (after["LayoutDuration"] - before["LayoutDuration"]) / elapsed * 1000,
        "style_ms_per_s": (after["RecalcStyleDuration"] - before["RecalcStyleDuration"])
        / elapsed
        * 1000,
        "other_ms_per_s": (after["TaskOtherDuration"] - before["TaskOtherDuration"])
        / elapsed
        * 1000,
        "lag_p50_s": percentile(lags, 50) / 1000,
        "lag_p95_s": percentile(lags, 95) / 1000,
        "events": len(lags),
        "shown_age_p95_s": percentile(ages, 95) / 1000,
        "drawn_p95_s": (drawn or {}).get("p95", float("nan")) / 1000 if drawn else float("nan"),
        "heap_mib": heap / 1024**2,
        "server_cpu_pct": (cpu_after - cpu_before) / elapsed * 100,
        "stored": stored_after - stored_before,
        "produced": produced_after - produced_before,
        "critical": critical,
    }


def heap_run(browser: Any, url: str, hosts: int, minutes: float) -> None:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Performance.enable")
    page.goto(f"{url}/#/")
    page.wait_for_function(FIRST_RENDER_JS, arg=hosts, polling="raf", timeout=120_000)
    started = time.monotonic()
    page.wait_for_timeout(60_000)
    first = metrics(cdp, gc=True)
    print(
        f"  heap at 1 min: {first['JSHeapUsedSize'] / 1024**2:.2f} MiB, "
        f"DOM nodes {int(first['Nodes'])}, listeners {int(first['JSEventListeners'])}"
    )
    checkpoint = 60.0
    while time.monotonic() - started < minutes * 60:
        page.wait_for_timeout(min(60_000, (minutes * 60 - (time.monotonic() - started)) * 1000))
        checkpoint = time.monotonic() - started
        figures = metrics(cdp, gc=True)
        print(
            f"  heap at {checkpoint / 60:.1f} min: {figures['JSHeapUsedSize'] / 1024**2:.2f} MiB, "
            f"DOM nodes {int(figures['Nodes'])}"
        )
    last = metrics(cdp, gc=True)
    print(
        f"  ratio end / 1 min: JS heap {last['JSHeapUsedSize'] / first['JSHeapUsedSize']:.3f}, "
        f"DOM nodes {last['Nodes'] / first['Nodes']:.3f}  (flat = 1.0)"
    )
    context.close()


def report(label: str, hosts: int, r: dict[str, Any]) -> None:
    c = r["critical"]
    print(
        f"{hosts:>5} {label:<11} first render {r['first_render_s']:5.2f} s | main thread "
        f"{r['main_ms_per_s']:6.1f} ms/s (script {r['script_ms_per_s']:5.1f}, style "
        f"{r['style_ms_per_s']:5.1f}, layout {r['layout_ms_per_s']:4.1f}, other "
        f"{r['other_ms_per_s']:5.1f}) | lag p50 {r['lag_p50_s']:5.2f} s p95 "
        f"{r['lag_p95_s']:6.2f} s ({r['events']} events) | shown age p95 "
        f"{r['shown_age_p95_s']:6.2f} s | drawn p95 {r['drawn_p95_s']:5.2f} s | heap "
        f"{r['heap_mib']:5.2f} MiB | server CPU {r['server_cpu_pct']:5.1f} % | stored "
        f"{r['stored']:.0f} / produced {r['produced']} "
        f"({r['stored'] / max(1, r['produced']):.1%}) | "
        f"critical {c['count']}, on the first screen {c['onScreen']} (scrollY {c['scrollY']})",
        flush=True,
    )


def run_fleet(
    browser: Any, hosts: int, args: argparse.Namespace, reference: dict[str, bytes] | None
) -> None:
    workdir = Path(tempfile.mkdtemp(prefix=f"srvmon-bench-{hosts}-"))
    process, url = start_server(workdir, args.token)
    envelopes = templates(hosts, args.containers)
    feeder = Feeder(url, args.token, envelopes, hosts * (args.containers + 1))
    try:
        feeder.start()
        deadline = time.monotonic() + 300
        while known_hosts(url) < hosts:  # every host stored at least once
            if time.monotonic() > deadline:
                raise SystemExit(f"not every host was stored in 300 s ({known_hosts(url)})")
            time.sleep(1.0)
        time.sleep(args.warmup)  # the default disk rule fires after 30 s
        size, pages = machines_bytes(url)
        print(f"{hosts:>5} GET /api/v1/machines: {size / 1024:.0f} KiB in {pages} page(s)")
        ours = measure_page(
            browser,
            url,
            hosts=hosts,
            seconds=args.seconds,
            reference=None,
            server_pid=process.pid,
            feeder=feeder,
        )
        report("views", hosts, ours)
        theirs = None
        if reference is not None:
            try:
                theirs = measure_page(
                    browser,
                    url,
                    hosts=hosts,
                    seconds=args.seconds,
                    reference=reference,
                    server_pid=process.pid,
                    feeder=feeder,
                )
            except Exception as exc:  # the old page may never finish its first render
                print(f"{hosts:>5} full-stream: no figures ({str(exc).splitlines()[0]})")
        if theirs is not None:
            report("full-stream", hosts, theirs)
            print(
                f"{hosts:>5} ratio views / full-stream: first render "
                f"{ours['first_render_s'] / theirs['first_render_s']:.2f}, main thread "
                f"{ours['main_ms_per_s'] / theirs['main_ms_per_s']:.2f}, lag p95 "
                f"{ours['lag_p95_s'] / theirs['lag_p95_s']:.2f}, server CPU "
                f"{ours['server_cpu_pct'] / max(0.1, theirs['server_cpu_pct']):.2f}",
                flush=True,
            )
        print(f"{hosts:>5} active alerts: {active_alerts(url)}", flush=True)
        if args.heap_minutes and hosts == args.hosts[0]:
            heap_run(browser, url, hosts, args.heap_minutes)
    finally:
        feeder.stop_event.set()
        feeder.join(timeout=30)
        with feeder.lock:
            print(
                f"{hosts:>5} feeder: produced {feeder.produced} samples, acknowledged "
                f"{feeder.posted}, failed {feeder.failed}, dropped late {feeder.dropped}",
                flush=True,
            )
        process.terminate()
        process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", default="50,200,500,1000")
    parser.add_argument("--containers", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=30.0, help="measurement window")
    parser.add_argument(
        "--warmup", type=float, default=35.0, help="seconds of feeding before the first page"
    )
    parser.add_argument("--heap-minutes", type=float, default=0.0)
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--token", default="bench-write-token")
    args = parser.parse_args()
    args.hosts = [int(h) for h in args.hosts.split(",")]

    from playwright.sync_api import sync_playwright

    reference = None if args.no_reference else reference_files(REFERENCE_COMMIT)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            for hosts in args.hosts:
                run_fleet(browser, hosts, args, reference)
        finally:
            browser.close()


if __name__ == "__main__":
    main()
