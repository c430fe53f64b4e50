"""Feed the real server through its real ingest API, and read its REST API back."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from srvmon_core.codec import encode_batch
from srvmon_core.schema import Batch, ContainerSample, DiskUsage, HostSample, NetIO

GIB = 1024**3
CPU_RULE = {
    "id": "cpu-hot",
    "name": "cpu hot",
    "kind": "threshold",
    "selector": {"kind": "host"},
    "metric": "cpu_percent",
    "direction": "above",
    "warn": 80.0,
    "crit": 95.0,
}
"""A host CPU rule the browser and SSE tests put: warning above 80 %, critical above 95 %."""


def expect() -> Any:
    """playwright's ``expect``, imported when a test runs (playwright is a test extra)."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect


def host_sample(cpu: float = 10.0, memory_percent: float = 40.0) -> HostSample:
    total = 16 * GIB
    used = int(total * memory_percent / 100)
    return HostSample(
        cpu_percent=cpu,
        load_1=0.5,
        load_5=0.4,
        load_15=0.3,
        memory_total_bytes=total,
        memory_used_bytes=used,
        memory_available_bytes=total - used,
        memory_percent=memory_percent,
        disks=(
            DiskUsage(
                mount="/",
                device="/dev/sda1",
                fstype="ext4",
                total_bytes=100 * GIB,
                used_bytes=42 * GIB,
                used_percent=42.0,
            ),
        ),
        net=(NetIO(interface="eth0", rx_bytes_per_s=1500.0, tx_bytes_per_s=700.0),),
    )


def container(name: str, cpu: float = 5.0, state: str = "running") -> ContainerSample:
    running = state == "running"
    return ContainerSample(
        id=f"id-{name}",
        name=name,
        image="srvmon-test/busybox:1",
        labels={"com.docker.compose.project": "shop"},
        state=state,
        cpu_percent=cpu if running else None,
        memory_working_set_bytes=50 * 1024**2 if running else None,
        memory_limit_bytes=200 * 1024**2 if running else None,
        memory_percent=25.0 if running else None,
    )


def batch(
    host_id: str,
    *,
    at: datetime | None = None,
    cpu: float = 10.0,
    memory_percent: float = 40.0,
    containers: Iterable[ContainerSample] = (),
    interval: float = 1.0,
) -> Batch:
    return Batch(
        host_id=host_id,
        hostname=f"{host_id}.example",
        timestamp=at or datetime.now(UTC),
        interval_seconds=interval,
        host=host_sample(cpu, memory_percent),
        containers=tuple(containers),
    )


def request(
    base_url: str, path: str, token: str | None = None, method: str = "GET", body: Any = None
) -> tuple[int, Any]:
    """One HTTP call; returns (status, decoded JSON or None). Errors are answers too."""
    data = body if isinstance(body, bytes | None) else json.dumps(body).encode()
    req = urllib.request.Request(base_url + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, json.loads(raw) if raw else None


def ingest(base_url: str, token: str, one: Batch) -> dict[str, Any]:
    """POST one batch to /api/v1/ingest; raise with the envelope when refused."""
    status, answer = request(base_url, "/api/v1/ingest", token, "POST", encode_batch(one))
    if status != 200:
        raise AssertionError(f"ingest refused: {status} {answer}")
    assert isinstance(answer, dict)
    return answer
