"""Container figures on a real dockerd, compared with what ``docker stats``/``inspect`` say."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from srvmon_agents.collector.containers import ContainerCollector
from srvmon_agents.collector.engine import connect
from srvmon_core.schema import ContainerSample
from tests.fixtures.dockerd import Dockerd

pytestmark = pytest.mark.docker

MiB = 1024 * 1024


def wait_for(condition: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def parse_size(text: str) -> float:
    units = {"B": 1, "KiB": 1024, "MiB": MiB, "GiB": 1024 * MiB, "kB": 1000, "MB": 1e6, "GB": 1e9}
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * units[unit]
    raise ValueError(text)


@pytest.fixture(scope="module")
def room(dockerd: Dockerd) -> Iterator[dict[str, str]]:
    """The containers of the brief: burner, idle, 64m memory, exits 3, restarted twice."""
    names = {
        "burner": dockerd.run(dockerd.image, "sh", "-c", "yes > /dev/null", name="t-burner"),
        "idle": dockerd.run(dockerd.image, "sleep", "100000", name="t-idle"),
        "mem": dockerd.run(
            "-m",
            "64m",
            "--shm-size",
            "60m",
            dockerd.image,
            "sh",
            "-c",
            "dd if=/dev/zero of=/dev/shm/x bs=1M count=40; sleep 100000",
            name="t-mem",
        ),
        "exits": dockerd.run(dockerd.image, "sh", "-c", "exit 3", name="t-exits"),
        "restarts": dockerd.run(
            "--restart", "on-failure:2", dockerd.image, "sh", "-c", "exit 1", name="t-restarts"
        ),
    }

    def settled() -> bool:
        exits = json.loads(dockerd.cli("inspect", names["exits"]))[0]["State"]
        again = json.loads(dockerd.cli("inspect", names["restarts"]))[0]
        return (
            exits["Status"] == "exited"
            and again["State"]["Status"] == "exited"
            and again["RestartCount"] == 2
        )

    wait_for(settled, 60, "the exiting containers to settle")
    yield names
    for container_id in names.values():
        dockerd.cli("rm", "-f", container_id)


def make_collector(dockerd: Dockerd) -> ContainerCollector:
    return ContainerCollector(
        api=connect(dockerd.base_url),
        cgroup_root=Path("/sys/fs/cgroup"),
        proc_root=Path("/proc"),
        host_memory_total_bytes=psutil.virtual_memory().total,
        clock=time.monotonic,
    )


def by_name(samples: list[ContainerSample]) -> dict[str, ContainerSample]:
    return {s.name: s for s in samples}


def test_figures_match_docker_stats(dockerd: Dockerd, room: dict[str, str]) -> None:
    """Burner cpu % within ±10 points of docker stats; 64m container's memory within 10 %."""
    collector = make_collector(dockerd)
    collector.collect()
    stats_output: list[str] = []
    thread = threading.Thread(
        target=lambda: stats_output.append(
            dockerd.cli("stats", "--no-stream", "--format", "{{json .}}", timeout=60)
        )
    )
    started = time.monotonic()
    thread.start()
    thread.join(60)
    elapsed = time.monotonic() - started
    time.sleep(max(0.0, 2.5 - elapsed))  # our window spans the docker stats call
    samples = by_name(collector.collect())
    assert collector.last_source == "cgroup"
    reference = {
        row["Name"]: row for row in (json.loads(line) for line in stats_output[0].splitlines())
    }

    burner = samples["t-burner"]
    docker_cpu = float(reference["t-burner"]["CPUPerc"].rstrip("%"))
    assert burner.cpu_percent is not None
    assert abs(burner.cpu_percent - docker_cpu) <= 10.0, (burner.cpu_percent, docker_cpu)
    assert burner.cpu_percent > 50.0, "a yes loop burns most of a core"

    mem = samples["t-mem"]
    docker_usage = parse_size(reference["t-mem"]["MemUsage"].split("/")[0].strip())
    assert mem.memory_working_set_bytes is not None
    assert mem.memory_working_set_bytes >= 40 * MiB, "40 MiB of tmpfs counts as memory"
    assert abs(mem.memory_working_set_bytes - docker_usage) <= 0.10 * docker_usage
    assert mem.memory_limit_bytes == 64 * MiB
    docker_limit = parse_size(reference["t-mem"]["MemUsage"].split("/")[1].strip())
    assert docker_limit == 64 * MiB

    idle = samples["t-idle"]
    assert idle.cpu_percent is not None
    assert idle.cpu_percent < 5.0
    assert idle.memory_limit_bytes == psutil.virtual_memory().total, "unlimited → host RAM"
    assert idle.pids == 1
    assert idle.net_rx_bytes_per_s == 0.0, "--network none: only lo, which is excluded"


def test_stopped_and_restarted_containers(dockerd: Dockerd, room: dict[str, str]) -> None:
    """Exited: state, exit code 3, finish time, no figures; restart count equals inspect's."""
    samples = by_name(make_collector(dockerd).collect())
    exited = samples["t-exits"]
    assert exited.state == "exited"
    assert exited.exit_code == 3
    assert exited.finished_at is not None
    assert exited.cpu_percent is None
    assert exited.memory_working_set_bytes is None
    assert exited.pids is None
    restarted = samples["t-restarts"]
    inspected = json.loads(dockerd.cli("inspect", room["restarts"]))[0]
    assert restarted.restart_count == inspected["RestartCount"] == 2
    assert restarted.exit_code == 1
    assert samples["t-idle"].state == "running"
    assert samples["t-idle"].exit_code is None
    assert samples["t-idle"].started_at is not None


