"""The examples run and say what their prose promises."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from srvmon_core.codec import encode_batch
from srvmon_core.testing import make_batch, make_host_sample
from tests.helpers import missing

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run_notebook(path: Path) -> dict[str, object]:
    namespace: dict[str, object] = {}
    cwd = os.getcwd()
    os.chdir(path.parent)
    try:
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                exec(compile("".join(cell["source"]), f"{path.name}:cell", "exec"), namespace)
    finally:
        os.chdir(cwd)
    return namespace


def test_notebook_code_cells_run_and_find_the_documented_alerts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The notebook replays the CSV: web-1's CPU spike and db-1's disk, exactly as its text says."""
    namespace = _run_notebook(EXAMPLES / "alerts_on_a_series.ipynb")
    events = namespace["events"]
    got = [
        (e.at.strftime("%H:%M:%S"), e.machine_key, e.rule_id, e.from_state, e.to_state, e.level)
        for e in events  # type: ignore[attr-defined]
    ]
    assert got == [
        ("09:00:00", "db-1", "db-disk", "ok", "firing", "warning"),
        ("09:03:20", "web-1", "cpu", "ok", "pending", "critical"),
        ("09:04:20", "web-1", "cpu", "pending", "firing", "critical"),
        ("09:08:20", "web-1", "cpu", "firing", "firing", "warning"),
        ("09:09:20", "web-1", "cpu", "firing", "resolved", "none"),
        ("09:10:00", "db-1", "db-disk", "firing", "firing", "critical"),
    ]
    assert "09:04:20  web-1" in capsys.readouterr().out


def _outputs(cell: dict[str, Any]) -> list[tuple[str, str]]:
    """What a code cell shows: (kind, text) of each stream and result (ids, counts and
    timing metadata are left out)."""
    shown = []
    for output in cell.get("outputs", []):
        kind = output["output_type"]
        if kind == "stream":
            shown.append((output["name"], "".join(output["text"])))
        elif kind in ("execute_result", "display_data"):
            shown.append((kind, "".join(output["data"].get("text/plain", ""))))
        else:  # an error
            shown.append((kind, f"{output.get('ename')}: {output.get('evalue')}"))
    return shown


def test_the_notebook_runs_and_its_outputs_match() -> None:
    """The shipped notebook carries its outputs, and executing it in a real kernel (nbclient,
    the `notebook` extra) gives exactly those outputs, cell by cell."""
    try:
        import nbclient
        import nbformat
    except ImportError as exc:
        missing("the notebook extra", f"{exc.name} is not installed (pip install -e '.[notebook]')")
        raise
    path = EXAMPLES / "alerts_on_a_series.ipynb"
    shipped = nbformat.read(path, as_version=4)
    code = [c for c in shipped.cells if c.cell_type == "code"]
    assert code and all(c.get("outputs") is not None for c in code)
    assert any(_outputs(c) for c in code), "the notebook ships without outputs"
    fresh = nbformat.read(path, as_version=4)
    for cell in fresh.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    nbclient.NotebookClient(
        fresh, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(EXAMPLES)}}
    ).execute()
    ran = [c for c in fresh.cells if c.cell_type == "code"]
    assert [_outputs(c) for c in ran] == [_outputs(c) for c in code]


def _cron(stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / "cron_check.py"), "--rules", str(EXAMPLES / "rules.toml")],
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )


def _batch(cpu: float, disk: float) -> bytes:
    from srvmon_core.schema import DiskUsage

    disk_usage = DiskUsage(
        mount="/", device="sda1", fstype="ext4", total_bytes=100, used_bytes=0, used_percent=disk
    )
    host = make_host_sample(cpu_percent=cpu, disks=(disk_usage,))
    return encode_batch(
        make_batch(host_id="web-1", hostname="web-1", host=host, timestamp=datetime.now(UTC))
    )


@pytest.mark.parametrize(
    ("cpu", "disk", "status", "text"),
    [
        (10.0, 50.0, 0, "OK"),
        (90.0, 50.0, 1, "WARNING CPU busy on web-1: 90.0"),
        (10.0, 96.0, 2, "CRITICAL Disk filling up on web-1: 96.0"),
    ],
)
def test_cron_check_exit_status_follows_the_worst_alert(
    cpu: float, disk: float, status: int, text: str
) -> None:
    """0 all clear, 1 warning, 2 critical; for_seconds is ignored for a one-shot check."""
    result = _cron(_batch(cpu, disk) + b"\n")
    assert result.returncode == status, result.stderr
    assert text in result.stdout.decode()


def test_cron_check_bad_input_is_a_clear_error_not_a_traceback() -> None:
    """Garbage on stdin gives exit 3 and the decoder's message, no traceback."""
    result = _cron(b"{not json\n")
    assert result.returncode == 3
    assert "not valid JSON" in result.stderr.decode() or "JSON" in result.stderr.decode()
    assert b"Traceback" not in result.stderr


def test_webhook_receiver_describes_alertmanager_payloads() -> None:
    """The receiver example prints one line per alert of an Alertmanager-style payload."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        import webhook_receiver
    finally:
        sys.path.remove(str(EXAMPLES))
    payload = {
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "CPU busy", "severity": "critical", "machine": "web-1"},
                "annotations": {"summary": "cpu_percent 97 >= 95"},
            }
        ],
    }
    assert webhook_receiver.describe(payload) == [
        "[FIRING] critical CPU busy on web-1: cpu_percent 97 >= 95"
    ]
