"""JSON on the server's hot paths, through orjson wherever it gives the same result.

At 1,000 hosts x 30 containers the server parses 31,000 samples a second and rewrites
31,000 inventory rows every few seconds. orjson parses a consumer's request body about
1.8 times as fast as the standard library and writes a machine's inventory JSON about
three times as fast. ``srvmon_core`` keeps the standard library (it imports nothing else);
the server uses orjson only where the outcome cannot differ:

- :func:`parse` gives what orjson accepts, and :data:`REFUSED` for everything else (a
  literal ``NaN`` in a legacy Java document, a lone surrogate escape, a BOM, an integer
  beyond 64 bits...): the caller then parses with ``srvmon_core.codec.parse_json``, which
  accepts what the standard library accepts and says exactly what is wrong otherwise.
  Where both accept, the values are equal, except that orjson reads an integer beyond
  unsigned 64 bits as a float; no srvmon field takes such an integer, and a body that
  fails to decode is decoded again from the standard library's parse, so the error an
  operator reads is the same either way (see ``srvmon_server.ingest.decode_request``).
- :func:`dumps` writes compact ASCII text, as ``json.dumps`` does (non-ASCII text goes
  through ``json.dumps``), so a column of any character set holds it.
- :func:`dumps_utf8` writes compact UTF-8 bytes (the replicas' events topic); what orjson
  refuses to write (an integer beyond 64 bits, a key that is not a string) is written by
  the standard library instead, so every value reads back the same. A non-finite float,
  which orjson writes as ``null``, cannot occur there: samples, rules and alerts carry
  finite figures only.
"""

from __future__ import annotations

import json
from typing import Any, Final

import orjson


class _Refused:
    """orjson did not accept the text; parse it with ``codec.parse_json``."""

    def __repr__(self) -> str:
        return "REFUSED"


REFUSED: Final = _Refused()


def parse(body: bytes) -> Any:
    """``body`` parsed by orjson, or :data:`REFUSED` (never raises)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return REFUSED


def dumps(value: Any) -> str:
    """Compact, ASCII-only JSON of plain data (str keys, finite floats, ints of 64 bits)."""
    text = orjson.dumps(value)
    if text.isascii():
        return text.decode("ascii")
    return json.dumps(value, separators=(",", ":"))


_UTF8 = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def dumps_utf8(value: Any) -> bytes:
    """Compact UTF-8 JSON of plain data; what orjson refuses, the standard library writes."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError included
        return _UTF8.encode(value).encode()
