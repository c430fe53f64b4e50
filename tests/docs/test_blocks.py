"""Docs that run: every shell and Python block of the docs and READMEs is executed here,
or names the test that runs it, or says why it cannot run (tests/docs/blocks.py has the
rules). A page added by anyone is covered without touching this file."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.blocks import ROOT, Block, all_blocks, blocks, pages

BLOCK_TIMEOUT = 120


def test_every_block_is_classified() -> None:
    """No fence without a language; markers only on shell/Python blocks, with a reason;
    every "run by" names a test that exists."""
    problems = []
    for block in all_blocks():
        if not block.lang:
            problems.append(
                f"{block.where}: a fence without a language (use text, sh, python, ...)"
            )
        if block.marker is not None and not block.code_like:
            problems.append(f"{block.where}: a doc-test marker on a {block.lang} block")
        if block.marker == "not runnable" and len(block.argument) < 10:
            problems.append(f"{block.where}: say why it cannot run")
        if block.marker == "run by":
            path, _, name = block.argument.partition("::")
            test_file = ROOT / path
            if not test_file.is_file() or not re.search(
                rf"^def {re.escape(name)}\(", test_file.read_text(), re.MULTILINE
            ):
                problems.append(f"{block.where}: no test {block.argument}")
    assert problems == []


def scratch_copy(target: Path) -> Path:
    """The repository's tracked files (what a user has after a clone), copied."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False)
    names = listed.stdout.decode().split("\0") if listed.returncode == 0 else []
    if not names:  # not a git checkout: the docs' folders will do
        names = [
            str(p.relative_to(ROOT))
            for d in ("examples", "compose", "deploy")
            for p in (ROOT / d).rglob("*")
            if p.is_file()
        ]
    for name in filter(None, names):
        source = ROOT / name
        if source.is_file():
            destination = target / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)
    return target


def environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SRVMON_", "DATABASE_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(home)
    env["XDG_DATA_HOME"] = str(home / "data")
    env["PYTHONPATH"] = str(ROOT)
    env.pop("CORS_ALLOWED_ORIGINS", None)
    return env


def run(block: Block, cwd: Path, env: dict[str, str]) -> None:
    if block.runner == "sh":
        command = ["bash", "-e", "-o", "pipefail", "-c", block.code]
    else:
        command = [sys.executable, "-c", block.code]
    result = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, (
        f"{block.where} failed ({result.returncode}):\n{block.code}\n"
        f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
    )


RUNNABLE_PAGES = [page for page in pages() if any(b.runner for b in blocks(page))]


@pytest.mark.parametrize("page", RUNNABLE_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_blocks_of_a_page_run(page: Path, tmp_path: Path) -> None:
    """The page's shell and Python blocks run in order in a scratch copy of the repository
    and exit 0."""
    cwd = scratch_copy(tmp_path / "repo")
    env = environment(tmp_path / "home")
    for block in blocks(page):
        if block.runner is not None:
            run(block, cwd, env)
