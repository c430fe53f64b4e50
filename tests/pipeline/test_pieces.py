"""The consumer's pure pieces: commit ledger, backoff, answer classification, CLI options."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from srvmon_agents.consumer.backoff import Backoff
from srvmon_agents.consumer.command import consumer
from srvmon_agents.consumer.deadletter import dead_letter_headers
from srvmon_agents.consumer.delivery import Verdict, classify
from srvmon_agents.consumer.ledger import OffsetLedger
from srvmon_agents.kafka_options import parse_kafka_options

DOCS = Path(__file__).resolve().parents[2] / "docs" / "consumer.md"
P0 = ("t", 0)
P1 = ("t", 1)


def test_ledger_commits_only_the_finished_prefix() -> None:
    """An unfinished offset holds back every later offset of its partition, not others."""
    ledger = OffsetLedger()
    for offset in (5, 6, 7):
        ledger.track(P0, offset)
    ledger.track(P1, 0)
    ledger.finish(P0, 7)
    ledger.finish(P0, 6)
    ledger.finish(P1, 0)
    assert ledger.to_commit() == {P1: 1}
    ledger.finish(P0, 5)
    assert ledger.to_commit() == {P0: 8, P1: 1}
    ledger.mark_committed({P0: 8, P1: 1})
    assert ledger.to_commit() == {}
    assert ledger.in_flight() == 0


def test_ledger_forgets_revoked_partitions() -> None:
    """After revocation nothing of that partition is committed, even if finished later."""
    ledger = OffsetLedger()
    ledger.track(P0, 0)
    ledger.track(P1, 0)
    ledger.forget({P0})
    ledger.finish(P0, 0)
    ledger.finish(P1, 0)
    assert ledger.to_commit() == {P1: 1}
    assert ledger.in_flight({P0}) == 0


def test_ledger_rejects_out_of_order_tracking() -> None:
    """Offsets must be tracked in consumption order; anything else is a bug, not data."""
    ledger = OffsetLedger()
    ledger.track(P0, 3)
    with pytest.raises(ValueError, match="out of order"):
        ledger.track(P0, 3)


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [(1, 0.05, 0.1), (2, 0.05, 0.2), (3, 0.05, 0.4), (10, 0.05, 2.0), (60, 0.05, 2.0)],
)
def test_backoff_grows_exponentially_up_to_the_cap(attempt: int, low: float, high: float) -> None:
    """Delay bounds double per attempt and stop at max_seconds; jitter stays inside them."""
    backoff = Backoff(initial_seconds=0.1, max_seconds=2.0)
    assert backoff.delay(attempt, uniform=lambda a, _b: a) == pytest.approx(low)
    assert backoff.delay(attempt, uniform=lambda _a, b: b) == pytest.approx(high)


@pytest.mark.parametrize(
    ("status", "body", "verdict"),
    [
        (200, b'{"stored": 3, "duplicates": 0}', Verdict.ACCEPTED),
        (400, b'{"error": {"code": "invalid_body", "message": "x"}}', Verdict.REJECTED),
        (413, b"too big", Verdict.REJECTED),
        (422, b"{}", Verdict.REJECTED),
        (401, b"{}", Verdict.RETRY),
        (403, b"{}", Verdict.RETRY),
        (404, b"", Verdict.RETRY),
        (429, b"", Verdict.RETRY),
        (500, b"<html>", Verdict.RETRY),
        (503, b'{"error": {"code": "db_unavailable"}}', Verdict.RETRY),
    ],
)
def test_ingest_answers_are_classified(status: int, body: bytes, verdict: Verdict) -> None:
    """Body errors are poison; auth, overload and server errors are retried, never dropped."""
    assert classify(status, body).verdict is verdict


def test_accepted_answer_carries_counts_and_rejection_carries_the_field() -> None:
    """The server's stored/duplicates counts and its error field path are kept."""
    accepted = classify(200, b'{"stored": 2, "duplicates": 1}')
    assert (accepted.stored, accepted.duplicates) == (2, 1)
    rejected = classify(
        400, b'{"error": {"code": "invalid_body", "message": "bad", "field": "$.host_id"}}'
    )
    assert rejected.detail == "invalid_body: bad at $.host_id"


def test_dead_letter_headers_name_the_source() -> None:
    """Dead letters carry error text and source topic/partition/offset/timestamp."""
    headers = dict(dead_letter_headers("boom", "metrics", 3, 42, 1700000000000))
    assert headers == {
        "error": b"boom",
        "source.topic": b"metrics",
        "source.partition": b"3",
        "source.offset": b"42",
        "source.timestamp_ms": b"1700000000000",
    }
    assert len(dict(dead_letter_headers("x" * 10_000, "t", 0, 0, None))["error"]) == 4000


def test_kafka_options_parse_and_reject_bad_pairs() -> None:
    """KEY=VALUE pairs pass through (values may contain '='); a bare word is a usage error."""
    parsed = parse_kafka_options(("security.protocol=SASL_SSL", "sasl.jaas=a=b"))
    assert parsed == {"security.protocol": "SASL_SSL", "sasl.jaas": "a=b"}
    with pytest.raises(click.BadParameter, match="KEY=VALUE"):
        parse_kafka_options(("novalue",))


def test_bad_options_are_clear_errors_without_traceback() -> None:
    """Bad time zone, bad URL and bad Kafka option end with a usage message, not a traceback."""
    runner = CliRunner()
    for args, text in [
        (["--legacy-timezone", "Mars/Olympus"], "unknown time zone"),
        (["--server-url", "ftp://x"], "server URL must be http"),
        (["--kafka-option", "oops"], "KEY=VALUE"),
    ]:
        result = runner.invoke(consumer, ["--bootstrap-server", "127.0.0.1:1", *args])
        assert result.exit_code == 2, result.output
        assert text in result.output
        assert "Traceback" not in result.output
    result = runner.invoke(
        consumer, ["--bootstrap-server", "127.0.0.1:1", "--kafka-option", "no.such.key=1"]
    )
    assert result.exit_code == 1
    assert "bad Kafka configuration" in result.output
    assert "no.such.key" in result.output


def test_every_option_and_env_var_is_in_help_and_docs() -> None:
    """--help shows each option's env var, and docs/consumer.md documents both."""
    help_text = CliRunner().invoke(consumer, ["--help"], terminal_width=200).output
    docs = DOCS.read_text()
    for param in consumer.params:
        if not isinstance(param, click.Option) or param.name == "help":
            continue
        flag = param.opts[0]
        assert flag in help_text
        assert isinstance(param.envvar, str)
        assert re.search(rf"env var:\s+{param.envvar}", help_text), param.envvar
        assert f"`{flag}`" in docs, flag
        assert f"`{param.envvar}`" in docs, param.envvar


def test_ledger_counts_what_is_finished_but_not_committed() -> None:
    """uncommitted: the finished prefix past the last commit (from the first tracked offset
    before any commit); a second finish of one offset changes nothing."""
    ledger = OffsetLedger()
    for offset in range(10, 16):
        ledger.track(P0, offset)
    for offset in (10, 11, 12, 14):
        ledger.finish(P0, offset)
    ledger.finish(P0, 12)
    assert ledger.uncommitted() == 3
    assert ledger.in_flight() == 3  # 13, and 14 and 15 held behind it
    ledger.mark_committed(ledger.to_commit())
    assert ledger.uncommitted() == 0
    ledger.finish(P0, 13)
    assert ledger.uncommitted() == 2
    assert ledger.to_commit() == {P0: 15}
