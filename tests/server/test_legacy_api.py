"""The original back end's routes, end to end, used by an old-style client (issue 10).

A real ``srvmon server`` (on SQLite and on MariaDB) with the legacy routes on is driven the
way the original front end and consumer drove the Java back end: plain HTTP, an SSE line
parser, tornado's WebSocket client; documents are Java-shaped text (tests/server/
legacy_client.py). The server's clock is a FakeClock at 2026-11-25 10:00 UTC; the legacy
zone is Europe/Berlin (UTC+1 then) and the Java loop is 5 s.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

import pytest
import tornado.httpclient
import tornado.websocket

from srvmon_core.codec import encode_batch
from srvmon_core.schema import Batch, ContainerSample, HostSample
from tests.server.conftest import StartServer
from tests.server.harness import WRITE, FakeClock, RunningServer
from tests.server.legacy_client import (
    FRONTEND,
    HOST_ID,
    MYSQL_ID,
    NGINX_ID,
    OVER,
    UNDER,
    OldClient,
    SseLines,
    java_document,
    legacy_server,
    run_async,
)

pytestmark = pytest.mark.timeout(120)

NGINX2_ID = "a" * 64
ITEM_KEYS = {
    "timestamp",
    "messageType",
    "machineType",
    "machineId",
    "machineName",
    "metricName",
    "hostName",
    "threshold",
    "value",
}


def summary(message: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(
        message.get(k)
        for k in ("messageType", "machineId", "machineName", "metricName", "threshold", "value")
    )


def expected_document() -> dict[str, Any]:
    """What /ws/metrics sends for java_document("2026-11-25T11:00:00"): the same figures
    back as whole per-loop deltas, local time, line-indexed keys, names without '/'."""
    return {
        "type": "host",
        "hostId": HOST_ID,
        "name": "db-01",
        "timeStamp": "2026-11-25T11:00:00",
        "cpuUsagePercent": 37.5,
        "memoryUsedBytes": 15_519_293_440,
        "diskReadBytesDelta": 4096,
        "diskWriteBytesDelta": 12288,
        "networkDelta": {
            "lo_0": {"rxBytesDelta": 999_000_000, "txBytesDelta": 999_000_000},
            "eth0_1": {"rxBytesDelta": 2_500_000, "txBytesDelta": 500_000},
            "docker0_2": {"rxBytesDelta": 0},
        },
        "temperatures": {"Package id 0": 61.0, "Core 0": 58.5},
        "containers": {
            MYSQL_ID: {
                "name": "mysql-db",
                "cpuUsagePercent": 140.25,
                "memoryUsedBytes": 1_073_741_824,
                "diskReadBytesDelta": 204_800,
                "diskWriteBytesDelta": 1_024_000,
                "networkDelta": {"total_0": {"rxBytesDelta": 1_000_000, "txBytesDelta": 4_000_000}},
            },
            NGINX_ID: {
                "name": "nginx",
                "cpuUsagePercent": 0.0,
                "memoryUsedBytes": 52_428_800,
                "diskReadBytesDelta": 0,
                "networkDelta": {},
            },
        },
    }


def stopped_mysql(at: datetime) -> bytes:
    """A srvmon envelope (POST /api/metrics takes those too) with mysql-db stopped."""
    return encode_batch(
        Batch(
            host_id=HOST_ID,
            hostname="db-01",
            timestamp=at,
            host=HostSample(
                cpu_percent=5.0,
                load_1=0.1,
                load_5=0.1,
                load_15=0.1,
                memory_total_bytes=2**34,
                memory_used_bytes=10**8,
                memory_available_bytes=2**33,
                memory_percent=1.0,
            ),
            containers=(
                ContainerSample(id=MYSQL_ID, name="mysql-db", state="exited", exit_code=1),
            ),
        )
    )


async def scenario(server: RunningServer, clock: FakeClock) -> None:  # noqa: PLR0915
    old = OldClient(server.port, token=None)  # the original sent no token at all
    admin = OldClient(server.port, token=WRITE)

    # --- inventory and limits before any data -------------------------------------------
    assert old.get("/api/inventory/list").json() == {"host": [], "container": []}
    assert old.get("/api/metrics/threshold-setting").json() == {
        "cpuPercent": "85.0",  # the default host CPU rule's warn level
        "memoryUsage": None,
        "diskReadDelta": None,
        "diskWriteDelta": None,
        "networkRx": None,
        "networkTx": None,
        "temperature": "80.0",  # the default temperature rule
    }
    assert set(old.get("/api/metrics/under-threshold-setting").json().values()) == {None}
    posted = admin.post_json("/api/metrics/threshold-setting", OVER)
    assert (posted.status, posted.json()) == (200, OVER)
    posted = admin.post_json("/api/metrics/under-threshold-setting", UNDER)
    assert (posted.status, posted.json()) == (200, UNDER)
    assert old.get("/api/metrics/threshold-setting").json() == OVER
    assert old.get("/api/metrics/under-threshold-setting").json() == UNDER
    refused = admin.post_json("/api/metrics/under-threshold-setting", {**UNDER, "cpuPercent": "95"})
    assert refused.status == 400
    assert refused.json() == {
        "error": "under-thresholds must be less than or equal to over-thresholds: cpuPercent",
        "thresholdValues": OVER,
    }
    refused = admin.post_json("/api/metrics/threshold-setting", {**OVER, "temperature": "-60"})
    assert refused.json() == {
        "error": "over-thresholds must be greater than or equal to under-thresholds: temperature",
        "thresholdValues": UNDER,
    }
    assert old.get("/api/metrics/threshold-setting").json() == OVER  # nothing was stored

    # --- live streams, then the Java consumer's POST ------------------------------------
    alerts = SseLines(server.port, "/api/metrics/threshold-alert")
    assert alerts.status == 200
    assert alerts.headers["content-type"].startswith("text/event-stream")
    metrics_socket = await tornado.websocket.websocket_connect(
        tornado.httpclient.HTTPRequest(
            f"ws://127.0.0.1:{server.port}/ws/metrics", headers={"Origin": FRONTEND}
        )
    )
    stored = old.call("POST", "/api/metrics", java_document("2026-11-25T11:00:00"))
    assert (stored.status, stored.body) == (200, b"")
    document = await asyncio.wait_for(metrics_socket.read_message(), 5)
    assert isinstance(document, str)
    assert json.loads(document) == expected_document()
    assert " " not in document.replace("Package id 0", "").replace("Core 0", "")  # compact
    messages = alerts.events(quiet=0.7)
    assert {summary(m) for m in messages} == {
        ("thresholdExceeded", HOST_ID, "db-01", "memoryUsage", "1.0E9", "1.551929344E10"),
        ("thresholdExceeded", HOST_ID, "db-01", "diskReadDelta", "2048.0", "4096.0"),
        ("thresholdExceeded", MYSQL_ID, "mysql-db", "cpuPercent", "90.0", "140.25"),
        ("thresholdExceeded", MYSQL_ID, "mysql-db", "memoryUsage", "1.0E9", "1.073741824E9"),
        ("thresholdExceeded", MYSQL_ID, "mysql-db", "diskReadDelta", "2048.0", "204800.0"),
        ("thresholdDeceeded", NGINX_ID, "nginx", "cpuPercent", "1.0", "0.0"),
    }
    assert len(messages) == 6
    assert all(set(m) == {*ITEM_KEYS} - {"machineType", "hostName"} for m in messages)
    assert {m["timestamp"] for m in messages} == {"2026-11-25T11:00:00"}
    assert alerts.names == []  # unnamed events only

    # absent stays absent: REST and /metrics show no restart count for legacy containers
    mysql = admin.get(f"/api/v1/machines/{HOST_ID}:mysql-db").json()
    assert mysql["restart_count"] is None
    assert "restart_count" not in mysql["metrics"]
    assert mysql["metrics"]["block_read_bytes_per_s"] == 40_960.0
    exposition = admin.get("/metrics").body.decode()
    samples = [line for line in exposition.splitlines() if not line.startswith("#")]
    assert not [line for line in samples if line.startswith("srvmon_container_restarts_total")]
    assert (
        f'srvmon_host_disk_read_bytes_per_second{{host_id="{HOST_ID}",hostname="db-01"}} 819.2'
        in (samples)
    )
    mysql_block_read = [  # the same container's other figures are there: only the count is absent
        line for line in samples
        if line.startswith("srvmon_container_block_read_bytes_per_second{")
        and 'container="mysql-db"' in line
    ]  # fmt: skip
    assert [line.rsplit(" ", 1)[1] for line in mysql_block_read] == ["40960.0"]

    # --- transitions only: the same breaches again send nothing; a new container id does -
    clock.advance(5)
    again = java_document("2026-11-25T11:00:05", nginx_id=NGINX2_ID)
    assert old.call("POST", "/api/metrics", again).status == 200
    assert json.loads(await asyncio.wait_for(metrics_socket.read_message(), 5))[
        "containers"
    ].keys() == {
        MYSQL_ID,
        NGINX2_ID,
    }
    assert [summary(m) for m in alerts.events(quiet=0.7)] == [
        ("containerIdChanged", NGINX2_ID, "nginx", None, None, None)
    ]

    # --- the host goes quiet: timeout; keep-alives keep the stream open meanwhile -------
    clock.advance(40)
    (timeout,) = alerts.events(quiet=1.0)
    assert timeout == {
        "messageType": "timeout",
        "machineId": HOST_ID,
        "machineName": "db-01",
        "timestamp": "2026-11-25T11:00:45",
    }
    assert "keep-alive" in alerts.comments

    # --- a stopped container (a srvmon envelope on the same route): zerovalue -----------
    clock.advance(5)
    assert old.call("POST", "/api/metrics", stopped_mysql(clock.now)).status == 200
    clock.advance(16)
    assert old.call("POST", "/api/metrics", stopped_mysql(clock.now)).status == 200
    assert [summary(m) for m in alerts.events(quiet=0.7)] == [
        ("zerovalue", MYSQL_ID, "mysql-db", None, None, None)
    ]
    alerts.close()
    metrics_socket.close()

    # --- history ------------------------------------------------------------------------
    everything = old.get("/api/metrics/threshold-history-all").json()
    assert len(everything) == 9
    assert all(set(item) == ITEM_KEYS for item in everything)
    stamps = [item["timestamp"] for item in everything]
    assert stamps == sorted(stamps, reverse=True)
    assert everything[0] == {
        "timestamp": "2026-11-25T11:01:06",
        "messageType": "zerovalue",
        "machineType": "container",
        "machineId": MYSQL_ID,
        "machineName": "mysql-db",
        "metricName": None,
        "hostName": "db-01",
        "threshold": None,
        "value": "1.0",  # the exit code, as srvmon's event carries it
    }
    host = old.post_json("/api/metrics/threshold-history", {"targetId": HOST_ID}).json()
    assert (host[0]["messageType"], len(host)) == ("timeout", 3)
    assert {(i["messageType"], i["metricName"]) for i in host[1:]} == {
        ("thresholdExceeded", "diskReadDelta"),
        ("thresholdExceeded", "memoryUsage"),
    }
    assert host[0]["threshold"] == "30.0"  # the silent rule's 30 s
    assert {i["machineType"] for i in host} == {"host"}
    mysql_items = old.post_json("/api/metrics/threshold-history", {"targetId": MYSQL_ID}).json()
    assert sorted(i["metricName"] or i["messageType"] for i in mysql_items) == [
        "cpuPercent",
        "diskReadDelta",
        "memoryUsage",
        "zerovalue",
    ]
    nginx = old.post_json("/api/metrics/threshold-history", {"targetId": NGINX2_ID[:12]}).json()
    assert [(i["messageType"], i["machineId"]) for i in nginx] == [
        ("containerIdChanged", NGINX2_ID),
        ("thresholdDeceeded", NGINX2_ID),  # a container is named by its current id
    ]
    day = "/api/metrics/history?date=2026-11-25"
    assert len(old.get(day).json()) == 9
    exceeded = old.get(f"{day}&machineType=container&messageType=thresholdExceeded").json()
    assert sorted(i["metricName"] for i in exceeded) == [
        "cpuPercent",
        "diskReadDelta",
        "memoryUsage",
    ]
    memory = old.get(f"{day}&hostName=db-01&metricName=memoryUsage").json()
    assert sorted(i["machineName"] for i in memory) == ["db-01", "mysql-db"]
    assert old.get(f"{day}&machineName=nginx&messageType=timeout").json() == []
    assert old.get("/api/metrics/history?date=2026-11-24").json() == []
    bad = old.get("/api/metrics/history?date=25.11.2026")
    assert bad.status == 400
    assert bad.json()["error"]["field"] == "date"

    # --- inventory ----------------------------------------------------------------------
    assert old.get("/api/inventory/list").json() == {
        "host": [{"id": HOST_ID, "name": "db-01"}],
        "container": [
            {"host": HOST_ID, "id": MYSQL_ID, "name": "mysql-db"},
            {"host": HOST_ID, "id": NGINX2_ID, "name": "nginx"},
        ],
    }


def test_an_old_client_uses_every_legacy_route(
    start_server_any_db: StartServer, clock: FakeClock
) -> None:
    """Limits, POST /api/metrics, the alert stream (all five message types), the WebSocket,
    the three history routes and the inventory, as the original's clients used them."""
    server = legacy_server(start_server_any_db)
    run_async(scenario(server, clock))
