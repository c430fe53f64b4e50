"""Network figures of bridged containers, against the kernel's own counters.

A bridge-mode dockerd (its default bridge, iptables, overlay2) runs two busybox containers on
its bridge; one sends a known number of bytes to the other with ``nc``. The collector's
rx/tx rates of both containers must match, within 5 %, the kernel's counters of the host-side
veth of each container (a different interface from the one the collector reads: the host
end of the pair receives what the container sends), and cover the payload.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from srvmon_agents.collector.containers import ContainerCollector
from srvmon_agents.collector.engine import connect
from srvmon_agents.collector.host import HostCollector
from tests.fixtures.bridge_dockerd import BridgeDockerd, bridge_dockerd  # noqa: F401

pytestmark = pytest.mark.docker

PAYLOAD_BYTES = 48 * 1024 * 1024
TOLERANCE = 0.05


class ManualClock:
    """A monotonic clock set once per reading, so the reading's interval is known exactly."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def tick(self) -> float:
        self.now = time.monotonic()
        return self.now


def host_veth(engine: BridgeDockerd, container: str) -> str:
    """The host end of a container's eth0: the link whose ifindex is eth0's iflink."""
    pid = json.loads(engine.cli("inspect", container))[0]["State"]["Pid"]
    peer = int(Path(f"/proc/{pid}/root/sys/class/net/eth0/iflink").read_text())
    for link in Path("/sys/class/net").iterdir():
        if int((link / "ifindex").read_text()) == peer:
            return link.name
    raise AssertionError(f"no host link with ifindex {peer}")


def wait_for_text(engine: BridgeDockerd, container: str, path: str) -> str:
    """A file's content in a container, once it is not empty (at most 10 s)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = engine.cli("exec", container, "cat", path).strip()
        if text:
            return text
        time.sleep(0.2)
    raise AssertionError(f"{path} stayed empty in {container}")


def counters(link: str) -> tuple[int, int]:
    """(rx, tx) bytes of a host link, from sysfs."""
    stats = Path("/sys/class/net") / link / "statistics"
    return int((stats / "rx_bytes").read_text()), int((stats / "tx_bytes").read_text())


def within(measured: float | None, reference: float) -> bool:
    return measured is not None and abs(measured - reference) <= TOLERANCE * reference


def test_bridged_container_rates_match_the_kernels_counters(
    bridge_dockerd: BridgeDockerd,  # noqa: F811
) -> None:
    """48 MiB from one container to another: sender tx and receiver rx rates equal the host
    veths' counters over the same readings (±5 %); both cover the payload; the receiver got
    every byte; the host's own view of the two veths agrees as well."""
    engine = bridge_dockerd
    receiver = engine.run(
        engine.image,
        "sh",
        "-c",
        # nc quits when its stdin ends, so it reads a never-ending one
        "sleep 100000 | nc -l -p 5000 | wc -c > /tmp/received",
        name="net-rx",
    )
    sender = engine.run(engine.image, "sleep", "100000", name="net-tx")
    address = json.loads(engine.cli("inspect", receiver))[0]["NetworkSettings"]["IPAddress"]
    assert address.startswith("172.17."), address
    rx_link, tx_link = host_veth(engine, receiver), host_veth(engine, sender)

    clock, host_clock = ManualClock(), ManualClock()
    collector = ContainerCollector(
        api=connect(engine.base_url),
        cgroup_root=Path("/sys/fs/cgroup"),
        proc_root=Path("/proc"),
        host_memory_total_bytes=1,
        clock=clock,
    )
    host = HostCollector(clock=host_clock)
    clock.tick()
    collector.collect()  # the list and the inspections happen here, not in the window
    before = {link: counters(link) for link in (rx_link, tx_link)}
    start = clock.tick()
    collector.collect()
    host_start = host_clock.tick()
    host.collect()
    blocks = PAYLOAD_BYTES // 65536
    engine.cli(
        "exec", sender, "sh", "-c", f"dd if=/dev/zero bs=65536 count={blocks} | nc {address} 5000"
    )
    time.sleep(0.5)  # the last segments and their ACKs are in the counters
    end = clock.tick()
    samples = {s.name: s for s in collector.collect()}
    host_end = host_clock.tick()
    host_net = {n.interface: n for n in host.collect().net}
    after = {link: counters(link) for link in (rx_link, tx_link)}
    received = wait_for_text(engine, receiver, "/tmp/received")
    assert int(received) == PAYLOAD_BYTES

    sent = after[tx_link][0] - before[tx_link][0]  # the host end receives what tx sends
    got = after[rx_link][1] - before[rx_link][1]  # the host end sends what rx receives
    assert sent >= PAYLOAD_BYTES
    assert got >= PAYLOAD_BYTES

    tx_sample, rx_sample = samples["net-tx"], samples["net-rx"]
    for what, measured, reference in (
        ("sender tx", tx_sample.net_tx_bytes_per_s, sent / (end - start)),
        ("receiver rx", rx_sample.net_rx_bytes_per_s, got / (end - start)),
        ("host veth rx", host_net[tx_link].rx_bytes_per_s, sent / (host_end - host_start)),
        ("host veth tx", host_net[rx_link].tx_bytes_per_s, got / (host_end - host_start)),
    ):
        error = (measured or 0.0) / reference - 1
        print(f"{what}: srvmon {measured or 0:.0f} B/s, kernel {reference:.0f} B/s, {error:+.3%}")
    assert within(tx_sample.net_tx_bytes_per_s, sent / (end - start)), (tx_sample, sent)
    assert within(rx_sample.net_rx_bytes_per_s, got / (end - start)), (rx_sample, got)
    # the reverse direction carries only ACKs: far below the payload, but not nothing
    assert tx_sample.net_rx_bytes_per_s is not None
    assert 0 < tx_sample.net_rx_bytes_per_s < 0.1 * sent / (end - start)
    # the host's own view of the two veths (its namespace, not the containers')
    assert within(host_net[tx_link].rx_bytes_per_s, sent / (host_end - host_start))
    assert within(host_net[rx_link].tx_bytes_per_s, got / (host_end - host_start))
    engine.cli("rm", "-f", receiver, sender)
