"""Random bodies and parameters against every endpoint: never a 5xx, always the envelope.

Also: a database that goes away mid-run gives 503 envelopes (the consumer retries on 5xx),
proven against real MariaDB behind a TCP relay the test cuts.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.server.harness import READ, T0, WRITE, RunningServer, make_batch

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
ENDPOINTS = [
    ("POST", "/api/v1/ingest"),
    ("GET", "/api/v1/machines"),
    ("GET", "/api/v1/machines/{k}"),
    ("GET", "/api/v1/machines/{k}/series"),
    ("GET", "/api/v1/machines/{k}/rules"),
    ("GET", "/api/v1/rules"),
    ("POST", "/api/v1/rules"),
    ("PUT", "/api/v1/rules/{k}"),
    ("DELETE", "/api/v1/rules/{k}"),
    ("GET", "/api/v1/rules/{k}"),
    ("GET", "/api/v1/alerts"),
    ("GET", "/api/v1/alerts/history"),
    ("GET", "/api/v1/silences"),
    ("POST", "/api/v1/silences"),
    ("DELETE", "/api/v1/silences/{k}"),
    ("GET", "/api/v1/health"),
    ("GET", "/metrics"),
    ("GET", "/api/v1/nowhere/{k}"),
]
PARAMS = ["metric", "from", "to", "max_points", "limit", "cursor", "machine", "state", "topics"]


def assert_envelope_or_success(method: str, path: str, status: int, body: bytes) -> None:
    assert status < 500, (method, path, status, body[:300])
    if status >= 400:
        error = json.loads(body)["error"]
        assert error["status"] == status and isinstance(error["message"], str)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    endpoint=st.sampled_from(ENDPOINTS),
    key=st.text(min_size=1, max_size=12),
    params=st.dictionaries(st.sampled_from(PARAMS), st.text(max_size=12), max_size=3),
    body=json_values,
    token=st.sampled_from([WRITE, READ, None, "junk"]),
)
def test_no_5xx_for_random_input(
    server: RunningServer,
    *,
    endpoint: tuple[str, str],
    key: str,
    params: dict[str, str],
    body: Any,
    token: str | None,
) -> None:
    """Any method/path/params/body/token combination answers < 500 with the envelope."""
    method, template = endpoint
    path = template.replace("{k}", quote(key, safe=""))
    if params:
        path += "?" + "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in params.items())
    data = json.dumps(body).encode() if method in ("POST", "PUT") else None
    resp = server.request(method, path, data, token=token)
    assert_envelope_or_success(method, path, resp.status, resp.body)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(garbage=st.binary(max_size=200))
def test_no_5xx_for_random_bytes(server: RunningServer, garbage: bytes) -> None:
    """Arbitrary bytes posted to ingest are a 400 envelope."""
    resp = server.request("POST", "/api/v1/ingest", garbage)
    assert resp.status == 400, resp.body
    assert json.loads(resp.body)["error"]["code"] == "invalid_body"


class Relay:
    """A TCP relay 127.0.0.1:port → target; ``cut()`` closes it and every connection."""

    def __init__(self, target_port: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target_port = target_port
        self.sockets: list[socket.socket] = []
        self.open = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self.open:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.open = False
        with contextlib.suppress(OSError):  # shutdown wakes the accept() blocked in _accept
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass


def test_dead_database_gives_503(start_server, mariadb_server) -> None:  # type: ignore[no-untyped-def]
    """MariaDB unreachable mid-run: ingest, reads and health answer 503 envelopes."""
    url = mariadb_server.create_database("srvmon_dead_db")
    try:
        relay = Relay(mariadb_server.port)
        relayed = url.replace(f":{mariadb_server.port}/", f":{relay.port}/")
        server = start_server(url=relayed)
        assert server.ingest(make_batch()).status == 200
        relay.cut()
        for method, path, body in [
            ("POST", "/api/v1/ingest", make_batch(at=T0 + timedelta(seconds=1))),
            ("GET", "/api/v1/machines", None),
            ("GET", "/api/v1/health", None),
            ("GET", "/api/v1/alerts/history", None),
        ]:
            resp = server.ingest(body) if body is not None else server.request(method, path)
            assert resp.status == 503, (path, resp.body)
            text = resp.body.decode()
            assert str(relay.port) not in text and "srvmon_dead_db" not in text  # no URL
            if path != "/api/v1/health":
                assert resp.json()["error"]["code"] == "db_unavailable"
            else:
                assert resp.json() == {"status": "degraded", "db": "unavailable"}
    finally:
        mariadb_server.drop_database("srvmon_dead_db")
