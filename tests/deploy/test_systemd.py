"""The systemd units of deploy/systemd/ (srvmon without Docker): `systemd-analyze verify`
accepts each one without a warning, each starts a real srvmon role, and every variable its
environment file and its Environment= lines set is one that role reads."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from srvmon_cli.main import main
from tests.helpers import missing

ROOT = Path(__file__).resolve().parents[2]
UNITS = sorted((ROOT / "deploy" / "systemd").glob("*.service"))
INSTALLED = "/opt/srvmon/bin/srvmon"
DATABASE_VARIABLES = {
    "DATABASE_HOST",
    "DATABASE_PORT",
    "DATABASE_NAME",
    "DATABASE_USERNAME",
    "DATABASE_PASSWORD",
}


def directives(unit: Path) -> list[tuple[str, str]]:
    return [
        (key.strip(), value.strip())
        for key, sep, value in (line.partition("=") for line in unit.read_text().splitlines())
        if sep and not key.lstrip().startswith(("#", ";", "["))
    ]


def role_of(unit: Path) -> str:
    (exec_start,) = [v for k, v in directives(unit) if k == "ExecStart"]
    program, role = exec_start.split()
    assert program == INSTALLED, exec_start
    return role


def envvars(role: str) -> set[str]:
    command = main.get_command(click.Context(main), role)
    assert command is not None, role
    names = {p.envvar for p in command.params if isinstance(getattr(p, "envvar", None), str)}
    return {str(n) for n in names}


def test_there_is_a_unit_per_role() -> None:
    assert [u.name for u in UNITS] == [
        "srvmon-collector.service",
        "srvmon-consumer.service",
        "srvmon-server.service",
    ]
    assert [role_of(u) for u in UNITS] == ["collector", "consumer", "server"]


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_every_variable_is_one_the_role_reads(unit: Path) -> None:
    """The shipped environment file and the unit's Environment= lines set only variables
    the role's options read (the server also reads the DATABASE_* names)."""
    role = role_of(unit)
    known = envvars(role) | (DATABASE_VARIABLES if role == "server" else set())
    (env_file,) = [v for k, v in directives(unit) if k == "EnvironmentFile"]
    shipped = unit.parent / Path(env_file.lstrip("-")).name
    names = re.findall(r"^([A-Z_][A-Z0-9_]*)=", shipped.read_text(), flags=re.MULTILINE)
    names += [v.split("=", 1)[0] for k, v in directives(unit) if k == "Environment"]
    assert names and set(names) <= known, set(names) - known


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_systemd_analyze_verify_accepts_the_unit(unit: Path, tmp_path: Path) -> None:
    """`systemd-analyze verify` (Debian's systemd) finds no error and no unknown directive;
    ExecStart points at this checkout's srvmon instead of /opt/srvmon, which must exist."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        missing("systemd-analyze", "install Debian's systemd package")
    srvmon = Path(sys.executable).with_name("srvmon")
    if not srvmon.exists():
        missing("the srvmon console script", f"{srvmon} is not installed")
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text().replace(INSTALLED, str(srvmon)))
    result = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False
    )
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and output == "", output
