"""``srvmon server``'s replica-mode option group: how it is shown, and its clear errors."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from srvmon_cli import main as cli_main
from srvmon_server import command


def test_the_group_and_the_server_share_the_starter_key() -> None:
    """The srvmon group leaves the replica starter where ``srvmon server`` looks for it."""
    assert cli_main.REPLICA_STARTER == command.REPLICA_STARTER


def test_help_lists_the_replica_options_in_their_own_section() -> None:
    result = CliRunner().invoke(cli_main.main, ["server", "--help"])
    assert result.exit_code == 0, result.output
    general, _, replica = result.output.partition(command.REPLICA_GROUP_TITLE)
    for option in ("--kafka-bootstrap", "--kafka-topic", "--kafka-group", "--replica-id"):
        assert option in replica and option not in general
    assert "--db-url" in general and "--db-url" not in replica


def test_sqlite_is_refused_with_one_line(tmp_path: Path) -> None:
    """Replicas share one database; SQLite allows one writing process."""
    result = CliRunner().invoke(
        cli_main.main,
        ["server", "--kafka-bootstrap", "127.0.0.1:1", "--db-url", f"sqlite:///{tmp_path}/x.db"],
    )
    assert result.exit_code == 1
    assert "replica mode needs a database shared by the replicas" in result.output


def test_without_the_srvmon_group_replica_mode_says_how_to_get_it() -> None:
    """``srvmon_server`` alone (no composition layer) cannot start the Kafka side."""
    result = CliRunner().invoke(
        command.server,
        ["--kafka-bootstrap", "127.0.0.1:1", "--db-url", "mysql+pymysql://u@127.0.0.1:1/x"],
    )
    assert result.exit_code == 1
    assert "started by the srvmon command" in result.output


def test_a_kafka_option_must_be_key_value() -> None:
    result = CliRunner().invoke(
        cli_main.main,
        ["server", "--kafka-bootstrap", "127.0.0.1:1", "--kafka-option", "nonsense"],
    )
    assert result.exit_code == 2
    assert "expected KEY=VALUE, got 'nonsense'" in result.output
