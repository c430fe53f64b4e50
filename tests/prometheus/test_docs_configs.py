"""The Prometheus and Alertmanager snippets of docs/operations.md pass the real checkers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.prometheus.blocks import doc_blocks

pytestmark = pytest.mark.prometheus


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def test_the_page_has_the_three_snippets() -> None:
    assert set(doc_blocks()) >= {"prometheus.yml", "srvmon-rules.yml", "alertmanager.yml"}


def test_scrape_config_and_rules_pass_promtool(promtool: str, tmp_path: Path) -> None:
    """``promtool check config`` loads the scrape config and, through its rule_files, the
    documented rules; ``promtool check rules`` finds exactly the two rules."""
    blocks = doc_blocks()
    (tmp_path / "prometheus.yml").write_text(blocks["prometheus.yml"])
    (tmp_path / "srvmon-rules.yml").write_text(blocks["srvmon-rules.yml"])
    config = run([promtool, "check", "config", "prometheus.yml"], tmp_path)
    assert config.returncode == 0, config.stdout + config.stderr
    assert "SUCCESS: 2 rules found" in config.stdout + config.stderr
    rules = run([promtool, "check", "rules", "srvmon-rules.yml"], tmp_path)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS: 2 rules found" in rules.stdout + rules.stderr


def test_a_broken_rule_fails_promtool(promtool: str, tmp_path: Path) -> None:
    """The check can fail: a rule with a PromQL syntax error is refused."""
    broken = doc_blocks()["srvmon-rules.yml"].replace(
        "srvmon_machine_up == 0", "srvmon_machine_up =="
    )
    (tmp_path / "rules.yml").write_text(broken)
    result = run([promtool, "check", "rules", "rules.yml"], tmp_path)
    assert result.returncode != 0


def test_alertmanager_route_passes_amtool(amtool: str, tmp_path: Path) -> None:
    (tmp_path / "alertmanager.yml").write_text(doc_blocks()["alertmanager.yml"])
    result = run([amtool, "check-config", "alertmanager.yml"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert " - 3 receivers" in result.stdout


def test_the_route_sends_srvmon_critical_to_the_pager(amtool: str, tmp_path: Path) -> None:
    """``amtool config routes test``: srvmon's critical alerts reach the pager, its
    warnings the chat, anything else the default receiver."""
    (tmp_path / "alertmanager.yml").write_text(doc_blocks()["alertmanager.yml"])
    cases = {
        ("source=srvmon", "severity=critical", "alertname=cpu"): "pager",
        ("source=srvmon", "severity=warning", "alertname=cpu"): "team-chat",
        ("severity=critical", "alertname=NodeDown"): "default",
    }
    for labels, receiver in cases.items():
        argv = [amtool, "config", "routes", "test", "--config.file=alertmanager.yml", *labels]
        result = run(argv, tmp_path)
        assert result.stdout.strip() == receiver, (labels, result.stdout, result.stderr)
