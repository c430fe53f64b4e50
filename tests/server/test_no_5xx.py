"""Every request the probe of issue 17 answered 500 now answers 4xx with the JSON envelope,
and error answers leak nothing about the database."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from urllib.parse import quote

import click
import pytest

from srvmon_server.command import generated_token
from srvmon_server.errors import http_error
from srvmon_server.storage import Storage, StorageUnavailable
from tests.server.harness import RunningServer, make_batch

RULE = {"name": "cpu", "metric": "cpu_percent", "warn": 80.0}


def assert_envelope(resp: object, status: int, code: str | None = None) -> dict:
    assert resp.status == status, (resp.status, resp.body[:300])  # type: ignore[attr-defined]
    error = json.loads(resp.body)["error"]  # type: ignore[attr-defined]
    assert error["status"] == status and isinstance(error["message"], str)
    if code is not None:
        assert error["code"] == code, error
    return error  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "query",
    [
        "to=0001-01-01T00:00:00",
        "from=0001-01-01T00:00:00",
        "to=9999-12-31T23:59:59",
        "to=0001-01-01T00:00:00%2B14:00",
        "to=1e300",
        "to=-1",
        "from=1969-12-31T23:59:59Z",
    ],
)
def test_out_of_range_times_are_400(server: RunningServer, query: str) -> None:
    """Times before 1970 or past 9999-01-01 (year 1 overflowed ``to - 7 days``) are a 400
    naming the parameter, on history and on a known machine's series."""
    assert server.ingest(make_batch("h1")).status == 200
    for path in ("/api/v1/alerts/history", "/api/v1/machines/h1/series?metric=cpu_percent"):
        joined = f"{path}{'&' if '?' in path else '?'}{query}"
        error = assert_envelope(server.request("GET", joined, token=None), 400, "invalid_parameter")
        assert error["field"] == query.split("=", maxsplit=1)[0]


@pytest.mark.parametrize(
    "raw",
    [b"99999999999999999999999.1", b"1.99999999999999999999", b"-9223372036854775809.1", b"x.y"],
)
def test_crafted_cursors_are_400(server: RunningServer, raw: bytes) -> None:
    """A base64 cursor holding integers no column can hold (SQLite raised OverflowError)
    or no integers at all is a 400, not a 500."""
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    resp = server.request("GET", f"/api/v1/alerts/history?cursor={cursor}", token=None)
    assert_envelope(resp, 400, "invalid_parameter")


@pytest.mark.parametrize("path", ["/static/app.js%00.png", "/static/%0a", "/static/a%00"])
def test_control_characters_in_static_paths_are_404(server: RunningServer, path: str) -> None:
    """A NUL in a static path made os.stat raise ValueError (500); now a 404 envelope."""
    assert_envelope(server.request("GET", path, token=None), 404)


@pytest.mark.parametrize("path", ["/api/v1/rules", "/api/v1/silences", "/api/v1/rules/r1"])
def test_deep_json_bodies_are_400(server: RunningServer, path: str) -> None:
    """100,000 nested arrays (RecursionError in json.loads) are a 400 ``invalid_body``."""
    method = "PUT" if path.endswith("/r1") else "POST"
    body = b"[" * 100_000 + b"]" * 100_000
    error = assert_envelope(server.request(method, path, body), 400, "invalid_body")
    assert "nested too deeply" in error["message"]


@pytest.mark.parametrize("rule_id", ["a\r\nb", "a\nLocation: /x", "x\u2028y", "t\tab", "a" * 129])
def test_rule_ids_with_control_characters_are_refused(server: RunningServer, rule_id: str) -> None:
    """Such an id used to be stored, then its answer raised while writing ``Location``
    (500); now POST and PUT refuse it with 400 at ``$.id`` and nothing is stored."""
    post = server.request("POST", "/api/v1/rules", json.dumps({**RULE, "id": rule_id}))
    assert assert_envelope(post, 400, "invalid_rule")["field"] == "$.id"
    put = server.request("PUT", f"/api/v1/rules/{quote(rule_id, safe='')}", json.dumps(RULE))
    assert assert_envelope(put, 400, "invalid_rule")["field"] == "$.id"
    ids = [r["id"] for r in server.request("GET", "/api/v1/rules").json()["rules"]]
    assert rule_id not in ids


