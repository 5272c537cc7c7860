"""``patchctl plan``: the earliest each wave gets an update from the policy's ages, bakes, waves
and windows, against the SLA. The inventory is read by the real ``ansible-inventory``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from patchctl.cli import cli
from patchctl.config import load_policy
from patchctl.plan import update_plan
from patchctl.rules.clock import parse

INVENTORY = """\
all:
  children:
    pilot:
      hosts:
        web01: {patch_role: server, patch_window: sunday}
    fleet:
      hosts:
        web02: {patch_role: server, patch_window: sunday}
        desk01: {patch_role: client}
"""

POLICY = """\
baselines:
  debian:
    classifications: [security, bugfix]
    approve_after_days: 3
fast_lane:
  urgency: [emergency]
fast_lane_bake_days: 1
sla:
  security: 14
  bugfix: 30
windows:
  - name: sunday
    start: "0 2 * * 0"
    duration: 4h
    timezone: UTC
waves:
  - name: pilot
    hosts: pilot
    bake_days: 7
  - name: fleet
    hosts: fleet
"""

NOW = parse("2026-12-07T10:00:00Z")  # a Monday


@pytest.fixture
def files(tmp_path: Path, patchctl_home: Path) -> tuple[str, str]:
    (tmp_path / "inventory.yml").write_text(INVENTORY)
    (tmp_path / "policy.yml").write_text(POLICY)
    return str(tmp_path / "inventory.yml"), str(tmp_path / "policy.yml")


def test_security_updates_over_the_sla(files: tuple[str, str]) -> None:
    """Approved after 3 days (Thursday), the pilot's window opens Sunday 13th 02:00, 7 days of
    bake to Sunday 20th 02:00, when the fleet's window (its client installs at once) is open:
    12.7 days, within 14. Seen failing with the windows ignored (pilot on Thursday: 10 days)."""
    inventory, policy = files
    got = update_plan("sqlite:///unused.db", inventory, load_policy(policy), NOW, classification="security")
    assert [(w.name, w.hosts, w.starts_at.isoformat()) for w in got.waves] == [
        ("pilot", 1, "2026-12-13T02:00:00+00:00"),
        ("fleet", 2, "2026-12-20T02:00:00+00:00"),
    ]
    assert got.verdict == "security updates reach the fleet in 12.7 days: within the 14-day SLA"


def test_over_the_sla_and_the_cli(files: tuple[str, str]) -> None:
    """With a 10-day security SLA the same plan is over it; --json carries it; no UPDATE nor
    --class is one line, exit 2."""
    inventory, policy = files
    Path(policy).write_text(POLICY.replace("security: 14", "security: 10"))
    runner = CliRunner()
    base = ["-i", inventory, "--policy", policy, "--db", "sqlite:///unused.db", "--now", NOW.isoformat()]
    out = runner.invoke(cli, [*base, "plan", "--class", "security"])
    assert out.exit_code == 0, out.output
    assert "security updates reach the fleet in 12.7 days: over the 10-day SLA" in out.output
    doc = json.loads(runner.invoke(cli, [*base, "--json", "plan", "--class", "security"]).output)
    assert doc["within_sla"] is False and doc["fleet_days"] == 12.7
    bad = runner.invoke(cli, [*base, "plan"])
    assert bad.exit_code == 2 and bad.output.count("\n") == 1
