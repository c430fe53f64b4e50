"""The legacy routes' auth, origins, input checks, limits mapping and back-pressure (SQLite).

The end-to-end walk through every route, on SQLite and MariaDB, is test_legacy_api.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
import tornado.httpclient
import tornado.websocket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from srvmon_core.schema import Batch, ContainerSample
from srvmon_core.view import batch_view
from srvmon_server.legacy.config import LegacyConfig
from srvmon_server.legacy.handlers import DAY_FILTERS as DAY_QUERY
from tests.server.conftest import StartServer
from tests.server.harness import READ, WRITE, RunningServer
from tests.server.legacy_client import (
    FRONTEND,
    HOST_ID,
    OVER,
    OldClient,
    SseLines,
    java_document,
    legacy_server,
    run_async,
)

pytestmark = pytest.mark.timeout(120)


def test_legacy_routes_are_off_by_default(server: RunningServer) -> None:
    """Without --legacy-api every legacy route is srvmon's 404 envelope."""
    client = OldClient(server.port, token=WRITE)
    for method, path in [
        ("POST", "/api/metrics"),
        ("GET", "/api/metrics/threshold-setting"),
        ("GET", "/api/inventory/list"),
        ("GET", "/api/metrics/threshold-alert"),
        ("GET", "/api/metrics/threshold-history-all"),
        ("GET", "/ws/metrics"),
    ]:
        answer = client.call(method, path, b"{}" if method == "POST" else None)
        assert answer.status == 404, path
        assert answer.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("networks", "token", "status"),
    [
        ("", None, 401),
        ("10.0.0.0/8", None, 401),
        ("127.0.0.0/8", None, 200),
        ("10.0.0.0/8, 127.0.0.1", None, 200),
        ("127.0.0.0/8", "not-a-token", 401),  # a token that is sent is checked
        ("127.0.0.0/8", READ, 403),
        ("", WRITE, 200),
    ],
)
def test_post_metrics_token_or_tokenless_network(
    start_server: StartServer, networks: str, token: str | None, status: int
) -> None:
    """The ingest token as usual; no token only from a network in the allowlist."""
    server = legacy_server(start_server, tokenless_networks=networks)
    answer = OldClient(server.port).call(
        "POST", "/api/metrics", java_document("2026-11-25T11:00:00"), token=token
    )
    assert answer.status == status, answer.body
    if status != 200:
        assert answer.json()["error"]["status"] == status
    stored = server.storage.samples.machine(HOST_ID)
    assert (stored is not None) is (status == 200)
    if stored is not None:
        assert stored.last_seen == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # Berlin → UTC


@pytest.mark.parametrize("legacy_api", [True, False])
def test_srvmon_ingest_reads_java_documents_in_the_legacy_zone_and_loop(
    start_server: StartServer, legacy_api: bool
) -> None:
    """POST /api/v1/ingest takes a Java document too, read with --legacy-timezone and
    --legacy-interval-seconds whether or not the legacy routes are on."""
    server = legacy_server(start_server, enabled=legacy_api)
    answer = OldClient(server.port, token=WRITE).call(
        "POST", "/api/v1/ingest", java_document("2026-11-25T11:00:00")
    )
    assert answer.status == 200, answer.body
    assert answer.json() == {"stored": 3, "duplicates": 0}
    host = server.storage.samples.machine(HOST_ID)
    assert host is not None
    assert host.last_seen == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # Berlin → UTC
    assert host.metrics["disk_read_bytes_per_s"] == 4096.0 / 5  # a 5 s loop's delta
    mysql = server.storage.samples.machine(f"{HOST_ID}:mysql-db")
    assert mysql is not None and mysql.restart_count is None