def test_unusual_but_printable_rule_ids_work(server: RunningServer) -> None:
    """Printable ids with spaces, slashes and non-ASCII letters are kept; ``Location``
    carries them percent-encoded and resolves."""
    rule_id = "Größe / disk 1"
    created = server.request("POST", "/api/v1/rules", json.dumps({**RULE, "id": rule_id}))
    assert created.status == 201, created.body
    location = created.headers["location"]
    assert location == "/api/v1/rules/" + quote(rule_id, safe="") and location.isascii()
    assert server.request("GET", location).json()["id"] == rule_id


def test_database_errors_do_not_leak_the_url() -> None:
    """The 503 envelope says the database is unavailable and nothing about where it is
    (the detail, with host, port, user or file, goes to the server log)."""
    detail = "database mysql+pymysql://srvmon:***@db.internal:3306/srvmon unavailable (ingest)"
    mapped = http_error(StorageUnavailable(detail))
    assert mapped is not None and mapped.status == 503 and mapped.code == "db_unavailable"
    assert "db.internal" not in mapped.message and "3306" not in mapped.message
    assert "srvmon:" not in mapped.message and "see the server log" in mapped.message


def test_sqlite_database_is_created_private(tmp_path: Path) -> None:
    """A new SQLite file, and the WAL files SQLite creates beside it, are mode 0600."""
    url = f"sqlite:///{tmp_path / 'new.db'}"
    store = Storage.open(url)
    try:
        store.samples.ingest(make_batch("h1"), make_batch("h1").timestamp)
        for name in ("new.db", "new.db-wal", "new.db-shm"):
            path = tmp_path / name
            if path.exists():
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
        assert (tmp_path / "new.db-wal").exists()
    finally:
        store.close()


def test_a_readable_token_file_is_made_private(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An existing token file with mode 0644 is made 0600, with a warning to rotate it."""
    path = tmp_path / "server-token"
    path.write_text("kept-token-value\n")
    os.chmod(path, 0o644)
    assert generated_token(tmp_path) == ("kept-token-value", False)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "was readable by other users (mode 644)" in capsys.readouterr().err


def test_a_readable_token_file_that_cannot_be_fixed_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the mode cannot be changed (another owner), the server refuses to start with
    one clear line instead of using a token others can read."""
    path = tmp_path / "server-token"
    path.write_text("shared-token-value\n")
    os.chmod(path, 0o640)

    def refuse(*_args: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "chmod", refuse)
    with pytest.raises(click.ClickException) as caught:
        generated_token(tmp_path)
    assert "readable by other users (mode 640)" in caught.value.message
    assert "Operation not permitted" in caught.value.message


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/api/v1/rules", {**RULE, "id": "r" * 300}, "$.id"),
        ("POST", "/api/v1/rules", {**RULE, "id": "big", "name": "n" * 100_000}, "$.name"),
        (
            "POST",
            "/api/v1/rules",
            {**RULE, "id": "sel", "selector": {"labels": {f"k{i}": "v" for i in range(40)}}},
            "$.selector.labels",
        ),
        (
            "POST",
            "/api/v1/silences",
            {"matchers": {"host": "h"}, "ends_at": "2099-01-01", "comment": "c" * 100_000},
            "$.comment",
        ),
        (
            "POST",
            "/api/v1/silences",
            {"matchers": {"host": "h" * 300}, "ends_at": "2099-01-01"},
            None,
        ),
        ("POST", "/api/v1/tokens", {"name": "t" * 300, "scopes": ["read"]}, "$.name"),
    ],
)
def test_bodies_past_column_widths_are_400_on_both_backends(
    server_any_db: RunningServer, method: str, path: str, body: dict, field: str | None
) -> None:
    """Values that would overflow a MariaDB column (VARCHAR(255) ids, TEXT bodies of
    64 KiB) are refused with a 400 envelope first, never a DataError answered 500."""
    error = assert_envelope(server_any_db.request(method, path, json.dumps(body)), 400)
    if field is not None:
        assert error["field"] == field
