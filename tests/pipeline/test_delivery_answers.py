"""delivery.classify_many: how the answer to a {"batches": [...]} request becomes verdicts."""

from __future__ import annotations

import json

import pytest

from srvmon_agents.consumer.delivery import (
    BATCHES_BODY_OVERHEAD,
    Verdict,
    batches_body,
    classify_many,
)


def test_per_envelope_results_become_one_verdict_each() -> None:
    """Counts → accepted with those counts; an error entry → rejected with its status and
    the server's message and field."""
    body = json.dumps(
        {
            "results": [
                {"stored": 3, "duplicates": 0},
                {
                    "error": {
                        "status": 400,
                        "code": "invalid_body",
                        "message": "bad",
                        "field": "$.x",
                    }
                },
                {"stored": 0, "duplicates": 2},
            ]
        }
    ).encode()
    answers = classify_many(200, body, 3)
    assert isinstance(answers, list)
    assert [(a.verdict, a.stored, a.duplicates) for a in answers] == [
        (Verdict.ACCEPTED, 3, 0),
        (Verdict.REJECTED, 0, 0),
        (Verdict.ACCEPTED, 0, 2),
    ]
    assert (answers[1].status, answers[1].detail) == (400, "invalid_body: bad at $.x")


@pytest.mark.parametrize(
    ("status", "body", "verdict"),
    [
        (503, b'{"error": {"code": "db_unavailable", "message": "down"}}', Verdict.RETRY),
        (429, b"", Verdict.RETRY),
        (400, b'{"error": {"code": "invalid_body", "message": "no"}}', Verdict.REJECTED),
        (413, b"", Verdict.REJECTED),
        (200, b'{"stored": 1, "duplicates": 0}', Verdict.REJECTED),
        (200, b'{"results": [{"stored": 1, "duplicates": 0}]}', Verdict.REJECTED),
        (200, b"not json", Verdict.REJECTED),
    ],
)
def test_whole_request_answers(status: int, body: bytes, verdict: Verdict) -> None:
    """Non-2xx, or a 2xx without one result per envelope (a server without batched ingest,
    here 2 envelopes sent), is one verdict for the whole request."""
    answer = classify_many(status, body, 2)
    assert not isinstance(answer, list)
    assert answer.verdict is verdict


def test_batches_body_wraps_encoded_envelopes_verbatim() -> None:
    """The body is valid JSON holding the envelopes unchanged; the overhead is exact."""
    envelopes = [b'{"a":1}', b'{"b":[2]}']
    body = batches_body(envelopes)
    assert json.loads(body) == {"batches": [{"a": 1}, {"b": [2]}]}
    assert len(body) == BATCHES_BODY_OVERHEAD + sum(map(len, envelopes)) + 1
