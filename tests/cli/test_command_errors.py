"""Every bad input or environment is one line naming the option that fixes it, checked
before any side effect (no token printed or written for a start that fails); every role's
--help shows its environment variables; --data-dir for server; the access log is off by
default and on with --access-log."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import urllib.request
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from srvmon_cli.main import SUBCOMMANDS, main
from tests.helpers import missing
from tests.server.test_command import SRVMON, listening_port, run_env, wait_health


@pytest.mark.parametrize("role", sorted(SUBCOMMANDS))
def test_every_role_help_shows_its_env_vars(role: str) -> None:
    """`srvmon <role> --help` prints `env var: NAME` for every option that has one, and
    every option has help text."""
    result = CliRunner().invoke(main, [role, "--help"], terminal_width=300)
    assert result.exit_code == 0, result.output
    command = main.get_command(click.Context(main), role)
    assert command is not None
    flat = " ".join(result.output.split())
    for param in command.params:
        if not isinstance(param, click.Option):
            continue
        assert param.help, (role, param.opts)
        if isinstance(param.envvar, str):
            assert f"env var: {param.envvar}" in flat, (role, param.envvar)
    if role in ("server", "standalone", "consumer"):
        assert "--log-level" in flat and "least severe log messages" in flat.lower()


def start(
    args: list[str], env: dict[str, str], wrap: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*(wrap or []), *SRVMON, *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=60,
        check=False,
    )


def assert_one_line(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    """Exit 1, one `Error:` line on stderr with every expected piece, nothing on stdout."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for piece in expected:
        assert piece in lines[0], (piece, lines[0])
    assert result.stdout == ""  # no token, no URL


@pytest.mark.parametrize("role", ["server", "standalone"])
def test_a_taken_port_names_the_option_and_writes_no_token(role: str, tmp_path: Path) -> None:
    """The port is bound before any token is made: the error says --port / SRVMON_PORT and
    the token file does not exist."""
    env = run_env(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = start([role, "--port", str(port), "--data-dir", str(tmp_path / "d")], env)
    assert_one_line(result, f"127.0.0.1:{port}", "--port or SRVMON_PORT", "in use")
    assert not (tmp_path / "d" / "server-token").exists()


def test_a_bad_db_url_names_the_option_and_writes_no_token(tmp_path: Path) -> None:
    """An unusable --db-url fails before a token is generated or printed."""
    result = start(["server", "--port", "0", "--db-url", "nonsense://x"], run_env(tmp_path))
    assert_one_line(result, "unsupported database 'nonsense'", "--db-url or SRVMON_DB_URL")
    assert not (tmp_path / "data" / "srvmon" / "server-token").exists()


def read_only_mount() -> list[str]:
    """A wrapper that runs a command with $MOUNT read-only (a private mount namespace, so
    nothing outside the command sees it), or skip."""
    unshare = shutil.which("unshare")
    if unshare is None:
        missing("unshare", "util-linux is not installed")
    probe = subprocess.run(
        [unshare, "-m", "sh", "-c", "mount -t tmpfs -o ro tmpfs /mnt"],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        missing("a private mount namespace", probe.stderr.decode().strip() or "unshare -m failed")
    return [unshare, "-m", "sh", "-c", 'mount -t tmpfs -o ro tmpfs "$MOUNT" && exec "$@"', "sh"]


@pytest.mark.parametrize("role", ["server", "standalone"])
def test_a_read_only_data_dir_is_one_line(role: str, tmp_path: Path) -> None:
    """A data dir on a read-only file system (errno 30): one line naming --data-dir, both
    for the default dir (XDG_DATA_HOME on it) and for one given with --data-dir."""
    wrap = read_only_mount()
    mount = tmp_path / "ro"
    mount.mkdir()
    env = run_env(tmp_path)
    env["MOUNT"] = str(mount)
    env["XDG_DATA_HOME"] = str(mount)
    default = start([role, "--port", "0"], env, wrap)
    assert_one_line(default, f"{mount}/srvmon", "Read-only file system", "--data-dir")
    given = start([role, "--port", "0", "--data-dir", str(mount)], env, wrap)
    assert_one_line(given, str(mount), "Read-only file system", "--data-dir or SRVMON_DATA_DIR")


def test_server_data_dir_and_access_log(tmp_path: Path) -> None:
    """`server --data-dir` keeps the database and the token there; requests leave no
    access line by default and one each with --access-log."""
    env = run_env(tmp_path)
    folder = tmp_path / "elsewhere"
    for flags, logged in (([], False), (["--access-log"], True)):
        proc = subprocess.Popen(
            [*SRVMON, "server", "--port", "0", "--data-dir", str(folder), *flags],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            port = listening_port(proc)
            wait_health(port, proc)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/alerts", timeout=5):
                pass
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, err
        assert ("GET /api/v1/alerts" in err) is logged, err
    assert (folder / "srvmon.db").is_file() and (folder / "server-token").is_file()
    assert not (tmp_path / "data" / "srvmon").exists()  # the default dir was not touched
