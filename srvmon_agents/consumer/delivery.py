"""Posting batches to the server's ingest endpoint and classifying the answers.

One batch is posted as its envelope; several as ``{"batches": [envelope, ...]}``, answered
``{"results": [...]}`` with one entry per envelope (docs/api.md, Batched ingest).

Each thread keeps its own keep-alive connection (http.client is not thread safe).
"""

from __future__ import annotations

import enum
import http.client
import json
import threading
from typing import Any
from urllib.parse import urlsplit

from attrs import frozen

from srvmon_agents.consumer.work import Ready

INGEST_PATH = "/api/v1/ingest"

# Answers that mean "this body will never be accepted": the message is poison.
_POISON_STATUSES = frozenset({400, 409, 413, 415, 422})


class Verdict(enum.Enum):
    ACCEPTED = "accepted"
    """2xx: the batch is durably stored (or was already)."""
    REJECTED = "rejected"
    """The server refused this body for good (4xx about the body): dead-letter it."""
    RETRY = "retry"
    """Server down, slow, 5xx, 429, or a configuration problem (401/403/404): try again."""


@frozen
class IngestAnswer:
    verdict: Verdict
    status: int | None
    detail: str
    stored: int = 0
    duplicates: int = 0


def classify(status: int, body: bytes) -> IngestAnswer:
    """Turn an HTTP answer from the ingest endpoint into a verdict."""
    text = body[:2000].decode("utf-8", "replace")
    if 200 <= status < 300:
        stored = duplicates = 0
        try:
            parsed = json.loads(body)
            if isinstance(parsed, dict):
                stored = int(parsed.get("stored", 0))
                duplicates = int(parsed.get("duplicates", 0))
        except (ValueError, TypeError):
            pass
        return IngestAnswer(Verdict.ACCEPTED, status, "", stored, duplicates)
    message = text
    try:
        parsed = json.loads(body)
        error = parsed.get("error") if isinstance(parsed, dict) else None
        if isinstance(error, dict):
            field = error.get("field")
            message = f"{error.get('code', status)}: {error.get('message', '')}"
            if field:
                message += f" at {field}"
    except ValueError:
        pass
    if status in _POISON_STATUSES:
        return IngestAnswer(Verdict.REJECTED, status, message)
    return IngestAnswer(Verdict.RETRY, status, f"HTTP {status}: {message}")


def _error_message(status: int, error: Any) -> str:
    """``code: message at field`` of an error envelope's ``error`` object."""
    if not isinstance(error, dict):
        return f"HTTP {status}"
    message = f"{error.get('code', status)}: {error.get('message', '')}"
    field = error.get("field")
    if field:
        message += f" at {field}"
    return message


def classify_many(status: int, body: bytes, count: int) -> list[IngestAnswer] | IngestAnswer:
    """The answer to a ``{"batches": [...]}`` request of ``count`` envelopes.

    A 2xx with ``count`` results gives one verdict per envelope (an entry with ``error`` is
    REJECTED with the server's message and status). Anything else is one verdict for the
    whole request, as :func:`classify` gives it; a 2xx without the expected results (a
    server that does not know batched bodies) counts as REJECTED, so the caller retries
    envelope by envelope.
    """
    if not 200 <= status < 300:
        return classify(status, body)
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    results = parsed.get("results") if isinstance(parsed, dict) else None
    if not isinstance(results, list) or len(results) != count:
        return IngestAnswer(Verdict.REJECTED, status, "no per-envelope results in the answer")
    answers: list[IngestAnswer] = []
    for entry in results:
        if not isinstance(entry, dict):
            answers.append(IngestAnswer(Verdict.RETRY, status, "malformed result entry"))
        elif "error" in entry:
            error = entry["error"]
            code = error.get("status") if isinstance(error, dict) else None
            entry_status = code if isinstance(code, int) else 400
            message = _error_message(entry_status, error)
            answers.append(IngestAnswer(Verdict.REJECTED, entry_status, message))
        else:
            try:
                stored = int(entry.get("stored", 0))
                duplicates = int(entry.get("duplicates", 0))
            except (TypeError, ValueError):
                stored = duplicates = 0
            answers.append(IngestAnswer(Verdict.ACCEPTED, status, "", stored, duplicates))
    return answers


def batches_body(bodies: list[bytes]) -> bytes:
    """``{"batches": [...]}`` around already-encoded envelopes (no re-encoding)."""
    return b'{"batches":[' + b",".join(bodies) + b"]}"


BATCHES_BODY_OVERHEAD = len(batches_body([]))
"""Bytes ``batches_body`` adds besides the envelopes and their separating commas."""


class IngestClient:
    """Posts batch bodies to ``<server_url>/api/v1/ingest`` with a bearer token."""

    def __init__(self, server_url: str, token: str | None, timeout_seconds: float = 10.0) -> None:
        parts = urlsplit(server_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"server URL must be http(s)://host[:port], got {server_url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = parts.path.rstrip("/") + INGEST_PATH
        self._timeout = timeout_seconds
        self._headers = {"Content-Type": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            connection = cls(self._host, self._port, timeout=self._timeout)
            self._local.connection = connection
        return connection

    def _drop_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def _exchange(self, body: bytes) -> tuple[int, bytes] | IngestAnswer:
        connection = self._connection()
        try:
            connection.request("POST", self._path, body=body, headers=self._headers)
            response = connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._drop_connection()
            return IngestAnswer(Verdict.RETRY, None, f"{type(exc).__name__}: {exc}")
        if response.will_close:
            self._drop_connection()
        return response.status, payload

    def post(self, body: bytes) -> IngestAnswer:
        """One attempt. Network failures become a RETRY verdict, never an exception."""
        exchanged = self._exchange(body)
        if isinstance(exchanged, IngestAnswer):
            return exchanged
        return classify(*exchanged)

    def post_many(self, bodies: list[bytes]) -> list[IngestAnswer] | IngestAnswer:
        """One attempt with several envelopes in one request: a verdict per envelope, or one
        for the whole request (see :func:`classify_many`). Never raises on network errors."""
        exchanged = self._exchange(batches_body(bodies))
        if isinstance(exchanged, IngestAnswer):
            return exchanged
        return classify_many(exchanged[0], exchanged[1], len(bodies))

    def post_ready(self, group: list[Ready]) -> list[IngestAnswer] | IngestAnswer:
        """One attempt for a lane's run of decoded messages: a lone envelope as itself,
        several as one ``{"batches": [...]}`` request (the sender's ``Ingest``)."""
        if len(group) == 1:
            return [self.post(group[0].body)]
        return self.post_many([item.body for item in group])

    def close(self) -> None:
        self._drop_connection()
