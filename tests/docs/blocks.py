"""The code blocks of the docs, found and classified one way for every page.

Every fenced block in ``docs/*.md``, ``README.md`` and ``*/README.md`` is one of:

- **executed**: a ``sh``/``bash``/``shell`` or ``python``/``py`` block with no marker. The
  blocks of one page run in order, in one scratch copy of the repository, so a later block
  may use what an earlier one made (``tests/docs/test_blocks.py``);
- **run by another test**: a shell or Python block preceded by
  ``<!-- doc-test: run by tests/path.py::test_name -->`` (the test must exist);
- **not runnable**: a shell or Python block preceded by
  ``<!-- doc-test: not runnable: <why> -->`` (the reason is required; the short form
  ``<!-- not runnable: <why> -->`` is accepted too);
- **data**: any other language (``json``, ``toml``, ``text``, ``mermaid``, ``ini``, …): shown,
  never run.

A fence without a language is an error: say ``text`` for diagrams and output.
"""

from __future__ import annotations

import re
from pathlib import Path

from attrs import frozen

ROOT = Path(__file__).resolve().parents[2]
SHELL = frozenset({"sh", "bash", "shell"})
PYTHON = frozenset({"python", "py"})
MARKER = re.compile(
    r"<!--\s*(?:doc-test:\s*)?(?P<verb>not runnable|run by)\s*:?\s*(?P<arg>.*?)\s*-->"
)
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)(?P<lang>[^\s`]*)\s*$")


@frozen
class Block:
    page: Path
    line: int
    """1-based line of the opening fence."""
    lang: str
    code: str
    marker: str | None
    """``not runnable``, ``run by`` or None."""
    argument: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def runner(self) -> str | None:
        """``sh`` or ``python`` for a block the docs test executes, else None."""
        if self.marker is not None:
            return None
        if self.lang in SHELL:
            return "sh"
        if self.lang in PYTHON:
            return "python"
        return None

    @property
    def code_like(self) -> bool:
        return self.lang in SHELL | PYTHON


def pages() -> list[Path]:
    """Every page whose blocks are checked: docs/*.md, README.md and the READMEs of the
    repository's top-level folders."""
    found = sorted((ROOT / "docs").glob("*.md"))
    found.append(ROOT / "README.md")
    found.extend(sorted(p for p in ROOT.glob("*/README.md") if not p.parent.name.startswith(".")))
    return found


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of one page, with the doc-test marker on the lines before each."""
    lines = page.read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence = opening.group("fence")
        end = i + 1
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        marker, argument = None, ""
        before = i - 1
        while before >= 0 and not lines[before].strip():
            before -= 1
        if before >= 0:
            found = MARKER.search(lines[before])
            if found is not None:
                marker, argument = found.group("verb"), found.group("arg")
        indent = len(opening.group("indent"))
        code = "\n".join(line[indent:] for line in lines[i + 1 : end])
        out.append(Block(page, i + 1, opening.group("lang").lower(), code, marker, argument))
        i = end + 1
    return out


def all_blocks() -> list[Block]:
    return [block for page in pages() for block in blocks(page)]