def test_scoped_tokens_on_the_legacy_routes(start_server: StartServer) -> None:
    """An ingest token (what a consumer sends) may POST /api/metrics and nothing else; the
    limits' POSTs need the admin scope; the target history POST is a read."""
    ingest = "ingest-only-token"
    server = start_server(legacy=LegacyConfig(enabled=True), ingest_tokens={ingest}, read_auth=True)
    client = OldClient(server.port)
    document = java_document("2026-11-25T10:00:00")
    assert client.call("POST", "/api/metrics", document, token=ingest).status == 200
    assert client.call("POST", "/api/metrics", document, token=READ).status == 403
    limits = json.dumps(OVER)
    for token, status in [(ingest, 403), (READ, 403), (WRITE, 200)]:
        answer = client.call("POST", "/api/metrics/threshold-setting", limits, token=token)
        assert answer.status == status, (token, answer.body)
    target = json.dumps({"targetId": HOST_ID})
    for token, status in [(READ, 200), (ingest, 403), (None, 401)]:
        answer = client.call("POST", "/api/metrics/threshold-history", target, token=token)
        assert answer.status == status, (token, answer.body)
    assert client.call("GET", "/api/inventory/list", token=ingest).status == 403


def test_reads_follow_the_read_token_setting(start_server: StartServer) -> None:
    """With --read-auth every legacy read needs a token (the stream and socket take
    ?token=); the threshold-history POST is a read; limit POSTs need a write token."""
    server = start_server(legacy=LegacyConfig(enabled=True), read_auth=True, heartbeat_seconds=0.3)
    client = OldClient(server.port)
    reads = [
        ("GET", "/api/metrics/threshold-setting", None),
        ("GET", "/api/metrics/under-threshold-setting", None),
        ("GET", "/api/metrics/threshold-history-all", None),
        ("GET", "/api/metrics/history?date=2026-11-25", None),
        ("GET", "/api/inventory/list", None),
        ("POST", "/api/metrics/threshold-history", b'{"targetId": "h1"}'),
    ]
    for method, path, body in reads:
        assert client.call(method, path, body).status == 401, path
        assert client.call(method, path, body, token=READ).status == 200, path
    refused = client.post_json("/api/metrics/threshold-setting", OVER, token=READ)
    assert refused.status == 403
    assert client.post_json("/api/metrics/threshold-setting", OVER, token=WRITE).status == 200
    assert SseLines(server.port, "/api/metrics/threshold-alert").status == 401
    stream = SseLines(server.port, f"/api/metrics/threshold-alert?token={READ}")
    assert stream.status == 200
    stream.events(quiet=0.5)
    assert "keep-alive" in stream.comments
    stream.close()

    async def sockets() -> None:
        url = f"ws://127.0.0.1:{server.port}/ws/metrics"
        with pytest.raises(tornado.httpclient.HTTPClientError) as info:
            await tornado.websocket.websocket_connect(url)
        assert info.value.code == 401
        connection = await tornado.websocket.websocket_connect(f"{url}?token={READ}")
        connection.close()

    run_async(sockets())


def test_websocket_origins_follow_cors_allowed_origins(start_server: StartServer) -> None:
    """A browser from an unlisted origin gets 403 (JSON envelope); a listed one, the
    server's own origin and a client without Origin connect."""
    server = legacy_server(start_server)
    url = f"ws://127.0.0.1:{server.port}/ws/metrics"

    async def attempt(origin: str | None) -> int:
        headers = {} if origin is None else {"Origin": origin}
        try:
            connection = await tornado.websocket.websocket_connect(
                tornado.httpclient.HTTPRequest(url, headers=headers)
            )
        except tornado.httpclient.HTTPClientError as exc:
            assert exc.response is not None
            assert json.loads(exc.response.body)["error"]["code"] == "forbidden"
            return exc.code
        connection.close()
        return 101

    async def run() -> list[int]:
        origins = [FRONTEND, f"http://127.0.0.1:{server.port}", None, "http://evil.example"]
        return [await attempt(origin) for origin in origins]

    assert run_async(run()) == [101, 101, 101, 403]


