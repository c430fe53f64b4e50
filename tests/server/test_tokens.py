"""Scoped tokens (issue 17): ingest, read and admin; listed, rotated and revoked without a
restart, stored hashed; placeholders and shared tokens refused at start."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from srvmon_core.codec import encode_batch
from srvmon_server.auth import is_loopback, placeholder_problem, token_digest
from srvmon_server.storage import tables as t
from tests.server.harness import READ, WRITE, RunningServer, make_batch
from tests.server.test_command import SRVMON, run_env

INGEST = "ingest-only-9f2c41b7e0d8"
RULE = {"id": "r1", "name": "cpu", "metric": "cpu_percent", "warn": 80.0}


@pytest.fixture
def scoped(start_server: Any) -> RunningServer:
    server: RunningServer = start_server(
        ingest_tokens={INGEST}, read_auth=True, tokens_reload_seconds=0.2
    )
    return server


def status(
    server: RunningServer, method: str, path: str, token: str | None, body: Any = None
) -> int:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body))
    return server.request(method, path, data, token=token).status


def test_an_ingest_token_can_ingest_and_nothing_else(scoped: RunningServer) -> None:
    """A collector's or consumer's token stores batches; it cannot delete a rule (403),
    silence alerts, manage tokens or (with read-auth) read anything."""
    server = scoped
    assert status(server, "POST", "/api/v1/rules", WRITE, RULE) == 201
    assert status(server, "POST", "/api/v1/ingest", INGEST, encode_batch(make_batch())) == 200
    forbidden = [
        ("DELETE", "/api/v1/rules/r1", None),
        ("PUT", "/api/v1/rules/r1", RULE),
        ("POST", "/api/v1/silences", {"matchers": {"machine": "*"}, "ends_at": "2099-01-01"}),
        ("GET", "/api/v1/machines", None),
        ("GET", "/api/v1/rules", None),
        ("GET", "/api/v1/tokens", None),
        ("POST", "/api/v1/tokens", {"name": "x", "scopes": ["admin"]}),
    ]
    for method, path, body in forbidden:
        resp = server.request(
            method, path, None if body is None else json.dumps(body), token=INGEST
        )
        assert resp.status == 403, (method, path, resp.body)
        assert resp.json()["error"]["code"] == "forbidden"
    assert (
        "ingest only"
        in server.request("DELETE", "/api/v1/rules/r1", token=INGEST).json()["error"]["message"]
    )
    assert status(server, "GET", "/api/v1/rules/r1", WRITE) == 200  # still there


def test_read_and_admin_scopes(scoped: RunningServer) -> None:
    """A read token reads (reads need a token here) and cannot ingest or write; the admin
    token does everything; no token or an unknown one is 401."""
    server = scoped
    body = encode_batch(make_batch())
    assert status(server, "GET", "/api/v1/machines", READ) == 200
    assert status(server, "POST", "/api/v1/ingest", READ, body) == 403
    assert status(server, "POST", "/api/v1/rules", READ, RULE) == 403
    assert status(server, "GET", "/api/v1/tokens", READ) == 403
    assert status(server, "POST", "/api/v1/ingest", WRITE, body) == 200
    assert status(server, "GET", "/api/v1/tokens", WRITE) == 200
    assert status(server, "GET", "/api/v1/machines", None) == 401
    assert status(server, "GET", "/api/v1/machines", "no-such-token") == 401
    assert status(server, "GET", "/api/v1/health", None) == 200


def test_tokens_are_created_rotated_and_revoked_without_a_restart(scoped: RunningServer) -> None:
    """POST creates a token (shown once), it works at once with its scopes; the listing shows
    it (and the option tokens) without any secret; rotation replaces the secret (the old one
    is 401 at once); revocation ends it; option tokens cannot be rotated or revoked."""
    server = scoped
    created = server.request(
        "POST", "/api/v1/tokens", json.dumps({"name": "consumer-1", "scopes": ["ingest"]})
    )
    assert created.status == 201 and created.headers["cache-control"] == "no-store"
    entry = created.json()
    token, token_id = entry.pop("token"), entry["id"]
    assert entry["scopes"] == ["ingest"] and entry["source"] == "api"
    assert status(server, "POST", "/api/v1/ingest", token, encode_batch(make_batch())) == 200
    assert status(server, "DELETE", "/api/v1/rules/x", token) == 403
    listing = server.request("GET", "/api/v1/tokens").json()["tokens"]
    assert {(e["name"], e["source"]) for e in listing} == {
        ("--token", "option"),
        ("--ingest-token", "option"),
        ("--read-token", "option"),
        ("consumer-1", "api"),
    }
    assert token not in json.dumps(listing) and WRITE not in json.dumps(listing)
    rotated = server.request("POST", f"/api/v1/tokens/{token_id}/rotate").json()
    assert rotated["id"] == token_id and rotated["rotated_at"]
    assert status(server, "GET", "/api/v1/machines", token) == 401  # old secret: gone
    new = rotated["token"]
    assert status(server, "POST", "/api/v1/ingest", new, encode_batch(make_batch())) == 200
    assert status(server, "DELETE", f"/api/v1/tokens/{token_id}", WRITE) == 204
    assert status(server, "POST", "/api/v1/ingest", new, encode_batch(make_batch())) == 401
    assert status(server, "DELETE", f"/api/v1/tokens/{token_id}", WRITE) == 404
    option_id = next(e["id"] for e in listing if e["name"] == "--ingest-token")
    refused = server.request("DELETE", f"/api/v1/tokens/{option_id}")
    assert refused.status == 409 and refused.json()["error"]["code"] == "token_from_options"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "scopes": []}, "$.scopes"),
        ({"name": "x", "scopes": ["root"]}, "$.scopes[0]"),
        ({"name": "x", "scopes": ["read", "read"]}, "$.scopes"),
        ({"name": "a\nb", "scopes": ["read"]}, "$.name"),
        ({"name": "", "scopes": ["read"]}, "$.name"),
        ({"scopes": ["read"]}, "$.name"),
        ({"name": "x", "scopes": ["read"], "token": "chosen"}, "$.token"),
    ],
)
def test_bad_token_requests_are_400(server: RunningServer, body: Any, field: str) -> None:
    resp = server.request("POST", "/api/v1/tokens", json.dumps(body))
    assert resp.status == 400 and resp.json()["error"]["field"] == field


def test_tokens_are_stored_hashed(scoped: RunningServer) -> None:
    """The database holds the SHA-256 digest of an API token, never the token."""
    server = scoped
    token = server.request(
        "POST", "/api/v1/tokens", json.dumps({"name": "n", "scopes": ["read"]})
    ).json()["token"]
    with server.storage.engine.connect() as conn:
        rows = conn.execute(sa.select(t.api_tokens)).all()
    assert [row.digest for row in rows] == [token_digest(token)]
    assert all(token not in str(tuple(row)) for row in rows)


def test_the_cli_manages_tokens_a_running_server_picks_up(
    scoped: RunningServer, tmp_path: Path
) -> None:
    """``srvmon token create`` on the server's database makes a token the running server
    accepts within its reload interval; ``revoke`` ends it the same way."""
    server = scoped
    url = str(server.storage.engine.url)
    env = run_env(tmp_path)
    run = [*SRVMON, "token"]
    out = subprocess.run(
        [*run, "create", "--name", "cli", "--scope", "read", "--db-url", url],
        env=env, check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    header, token = out.strip().splitlines()
    token_id = header.split()[2]
    deadline = time.monotonic() + 5
    while status(server, "GET", "/api/v1/machines", token) != 200:
        assert time.monotonic() < deadline, "the server did not pick up the new token"
        time.sleep(0.1)
    listed = subprocess.run(
        [*run, "list", "--db-url", url], env=env, check=True, capture_output=True, text=True
    ).stdout
    assert token_id in listed and "cli" in listed and token not in listed
    subprocess.run(
        [*run, "revoke", token_id, "--db-url", url], env=env, check=True, capture_output=True
    )
    deadline = time.monotonic() + 5
    while status(server, "GET", "/api/v1/machines", token) != 401:
        assert time.monotonic() < deadline, "the server did not drop the revoked token"
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("args", "env_extra", "expected"),
    [
        ([], {"SRVMON_INGEST_TOKEN": "change-me-token"}, "--ingest-token/SRVMON_INGEST_TOKEN"),
        (["--token", "change-me"], {}, "--token/SRVMON_TOKEN: 'change-me' is a placeholder"),
        (["--read-token", "CHANGEME"], {}, "is a placeholder"),
        (
            ["--token", "same-token-for-two-roles"],
            {"SRVMON_INGEST_TOKEN": "same-token-for-two-roles"},
            "the same token is given as --token/SRVMON_TOKEN and --ingest-token",
        ),
    ],
)
def test_placeholder_and_shared_tokens_are_refused_at_start(
    tmp_path: Path, args: list[str], env_extra: dict[str, str], expected: str
) -> None:
    """The server will not start on a token copied from .env.example, nor one token for
    two roles: one clear line, exit code 1."""
    env = run_env(tmp_path) | env_extra
    result = subprocess.run(
        [*SRVMON, "server", "--port", "0", *args],
        env=env, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_pure_helpers() -> None:
    """Placeholders from the examples are recognised; loopback hosts keep reads open by
    default, any other bind address turns read-auth on."""
    assert placeholder_problem("change-me-token") and placeholder_problem(" Change-Me-2 ")
    assert placeholder_problem("kJ3v0Xr9pQ_wE2mZ8fYb1nLh7dTs4cAu") is None
    assert all(is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "127.1.2.3"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.5", "srvmon.example"))
