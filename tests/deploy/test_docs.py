"""Docs are part of the feature: the CLI reference is generated and must not drift."""

from __future__ import annotations

import re
from pathlib import Path

from srvmon_cli.clidoc import embed, render_reference

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def test_configuration_reference_matches_the_click_definitions() -> None:
    """docs/configuration.md holds exactly the reference rendered from the CLI today."""
    document = (DOCS / "configuration.md").read_text()
    assert embed(document, render_reference()) == document, (
        "docs/configuration.md is stale; regenerate it:"
        " python -m srvmon_cli.clidoc --write docs/configuration.md"
    )


def test_every_option_and_env_var_is_in_the_reference() -> None:
    """Every subcommand's every option and env var appears in the reference."""
    import click

    from srvmon_cli.main import SUBCOMMANDS, main

    document = (DOCS / "configuration.md").read_text()
    for name in SUBCOMMANDS:
        command = main.get_command(click.Context(main), name)
        assert command is not None
        assert f"`srvmon {name}`" in document
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert f"`{param.opts[0]}`" in document, (name, param.opts[0])
                if isinstance(param.envvar, str):
                    assert f"`{param.envvar}`" in document, (name, param.envvar)


def test_docs_link_to_files_that_exist() -> None:
    """Relative links between docs pages point at real files."""
    for page in DOCS.glob("*.md"):
        for target in re.findall(r"\]\(([^)#:]+\.md)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"
