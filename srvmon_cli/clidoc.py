"""Render the CLI reference (every option and env var) from the click definitions.

docs/configuration.md embeds the output between two markers; a test re-renders it and
fails when the docs drift from the code. Regenerate with:

    python -m srvmon_cli.clidoc --write docs/configuration.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import click

from srvmon_cli.main import SUBCOMMANDS, main

BEGIN = "<!-- BEGIN GENERATED CLI REFERENCE -->"
END = "<!-- END GENERATED CLI REFERENCE -->"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _default(param: click.Parameter, ctx: click.Context) -> str:
    """The default as a reader needs it: ``off``/``on`` for a flag, nothing when unset."""
    default = param.get_default(ctx, call=False)
    if isinstance(param, click.Option) and param.is_flag:
        return "on" if default is True else "off"
    if default is None or default == () or callable(default) or _unset(default):
        return ""
    if isinstance(default, tuple | list):
        return ", ".join(str(v) for v in default)
    return str(default)


def _unset(value: object) -> bool:
    """click's own "no default" marker (its repr is ``Sentinel.UNSET``)."""
    return repr(value) == "Sentinel.UNSET"


def render_command(name: str, command: click.Command) -> str:
    ctx = click.Context(command)
    summary = (command.help or "").split("\n\n")[0]
    lines = [f"### `srvmon {name}`", "", _cell(summary), ""]
    lines += ["| option | env var | default | meaning |", "|---|---|---|---|"]
    for param in command.params:
        if not isinstance(param, click.Option) or param.hidden:
            continue
        flags = " / ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
        envvar = param.envvar
        env = (
            ", ".join(f"`{e}`" for e in envvar)
            if isinstance(envvar, list | tuple)
            else (f"`{envvar}`" if envvar else "")
        )
        default = _cell(_default(param, ctx))
        lines.append(f"| {flags} | {env} | {default} | {_cell(param.help or '')} |")
    return "\n".join(lines) + "\n"


def render_reference() -> str:
    ctx = click.Context(main)
    parts = []
    for name in sorted(SUBCOMMANDS):
        command = main.get_command(ctx, name)
        if isinstance(command, click.Group):  # a group: each of its subcommands
            for sub in sorted(command.commands):
                parts.append(render_command(f"{name} {sub}", command.commands[sub]))
        elif command is not None:
            parts.append(render_command(name, command))
    return "\n".join(parts)


def embed(document: str, reference: str) -> str:
    """Replace the generated block in a document with ``reference``."""
    head, sep, rest = document.partition(BEGIN)
    if not sep:
        raise ValueError(f"the document has no {BEGIN} marker")
    _, sep, tail = rest.partition(END)
    if not sep:
        raise ValueError(f"the document has no {END} marker")
    return f"{head}{BEGIN}\n{reference}{END}{tail}"


def _main() -> None:
    parser = argparse.ArgumentParser(description="Render the srvmon CLI reference.")
    parser.add_argument("--write", type=Path, help="update this Markdown file in place")
    args = parser.parse_args()
    reference = render_reference()
    if args.write:
        args.write.write_text(embed(args.write.read_text(), reference))
    else:
        print(reference)


if __name__ == "__main__":
    _main()
