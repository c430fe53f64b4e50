"""The Engine API through the docker SDK: version negotiation and TLS as the docker CLI does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from docker.constants import DEFAULT_DOCKER_API_VERSION

from srvmon_agents.collector.engine import EngineError, connect, negotiate
from tests.fixtures.dockerd import Dockerd
from tests.helpers import free_port, missing

pytestmark = pytest.mark.docker


@pytest.mark.parametrize(
    ("server", "minimum", "expected"),
    [
        ("1.41", "1.12", "1.41"),  # an older daemon: its version
        ("1.47", "1.24", "1.45"),  # a newer daemon: the newest the SDK knows
        ("1.45", None, "1.45"),
    ],
)
def test_negotiate_takes_the_lower_of_daemon_and_sdk(
    server: str, minimum: str | None, expected: str
) -> None:
    """Like the docker CLI: min(daemon's ApiVersion, the client's newest)."""
    assert negotiate(server, minimum, "1.45", "1.24") == expected


@pytest.mark.parametrize(
    ("server", "minimum", "needle"),
    [
        ("1.9", "1.9", "at least 1.24"),  # 1.9 < 1.24 numerically, though "1.9" > "1.24"
        ("1.50", "1.46", "needs API 1.46"),
        ("", None, "unreadable"),
        ("v2", None, "unreadable"),
    ],
)
def test_negotiate_refuses_what_cannot_be_spoken(
    server: str, minimum: str | None, needle: str
) -> None:
    with pytest.raises(EngineError, match=needle):
        negotiate(server, minimum, "1.45", "1.24")


def test_connect_negotiates_with_the_real_daemon(dockerd: Dockerd) -> None:
    """The client speaks the version the docker CLI reports for this daemon (capped at the
    SDK's newest), and lists the same containers the CLI does."""
    server = dockerd.cli("version", "--format", "{{.Server.APIVersion}}").strip()
    client = connect(dockerd.base_url)
    expected = min(server, DEFAULT_DOCKER_API_VERSION, key=lambda v: tuple(map(int, v.split("."))))
    assert client.api_version == expected
    listed = {c["Id"] for c in client.containers(all=True)}
    assert listed == set(dockerd.cli("ps", "-aq", "--no-trunc").split())
    client.close()


def test_an_unreachable_engine_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="unreachable"):
        connect(f"unix://{tmp_path}/no.sock", timeout=2.0)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(folder: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, in the file names
    the docker CLI expects in DOCKER_CERT_PATH (ca.pem, cert.pem, key.pem)."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=ca",
             "-keyout", "ca-key.pem", "-out", "ca.pem", cwd=folder)  # fmt: skip
    (folder / "server.ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    (folder / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, subject in (("server", "/CN=127.0.0.1"), ("client", "/CN=srvmon")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
                 "-keyout", f"{name}-key.pem", "-out", f"{name}.csr", cwd=folder)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
                 "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
                 "-out", f"{name}-cert.pem", cwd=folder)  # fmt: skip
    shutil.copy(folder / "client-cert.pem", folder / "cert.pem")
    shutil.copy(folder / "client-key.pem", folder / "key.pem")


@pytest.fixture(scope="module")
def tls_engine(dockerd: Dockerd) -> Iterator[tuple[Dockerd, str, Path]]:
    """A second private dockerd that also listens on TCP with --tlsverify (client
    certificates required), with one running container."""
    if shutil.which("openssl") is None:
        missing("openssl", "the openssl command is needed to make test certificates")
    root = Path(tempfile.mkdtemp(prefix="srvmon-tls-", dir="/tmp"))
    certs = root / "certs"
    certs.mkdir()
    make_certificates(certs)
    address = f"tcp://127.0.0.1:{free_port()}"
    engine = Dockerd(
        root / "d",
        extra_args=(
            "--tlsverify",
            f"--tlscacert={certs / 'ca.pem'}",
            f"--tlscert={certs / 'server-cert.pem'}",
            f"--tlskey={certs / 'server-key.pem'}",
            "--host",
            address,
        ),
    )
    engine.root.mkdir()
    try:
        engine.start()
        engine.import_busybox()
        engine.run(engine.image, "sleep", "100000", name="behind-tls")
        yield engine, address, certs
    finally:
        engine.stop()
        subprocess.run(
            ["umount", "-R", str(engine.root / "exec")], capture_output=True, check=False
        )
        shutil.rmtree(root, ignore_errors=True)


def _tls_env(address: str, certs: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["DOCKER_HOST"] = address
    if certs is not None:
        env["DOCKER_TLS_VERIFY"] = "1"
        env["DOCKER_CERT_PATH"] = str(certs)
    return env


def test_tls_from_the_docker_cli_variables(tls_engine: tuple[Dockerd, str, Path]) -> None:
    """DOCKER_HOST + DOCKER_TLS_VERIFY + DOCKER_CERT_PATH, exactly as the docker CLI reads
    them: the CLI and the collector's client see the same container over verified TLS."""
    _engine, address, certs = tls_engine
    env = _tls_env(address, certs)
    cli = subprocess.run(
        ["docker", "ps", "--format", "{{.Names}}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert cli.stdout.split() == ["behind-tls"]
    client = connect(environ=env)
    assert client.base_url.startswith("https://")
    assert [c["Names"] for c in client.containers()] == [["/behind-tls"]]
    client.close()
    with pytest.raises(EngineError):
        connect(environ=_tls_env(address, None), timeout=3.0)  # no client certificate


def test_collector_command_reports_containers_behind_tls(
    tls_engine: tuple[Dockerd, str, Path], tmp_path: Path
) -> None:
    """``srvmon collector --once`` with the CLI's TLS variables reports the container; without
    them it says the engine is unreachable and reports the host alone."""
    _engine, address, certs = tls_engine
    srvmon = [str(Path(sys.executable).parent / "srvmon"), "collector", "--once", "--interval=0.3"]
    env = {**_tls_env(address, certs), "SRVMON_HOST_ID_FILE": str(tmp_path / "id")}
    done = subprocess.run(srvmon, env=env, capture_output=True, timeout=60, check=True)
    batch = json.loads(done.stdout)
    assert [c["name"] for c in batch["containers"]] == ["behind-tls"]
    assert batch["agent"]["container_source"] == "cgroup"
    plain = subprocess.run(
        srvmon,
        env={**_tls_env(address, None), "SRVMON_HOST_ID_FILE": str(tmp_path / "id")},
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert json.loads(plain.stdout)["containers"] == []
    assert b"unreachable" in plain.stderr
