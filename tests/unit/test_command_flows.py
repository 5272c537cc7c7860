"""Commands whose computing moved into flows: the flow's answer, and the command printing it.

The inventory is read by the real ``ansible-inventory``; the policy file by the policy parser.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from patchctl.cli import cli
from patchctl.config import load_policy
from patchctl.execution_nodes import CONTROL_NODE, node_hosts
from patchctl.maintenance_view import windows_view
from patchctl.render.deploy import deploy_lines
from patchctl.rules.clock import parse

INVENTORY = """\
all:
  hosts:
    srv-01: {patch_role: server, patch_window: nightly}
    srv-02: {patch_role: server, patch_window: nightly}
    cli-01: {patch_role: client}
    odd-01: {patch_role: server, patch_window: weekend, patchctl_execution_node: node-a}
    node-a: {ansible_host: 127.0.0.9}
"""

POLICY = """\
---
baselines:
  debian:
    classifications: [security]
    approve_after_days: 0
windows:
  - name: nightly
    start: "0 1 * * *"
    duration: 4h
    timezone: Europe/Berlin
    min_left: 30m
"""

INSIDE = "2025-03-14T01:30:00Z"  # 02:30 in Berlin: nightly is open until 05:00


@pytest.fixture
def files(tmp_path: Path, patchctl_home: Path) -> tuple[Path, Path]:
    inventory, policy = tmp_path / "inventory.yml", tmp_path / "policy.yml"
    inventory.write_text(INVENTORY)
    policy.write_text(POLICY)
    return inventory, policy


def test_windows_view_names_hosts_open_windows_and_undefined_ones(files: tuple[Path, Path]) -> None:
    """Breaking it (the undefined windows left out, or hosts not grouped by window) fails here:
    exit 0 instead of 2, or the wrong hosts under nightly."""
    inventory, policy = files
    view = windows_view(load_policy(str(policy)), str(inventory), parse(INSIDE), 2)
    (nightly,) = view.windows
    assert nightly["open"] and nightly["reboot_allowed"] and nightly["remaining"] == "2h30m"
    assert nightly["open_until"] == "2025-03-14T04:00:00Z"
    assert nightly["next_starts"] == ["2025-03-15T00:00:00Z", "2025-03-16T00:00:00Z"]
    assert nightly["hosts"] == ["srv-01", "srv-02"]
    assert view.undefined == {"weekend": ["odd-01"]}
    assert view.hosts_without_window == ["cli-01", "node-a"]
    assert view.exit_code == 2


def test_windows_command_prints_the_view(files: tuple[Path, Path]) -> None:
    inventory, policy = files
    args = ["--policy", str(policy), "-i", str(inventory), "--now", INSIDE, "windows"]
    text = CliRunner().invoke(cli, args)
    assert text.exit_code == 2
    assert (
        "nightly: '0 1 * * *' Europe/Berlin, 4h (min_left 30m): open until 05:00 Europe/Berlin (2h30m left)"
        in text.stdout
    )
    assert f"error: window 'weekend' is not defined in {policy} (used by odd-01)" in text.stderr
    data = json.loads(CliRunner().invoke(cli, [*args, "--json"]).stdout)
    assert data["now"] == INSIDE and data["undefined"] == {"weekend": ["odd-01"]}


def test_node_list_splits_the_hosts_by_execution_node(files: tuple[Path, Path]) -> None:
    """Breaking it (every host left on the control node) fails here: node-a has no host."""
    inventory, _policy = files
    rows = node_hosts(str(inventory))
    assert [(r.node, r.hosts) for r in rows] == [
        ("node-a", ["odd-01"]),
        (CONTROL_NODE, ["cli-01", "node-a", "srv-01", "srv-02"]),
    ]
    listed = CliRunner().invoke(cli, ["-i", str(inventory), "node", "list"])
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.splitlines() == [
        "node-a: 1 hosts: odd-01",
        "(control node): 4 hosts: cli-01, node-a, srv-01, srv-02",
    ]


def _deployed(**changes: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "rollout": 3,
        "wave": "pilot",
        "state": "finished",
        "halted_reason": None,
        "message": None,
        "already_done": ["web03"],
        "not_started": [],
        "hosts": [
            {
                "host": "srv-01",
                "status": "ok",
                "installed": ["apt:k:1.1"],
                "failed": {},
                "reboot_required": True,
                "error": None,
            },
            {
                "host": "srv-02",
                "status": "failed",
                "installed": [],
                "failed": {"apt:a:2": "dpkg"},
                "reboot_required": False,
                "error": "x",
            },
            {
                "host": "cli-01",
                "status": "unreachable",
                "installed": [],
                "failed": {},
                "reboot_required": False,
                "error": "ssh: timeout",
            },
        ],
        "reboots": [
            {
                "host": "srv-01",
                "role": "server",
                "action": "reboot",
                "reason": "window w is open",
                "result": {"status": "ok", "error": None},
            },
            {
                "host": "srv-03",
                "role": "server",
                "action": "reboot",
                "reason": "window w is open",
                "result": {"status": "failed", "error": "timeout"},
            },
            {"host": "cli-02", "role": None, "action": "pending", "reason": "never", "result": None},
        ],
    }
    doc.update(changes)
    return doc


def test_deploy_lines_are_the_deploy_commands_output() -> None:
    """The lines ``patchctl deploy`` (and ``rollout promote --deploy``) print for a deploy's
    document; a changed word or order in any line fails here."""
    assert deploy_lines(_deployed()) == [
        "srv-01: ok, installed apt:k:1.1 (reboot pending)",
        "srv-02: failed; failed apt:a:2: dpkg",
        "cli-01: unreachable: ssh: timeout",
        "already done before: web03",
        "srv-01: rebooted (window w is open)",
        "srv-03: reboot failed: timeout; still reboot pending",
        "cli-02: reboot pending (no role: never)",
        "rollout 3 wave pilot: finished, 1 ok of 3 run",
    ]
    assert deploy_lines(_deployed(state="halted", halted_reason="2 of 3 failed"), quiet=True) == [
        "rollout 3 wave pilot: halted, 1 ok of 3 run; halted: 2 of 3 failed"
    ]
    assert deploy_lines(_deployed(message="nothing to do")) == ["rollout 3 wave pilot: nothing to do"]
