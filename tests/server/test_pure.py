"""Pure server pieces: the error envelope, SSE framing, auth, CORS (the SSE queues and
fan-out: test_fanout.py)."""

from __future__ import annotations

import json

import pytest

from srvmon_server.auth import Access, TokenPolicy, bearer_token
from srvmon_server.cors import cors_headers, parse_origins
from srvmon_server.errors import error_body
from srvmon_server.sse import format_comment, format_event


def test_error_body_shape() -> None:
    """The envelope carries status, code, message, and field only when given."""
    assert json.loads(error_body(400, "invalid_body", "bad", "$.x")) == {
        "error": {"status": 400, "code": "invalid_body", "message": "bad", "field": "$.x"}
    }
    assert json.loads(error_body(404, "not_found", "nope")) == {
        "error": {"status": 404, "code": "not_found", "message": "nope"}
    }


def test_format_event_and_comment() -> None:
    """An SSE frame is id, event, one data line of compact JSON and a blank line."""
    assert format_event(7, "alert", {"a": 1}) == b'id: 7\nevent: alert\ndata: {"a":1}\n\n'
    assert format_event(None, "resync", {}) == b"event: resync\ndata: {}\n\n"
    assert format_comment("hb") == b": hb\n\n"
    with pytest.raises(ValueError):
        format_comment("a\nb")


def test_events_are_framed_once_when_first_needed() -> None:
    """Without subscribers nothing is encoded (not even data JSON cannot encode fails); a
    replay frames the event exactly as format_event does, and every later reader gets the
    very same bytes."""
    from srvmon_server.hub import Hub

    hub = Hub(ring_size=10, client_queue_size=10)
    unencodable = hub.publish("sample", {"n": object()}, "h0")
    event = hub.publish("sample", {"n": 1}, "h1")
    replayed = hub.ring.since(1)
    assert replayed is not None and replayed[0].frame == format_event(2, "sample", {"n": 1})
    assert replayed[0].frame is event.frame
    with pytest.raises(TypeError):
        unencodable.frame  # noqa: B018 - encoding happens on first use
    with pytest.raises(ValueError, match="single line"):
        hub.publish("bad\nname", {})


@pytest.mark.parametrize(
    ("needed", "token", "read_auth", "expected"),
    [
        (Access.WRITE, None, False, 401),
        (Access.WRITE, "nope", False, 401),
        (Access.WRITE, "r", False, 403),
        (Access.WRITE, "i", False, 403),
        (Access.WRITE, "w", False, None),
        (Access.INGEST, "i", False, None),
        (Access.INGEST, "w", False, None),
        (Access.INGEST, "r", False, 403),
        (Access.INGEST, None, False, 401),
        (Access.READ, None, False, None),
        (Access.READ, None, True, 401),
        (Access.READ, "r", True, None),
        (Access.READ, "w", True, None),
        (Access.READ, "i", True, 403),
        (Access.READ, "x", True, 401),
    ],
)
def test_token_policy(needed: Access, token: str | None, read_auth: bool, expected: int) -> None:
    """Admin (``WRITE``) needs an admin token, ingest an ingest or admin token, reads a read
    or admin token when read_auth is on (401 none/unknown, 403 a token without the scope);
    reads are open otherwise."""
    policy = TokenPolicy.of_options(
        write_tokens={"w"}, ingest_tokens={"i"}, read_tokens={"r"}, read_auth=read_auth
    )
    denied = policy.check(needed, token)
    assert (denied.status if denied else None) == expected


def test_bearer_token_parsing() -> None:
    """Only 'Bearer <token>' yields a token."""
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None


def test_cors_only_allowed_origins() -> None:
    """Allowed origins get headers (more on preflight); others get none."""
    allowed = parse_origins("https://a.example, http://b:8080/")
    assert allowed == frozenset({"https://a.example", "http://b:8080"})
    assert cors_headers(allowed, "https://a.example") == {
        "Access-Control-Allow-Origin": "https://a.example",
        "Vary": "Origin",
    }
    assert "Access-Control-Allow-Methods" in cors_headers(allowed, "http://b:8080", preflight=True)
    assert cors_headers(allowed, "https://evil.example") == {}
    assert cors_headers(allowed, None) == {}
    with pytest.raises(ValueError, match="scheme"):
        parse_origins("a.example")


def test_presence_new_silent_back() -> None:
    """A machine is new once, silent after the limit (reported once), back on its next sample."""
    from datetime import UTC, datetime, timedelta

    from srvmon_server.presence import Presence

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    presence = Presence(silent_after_seconds=30)
    presence.load({"old": t0 - timedelta(seconds=60), "fresh": t0}, t0)
    assert presence.is_silent("old") and not presence.is_silent("fresh")
    assert presence.seen("h1", t0) == "new"
    assert presence.seen("h1", t0 + timedelta(seconds=1)) is None
    assert presence.sweep(t0 + timedelta(seconds=31)) == [("fresh", t0)]
    assert presence.sweep(t0 + timedelta(seconds=32)) == [("h1", t0 + timedelta(seconds=1))]
    assert presence.sweep(t0 + timedelta(seconds=40)) == []
    assert presence.seen("h1", t0 + timedelta(seconds=41)) == "back"
    assert presence.seen("old", t0 + timedelta(seconds=41)) == "back"
    # with 20 s of the server's own backlog, 45 s of quiet is not yet silence; 51 s is
    assert presence.sweep(t0 + timedelta(seconds=86), grace_seconds=20) == []
    assert presence.sweep(t0 + timedelta(seconds=92), grace_seconds=20) == [
        ("h1", t0 + timedelta(seconds=41)),
        ("old", t0 + timedelta(seconds=41)),
    ]


def test_backlog_is_the_age_of_the_oldest_ingest_held() -> None:
    """Nothing held: 0. Held: the oldest one's age, whatever order they end in."""
    from datetime import UTC, datetime, timedelta

    from srvmon_server.backlog import Backlog

    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    backlog = Backlog(lambda: now[0])
    assert backlog.behind_seconds(now[0]) == 0.0
    first = backlog.held()
    first.__enter__()
    now[0] += timedelta(seconds=5)
    with backlog.held():
        assert backlog.held_now == 2
        assert backlog.behind_seconds(now[0] + timedelta(seconds=3)) == 8.0
        first.__exit__(None, None, None)
        assert backlog.behind_seconds(now[0] + timedelta(seconds=3)) == 3.0
    assert (backlog.held_now, backlog.behind_seconds(now[0])) == (0, 0.0)


def test_access_log_redacts_query_tokens() -> None:
    """Tokens passed as ?token= (SSE) never reach the access log."""
    from srvmon_server.app import redact

    assert redact("/api/v1/events?token=s3cret&topics=alerts") == (
        "/api/v1/events?token=<redacted>&topics=alerts"
    )
    assert redact("/api/v1/events?topics=alerts&token=s3cret") == (
        "/api/v1/events?topics=alerts&token=<redacted>"
    )
    assert redact("/api/v1/machines?mytoken=x") == "/api/v1/machines?mytoken=x"