DOC = java_document("2026-11-25T11:00:00")
INVALID = [
    (b"", "$"),
    (b"not json", "$"),
    (b"[1, 2]", "$"),
    (DOC.replace(b"1.551929344E10", b"NaN"), "$.memoryUsedBytes"),
    (DOC.replace(b"1.551929344E10", b"1.5E0"), "$.memoryUsedBytes"),
    (DOC.replace(b"37.5", b'"37.5"'), "$.cpuUsagePercent"),
    (DOC.replace(b"2026-11-25T11:00:00", b"yesterday"), "$.timeStamp"),
    (b'{"hostId": "h", "type": "host"}', "$.name"),
]


@pytest.mark.parametrize(("body", "field"), INVALID)
def test_invalid_documents_are_400_with_the_error_envelope(
    start_server: StartServer, body: bytes, field: str
) -> None:
    """Never a 500: srvmon's envelope naming the field; nothing is stored."""
    server = legacy_server(start_server)
    answer = OldClient(server.port, token=WRITE).call("POST", "/api/metrics", body)
    assert answer.status == 400
    error = answer.json()["error"]
    assert (error["code"], error.get("field", "$")) == ("invalid_body", field)
    assert server.storage.samples.machines() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("[]", "$"),
        (json.dumps({k: v for k, v in OVER.items() if k != "networkTx"}), "$.networkTx"),
        (json.dumps({**OVER, "cpuPercent": "ninety"}), "$.cpuPercent"),
        (json.dumps({**OVER, "cpuPercent": "NaN"}), "$.cpuPercent"),
        (json.dumps({**OVER, "temperature": True}), "$.temperature"),
        (json.dumps({**OVER, "memoryUsage": None}), "$.memoryUsage"),
        ("{not json", None),
    ],
)
def test_missing_or_non_numeric_limits_are_400(
    start_server: StartServer, body: str, field: str | None
) -> None:
    """The original answered 500; srvmon answers 400 with its envelope and stores nothing."""
    server = legacy_server(start_server)
    client = OldClient(server.port, token=WRITE)
    before = client.get("/api/v1/rules").json()
    answer = client.call("POST", "/api/metrics/threshold-setting", body)
    assert answer.status == 400
    assert answer.json()["error"].get("field") == field
    assert client.get("/api/v1/rules").json() == before


def test_limits_write_fleet_rules_and_leave_overrides_alone(start_server: StartServer) -> None:
    """Over-limits set the fleet-wide rules' warn (per-loop deltas become per-second rates;
    levels that would contradict move with it); a per-machine rule is untouched."""
    server = legacy_server(start_server)
    client = OldClient(server.port, token=WRITE)
    override = {
        "id": "web-cpu",
        "name": "web cpu",
        "selector": {"kind": "host", "machine": "web-01"},
        "metric": "cpu_percent",
        "warn": 99.0,
    }
    assert client.post_json("/api/v1/rules", override).status == 201
    before = client.get("/api/v1/rules/web-cpu").json()
    assert (
        client.post_json("/api/metrics/threshold-setting", {**OVER, "cpuPercent": "97.5"}).status
        == 200
    )
    rules = {r["id"]: r for r in client.get("/api/v1/rules").json()["rules"]}
    cpu = rules["default.host.cpu"]
    assert (cpu["warn"], cpu["warn_recovery"], cpu["crit"], cpu["crit_recovery"]) == (
        97.5, 80.0, 97.5, 90.0,  # crit 95 would sit below warn: it moved up to 97.5
    )  # fmt: skip
    assert (cpu["window_seconds"], cpu["for_seconds"]) == (30.0, 60.0)  # the rest stays
    disk = rules["legacy.over.host.disk_read_bytes_per_s"]
    assert (disk["warn"], disk["direction"], disk["selector"]["kind"]) == (409.6, "above", "host")
    assert rules["legacy.over.container.block_read_bytes_per_s"]["warn"] == 409.6
    assert "legacy.over.host.temperature_max_celsius" not in rules  # the default holds it
    assert rules["default.host.temperature"]["warn"] == 85.0
    assert client.get("/api/v1/rules/web-cpu").json() == before
    assert client.get("/api/metrics/threshold-setting").json()["diskReadDelta"] == "2048.0"


