"""The configuration snippets of docs/operations.md, taken from the page itself.

A snippet the tests use is marked with ``<!-- test: NAME -->`` on the line before its
fenced block, so the docs and the tests cannot drift apart.
"""

from __future__ import annotations

import re
from pathlib import Path

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
_BLOCK = re.compile(r"^<!-- test: (?P<name>\S+) -->\n```[a-z]*\n(?P<body>.*?)^```$", re.M | re.S)


def doc_blocks(page: Path = OPERATIONS) -> dict[str, str]:
    """NAME → the text of the fenced block marked ``<!-- test: NAME -->``."""
    return {m["name"]: m["body"] for m in _BLOCK.finditer(page.read_text(encoding="utf-8"))}
