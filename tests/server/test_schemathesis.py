"""Schema-driven fuzzing (issue 17): schemathesis, from PyPI, runs against a real
``srvmon server`` process and its own OpenAPI document, once with no token, once with a
read token and once with each scoped token (ingest, admin). Every answer must be below
500, carry a status, content type and body the document declares, and every request that
breaks the document's constraints must be refused (``negative_data_rejection``): the
document says what the handlers enforce.

Bounded: at most ``MAX_EXAMPLES`` cases per operation and phase, ``MAX_SECONDS`` per run.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from srvmon_core.codec import encode_batch
from tests.server.harness import make_batch
from tests.server.test_command import run_env
from tests.server.test_connection_flood import Stderr

ADMIN = "fuzz-admin-7d1e9c0b5a3f"
READ = "fuzz-read-2b8f4c6e1d0a"
INGEST = "fuzz-ingest-9e3a7c1f5b2d"
MAX_EXAMPLES = 6
MAX_SECONDS = 15
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
    ]
)
CONFIG = """
# Existing machines for the read operations that need one (so their own parameters are
# fuzzed, not only the 404 of an unknown key); everything else is generated.
[[operations]]
include-path-regex = "/machines/\\\\{key\\\\}/(series|rules)$"
parameters = { key = "fuzz-host" }
"""

pytestmark = pytest.mark.timeout(6 * MAX_SECONDS)


def _post(base: str, path: str, body: bytes) -> int:
    request = urllib.request.Request(
        base + path, data=body, method="POST", headers={"Authorization": f"Bearer {ADMIN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return int(resp.status)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> object:
    tmp = tmp_path_factory.mktemp("fuzz")
    proc = subprocess.Popen(
        [
            *[sys.executable, "-c", "from srvmon_cli.main import main; main()"],
            *["server", "--port", "0", "--db-url", f"sqlite:///{tmp / 'fuzz.db'}"],
            *["--token", ADMIN, "--read-token", READ, "--ingest-token", INGEST, "--read-auth"],
        ],
        env=run_env(tmp),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    stderr = Stderr(proc)
    base = f"http://127.0.0.1:{stderr.port()}"
    batch = make_batch("fuzz-host", containers=(("web", 1.0),))
    from datetime import UTC, datetime

    from attrs import evolve

    assert _post(base, "/api/v1/ingest", encode_batch(evolve(batch, timestamp=datetime.now(UTC))))
    silence = {"matchers": {"host": "nobody"}, "ends_at": "2099-01-01T00:00:00Z"}
    assert _post(base, "/api/v1/silences", json.dumps(silence).encode()) == 201
    (tmp / "schemathesis.toml").write_text(CONFIG)
    yield base, tmp
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = stderr.text()
    assert "Traceback" not in log, log[-3000:]


@pytest.mark.parametrize("who", ["no token", "read", "ingest", "admin"])
def test_fuzz_against_the_openapi_document(fuzz_server: object, who: str) -> None:
    """0 server errors and every answer as documented, for this caller; prints the run's
    test-case count."""
    base, tmp = fuzz_server  # type: ignore[misc]
    token = {"no token": None, "read": READ, "ingest": INGEST, "admin": ADMIN}[who]
    command = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert command, "schemathesis is in the test extra"
    args = [
        command,
        "--config-file",
        str(tmp / "schemathesis.toml"),
        "run",
        f"{base}/api/v1/openapi.json",
        "--checks",
        CHECKS,
        "--exclude-path",
        "/api/v1/events",  # a stream: it never ends
        "--max-examples",
        str(MAX_EXAMPLES),
        "--max-time",
        str(MAX_SECONDS),
        "--phases",
        "examples,coverage,fuzzing",
        "--request-timeout",
        "10",
        "--workers",
        "1",
        "--seed",
        "17",
        "--no-color",
        "--warnings",
        "off",
    ]
    if token:
        args += ["--header", f"Authorization: Bearer {token}"]
    run = subprocess.run(args, capture_output=True, text=True, timeout=5 * MAX_SECONDS, check=False)
    output = run.stdout + run.stderr
    generated = re.search(r"(\d+) generated", output)
    print(
        f"\nschemathesis, {who}: {generated.group(0) if generated else '?'}; exit {run.returncode}"
    )
    assert run.returncode == 0, output[-6000:]
    assert generated and int(generated.group(1)) > 100, output[-2000:]