def test_a_client_that_does_not_read_the_websocket_is_dropped(start_server: StartServer) -> None:
    """A raw WebSocket client that never reads: once its queue (8 here) is full behind a
    full socket, the server cuts it; a reading client on the same server gets everything."""
    server = start_server(legacy=LegacyConfig(enabled=True), client_queue_size=8)
    assert server.app is not None and server.context is not None
    fanout = server.app.settings["srvmon_legacy"].documents
    live = server.context.live  # what the ingest path calls once a batch is stored
    stalled = socket.create_connection(("127.0.0.1", server.port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = base64.b64encode(os.urandom(16)).decode()
    stalled.sendall(
        (
            "GET /ws/metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    assert b" 101 " in stalled.recv(1024).split(b"\r\n")[0]
    wide = [ContainerSample(id=f"{i:064x}", name=f"c{i}", cpu_percent=float(i)) for i in range(400)]

    def batch(n: int) -> Batch:
        at = datetime(2026, 11, 25, 10, tzinfo=UTC) + timedelta(seconds=n)
        return Batch(host_id="wide", hostname="wide", timestamp=at, containers=tuple(wide))

    async def reader_and_flood() -> tuple[int, int]:
        reader = await tornado.websocket.websocket_connect(
            f"ws://127.0.0.1:{server.port}/ws/metrics"
        )
        deadline = time.monotonic() + 10
        while len(fanout) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert len(fanout) == 2  # both connected: the fault hits a live client
        sent = received = 0
        while fanout.dropped == 0 and sent < 3000:
            view = batch_view(batch(sent))
            server.call(lambda view=view: live.stored(view, view.timestamp, {}))
            sent += 1
            assert await asyncio.wait_for(reader.read_message(), 5) is not None
            received += 1
        reader.close()
        return sent, received

    sent, received = run_async(reader_and_flood())
    assert fanout.dropped == 1, f"not dropped after {sent} documents"
    assert received == sent  # the reading client missed nothing
    assert 8 < sent < 3000
    deadline = time.monotonic() + 5
    while len(fanout) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(fanout) == 0  # the stalled client's handler is gone, its queue with it
    # reading what the kernel still holds takes long through a 4 KiB window: reset instead
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stalled.close()


LEGACY_ENDPOINTS = [
    ("POST", "/api/metrics"),
    ("POST", "/api/metrics/threshold-setting"),
    ("POST", "/api/metrics/under-threshold-setting"),
    ("POST", "/api/metrics/threshold-history"),
    ("GET", "/api/metrics/history"),
    ("GET", "/api/metrics/threshold-setting"),
    ("GET", "/api/inventory/list"),
]
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=10,
)
_limit_like = st.dictionaries(
    st.sampled_from([*OVER, "targetId", "hostId", "type", "name", "timeStamp"]),
    _json_values,
    max_size=8,
)


def test_random_input_never_gets_a_5xx(start_server: StartServer) -> None:
    """Random JSON (NaN included), random query values: 200, or a 4xx with the envelope,
    or the limits' own 400 shape; never a 5xx."""
    server = legacy_server(start_server)
    client = OldClient(server.port, token=WRITE)

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        st.sampled_from(LEGACY_ENDPOINTS),
        _json_values | _limit_like,
        st.dictionaries(st.sampled_from(["date", *DAY_QUERY]), st.text(max_size=12), max_size=3),
    )
    def probe(endpoint: tuple[str, str], body: Any, query: dict[str, str]) -> None:
        method, path = endpoint
        payload = json.dumps(body, allow_nan=True) if method == "POST" else None
        answer = client.call(method, f"{path}?{urlencode(query)}", payload)
        assert answer.status < 500, (method, path, answer.status, answer.body[:200])
        if answer.status >= 400:
            error = answer.json()["error"]
            if isinstance(error, dict):
                assert error["status"] == answer.status
            else:  # over < under: the original's {error, thresholdValues}
                assert set(answer.json()) == {"error", "thresholdValues"}

    probe()