def test_metadata_is_inspected_only_on_change(dockerd: Dockerd, room: dict[str, str]) -> None:
    """One list per interval; inspect only for new containers or a state change."""
    collector = make_collector(dockerd)
    collector.collect()
    first = collector.inspections
    assert first == len(dockerd.client.containers.list(all=True))
    collector.collect()
    collector.collect()
    assert collector.inspections == first, "nothing changed, nothing re-inspected"
    dockerd.cli("stop", "-t", "0", room["idle"])
    samples = by_name(collector.collect())
    assert collector.inspections == first + 1
    assert samples["t-idle"].state == "exited"
    assert samples["t-idle"].cpu_percent is None
    dockerd.cli("start", room["idle"])
    samples = by_name(collector.collect())
    assert samples["t-idle"].state == "running"
    assert samples["t-idle"].cpu_percent is None, "a fresh start has no rate yet"


def test_containers_appearing_and_vanishing_mid_run_do_not_break(dockerd: Dockerd) -> None:
    """Short-lived containers come and go between readings: no crash, no bogus figures."""
    collector = make_collector(dockerd)
    stop = threading.Event()
    errors: list[BaseException] = []

    def churn() -> None:
        try:
            for _ in range(4):
                container_id = dockerd.run(dockerd.image, "sleep", "1")
                time.sleep(0.3)
                dockerd.cli("rm", "-f", container_id)
        except BaseException as exc:
            errors.append(exc)
        finally:
            stop.set()

    thread = threading.Thread(target=churn)
    thread.start()
    rounds = 0
    ceiling = 100.0 * psutil.cpu_count() + 10.0
    while not stop.is_set():
        for sample in collector.collect():
            if sample.cpu_percent is not None:
                assert sample.cpu_percent <= ceiling, sample
        rounds += 1
        stop.wait(0.25)  # the kernel's usage counters lag by up to a tick; keep windows sane
    thread.join()
    assert not errors
    assert rounds >= 2


def test_docker_api_fallback_when_cgroup_files_are_missing(
    dockerd: Dockerd, room: dict[str, str], tmp_path: Path
) -> None:
    """With an empty cgroup root the one-shot stats API fills in, and the source says so."""
    collector = ContainerCollector(
        api=connect(dockerd.base_url),
        cgroup_root=tmp_path,
        proc_root=Path("/proc"),
        host_memory_total_bytes=psutil.virtual_memory().total,
        clock=time.monotonic,
    )
    collector.collect()
    time.sleep(1.0)
    samples = by_name(collector.collect())
    assert collector.last_source == "docker-api"
    assert collector.api_fallbacks > 0
    assert samples["t-burner"].cpu_percent is not None
    assert samples["t-burner"].cpu_percent > 50.0
    assert samples["t-mem"].memory_limit_bytes == 64 * MiB


def test_events_mode_lists_only_after_changes(dockerd: Dockerd, room: dict[str, str]) -> None:
    """Following engine events: idle ticks reuse the list; a new container still shows up."""
    from srvmon_agents.collector.events import ContainerEvents, container_events

    api = connect(dockerd.base_url)
    events = ContainerEvents(container_events(api))
    collector = ContainerCollector(
        api=api,
        cgroup_root=Path("/sys/fs/cgroup"),
        proc_root=Path("/proc"),
        host_memory_total_bytes=psutil.virtual_memory().total,
        clock=time.monotonic,
        events=events,
    )
    try:
        wait_for(lambda: events.connected, 10, "the events stream")
        collector.collect()
        collector.collect()  # the connect itself may have marked a change
        lists = collector.list_calls
        for _ in range(5):
            samples = by_name(collector.collect())
        assert collector.list_calls == lists, "no event, no list"
        assert samples["t-burner"].cpu_percent is not None, "figures still come every tick"
        new_id = dockerd.run(dockerd.image, "sleep", "100000", name="t-late")
        try:
            wait_for(lambda: "t-late" in by_name(collector.collect()), 10, "t-late to appear")
            assert collector.list_calls > lists
            assert events.events_seen > 0
        finally:
            dockerd.cli("rm", "-f", new_id)
        wait_for(lambda: "t-late" not in by_name(collector.collect()), 10, "t-late to go")
    finally:
        events.stop()
        assert not events._thread.is_alive(), "stop() ends the events thread"


def test_network_figures_by_network_mode(dockerd: Dockerd, room: dict[str, str]) -> None:
    """--network host: no container network figures (the host's interfaces carry that traffic,
    not counted twice); --network none: 0 B/s without reading net/dev; CPU figures either way."""
    host_net = dockerd.cli(
        "run", "-d", "--network", "host", "--name", "t-hostnet", dockerd.image, "sleep", "600"
    ).strip()
    try:
        collector = make_collector(dockerd)
        collector.collect()
        time.sleep(1.1)  # rates need two readings some time apart
        samples = by_name(collector.collect())
        on_host = samples["t-hostnet"]
        assert on_host.id == host_net
        assert on_host.cpu_percent is not None
        assert on_host.net_rx_bytes_per_s is None
        assert on_host.net_tx_bytes_per_s is None
        idle = samples["t-idle"]
        assert idle.net_rx_bytes_per_s == 0.0
        assert idle.net_tx_bytes_per_s == 0.0
    finally:
        dockerd.cli("rm", "-f", "t-hostnet")
