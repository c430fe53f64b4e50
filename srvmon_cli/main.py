"""The ``srvmon`` command: one click group, a subcommand per role.

The group lives in the composition layer: each role's command lives with its role
(``srvmon_agents.collector.command``, ``srvmon_agents.consumer.command``,
``srvmon_server.command``) and standalone mode here (``srvmon_cli.standalone``).
Subcommands are imported only when invoked, so ``srvmon collector`` works in an
install with the ``agents`` extra alone and ``srvmon server`` with ``server`` alone.
Domain errors become ``click.ClickException`` here and nowhere else.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import click

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "collector": (
        "srvmon_agents.collector.command",
        "collect metrics of this host and its containers",
    ),
    "consumer": ("srvmon_agents.consumer.command", "relay batches from Kafka to the server"),
    "server": ("srvmon_server.command", "run the HTTP server: ingest, REST, SSE, dashboard"),
    "standalone": ("srvmon_cli.standalone", "collector + server + dashboard in one process"),
    "token": ("srvmon_server.tokencli", "create, list, rotate and revoke API tokens"),
}


def show_envvars(command: click.Command) -> None:
    """Every option's environment variable appears in ``--help`` (``[env var: ...]``)."""
    for param in command.params:
        if isinstance(param, click.Option) and param.envvar:
            param.show_envvar = True


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in SUBCOMMANDS:
            return None
        module_name, _ = SUBCOMMANDS[cmd_name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            raise click.ClickException(
                f"'srvmon {cmd_name}' needs a module that is not installed ({exc.name}); "
                "install srvmon[all]"
            ) from exc
        command = getattr(module, cmd_name.replace("-", "_"))
        assert isinstance(command, click.Command)
        show_envvars(command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SUBCOMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


REPLICA_STARTER = "srvmon.replica_starter"
"""The click meta key ``srvmon server`` reads its replica-mode starter from
(``srvmon_server.command.REPLICA_STARTER``; a test keeps the two equal)."""


def start_replica(context: Any, url: str, options: Any) -> Callable[[], object]:
    """Replica mode's Kafka side (``srvmon_cli.replica``), imported only when used."""
    from srvmon_cli.replica import start_replica as start

    return start(context, url, options)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="srvmon")
@click.pass_context
def main(ctx: click.Context) -> None:
    """srvmon: live monitoring of a server room."""
    ctx.meta[REPLICA_STARTER] = start_replica
