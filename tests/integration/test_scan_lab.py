"""`patchctl scan` against the real lab: what the store holds equals what apt says on each host."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
import yaml

from patchctl.lab import faults

from .conftest import LabEnv

pytestmark = [pytest.mark.integration, pytest.mark.lab]

APT_LINE = re.compile(
    r"^(?P<name>[^/\s]+)/(?P<suites>\S+) (?P<version>\S+) (?P<arch>\S+) \[upgradable from: (?P<old>[^\]]+)\]$"
)


def apt_upgradable(env: LabEnv, host: str) -> dict[str, str]:
    """name -> candidate version, straight from `apt list --upgradable` on the host."""
    out = env.ssh(host, "LANG=C apt list --upgradable 2>/dev/null").stdout
    found = {}
    for line in out.splitlines():
        m = APT_LINE.match(line.strip())
        if m:
            found[m["name"]] = m["version"]
    return found


def stored_missing(db: Path, host: str) -> dict[str, tuple[str, str, bool]]:
    """name -> (version, classification, major) as the store's view reports them."""
    con = sqlite3.connect(db)
    try:
        rows = con.execute(
            "SELECT name, version, classification, major FROM v_missing_updates WHERE host = ?", (host,)
        ).fetchall()
    finally:
        con.close()
    return {name: (version, cls, bool(major)) for name, version, cls, major in rows}


def test_scan_stores_exactly_what_apt_reports(lab_env: LabEnv, tmp_path: Path) -> None:
    lab_env.lab.reset()  # deploy tests may have changed the hosts
    db = tmp_path / "scan.db"
    result = lab_env.cli("scan", "--json", db=db)
    assert result.code == 0, result.stderr
    summary = result.json()
    assert isinstance(summary, dict)
    assert summary["hosts_ok"] == len(lab_env.lab.hosts())
    for host in lab_env.lab.hosts():
        truth = apt_upgradable(lab_env, host.name)
        assert truth, f"{host.name}: apt reports no upgradable package; the lab repo should offer some"
        stored = stored_missing(db, host.name)
        assert {n: v for n, (v, _c, _m) in stored.items()} == truth, host.name
        assert stored["patchctl-demo-ssl"][1] == "security"
        assert stored["patchctl-demo-db"][2] is True, "2.0 after 1.4 is a major upgrade"
        assert stored["patchctl-demo-app"][2] is False
        assert stored["patchctl-demo-app"][1] != "security"


def test_reboot_required_after_manual_install(lab_env: LabEnv, tmp_path: Path) -> None:
    lab_env.lab.reset()  # deploy tests may have changed the hosts
    db = tmp_path / "reboot.db"
    target = lab_env.lab.hosts()[-1].name
    assert lab_env.cli("scan", db=db).code == 0
    lab_env.ssh(target, "DEBIAN_FRONTEND=noninteractive apt-get install -y -q patchctl-demo-kernel")
    assert lab_env.ssh(target, "test -f /var/run/reboot-required", check=False).returncode == 0
    result = lab_env.cli("scan", "--json", db=db)
    assert result.code == 0, result.stderr
    report = lab_env.cli("report", "--json", db=db)
    assert report.code == 0, report.stderr
    data = report.json()
    assert isinstance(data, dict)
    rows = {row["name"]: row for row in data["hosts"]}
    assert rows[target]["reboot_pending"] is True
    others = [h.name for h in lab_env.lab.hosts() if h.name != target]
    assert all(rows[h]["reboot_pending"] is False for h in others)
    assert "patchctl-demo-kernel" not in stored_missing(db, target)
    con = sqlite3.connect(db)
    try:
        state = con.execute(
            "SELECT hu.state FROM host_updates hu JOIN hosts h ON h.id = hu.host_id "
            "JOIN updates u ON u.id = hu.update_id WHERE h.name = ? AND u.name = 'patchctl-demo-kernel'",
            (target,),
        ).fetchone()
    finally:
        con.close()
    assert state == ("installed",)
    # A reboot clears it: /run is fresh on every boot, as on a real host.
    before = lab_env.lab.boot_id(target)
    lab_env.ssh(target, "reboot", check=False)
    lab_env.lab.wait_reachable(60, [target])
    import time

    deadline = time.monotonic() + 30
    while lab_env.lab.boot_id(target) in (before, None) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert lab_env.lab.boot_id(target) not in (before, None)
    lab_env.lab.wait_reachable(60, [target])
    assert lab_env.cli("scan", db=db).code == 0
    data = lab_env.cli("report", "--json", db=db).json()
    assert isinstance(data, dict)
    assert {row["name"]: row for row in data["hosts"]}[target]["reboot_pending"] is False


def test_unreachable_host_is_recorded_and_others_scanned(lab_env: LabEnv, tmp_path: Path) -> None:
    lab_env.lab.reset()  # deploy tests may have changed the hosts
    db = tmp_path / "unreach.db"
    victim = lab_env.lab.hosts()[1].name
    faults.kill_sshd(lab_env.lab, victim)
    try:
        result = lab_env.cli("scan", "--json", db=db)
        assert result.code == 1, result.stderr
        summary = result.json()
        assert isinstance(summary, dict)
        states = {h["name"]: h["status"] for h in summary["hosts"]}
        assert states[victim] == "unreachable"
        assert all(s == "ok" for h, s in states.items() if h != victim)
        data = lab_env.cli("report", "--json", db=db).json()
        assert isinstance(data, dict)
        rows = {row["name"]: row for row in data["hosts"]}
        assert rows[victim]["reachability"] == "unreachable"
        assert all(rows[h]["missing"]["total"] > 0 for h in rows if h != victim)
    finally:
        faults.power_off(lab_env.lab, victim)
        faults.power_on(lab_env.lab, victim)


def test_malformed_inventory_is_a_usage_error(lab_env: LabEnv, tmp_path: Path) -> None:
    bad = tmp_path / "broken.yml"
    bad.write_text("all:\n  hosts:\n    web01: {ansible_host: 127.78.1.1\n  children: [\n")
    result = lab_env.cli("scan", "-i", str(bad), db=tmp_path / "x.db")
    assert result.code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert str(bad) in lines[0]
    assert "Traceback" not in result.stderr
    # nothing half-written: the inventory is read before the store is touched
    assert not (tmp_path / "x.db").exists()


def test_unknown_limit_is_a_usage_error(lab_env: LabEnv, tmp_path: Path) -> None:
    result = lab_env.cli("scan", "--limit", "no-such-host", db=tmp_path / "y.db")
    assert result.code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "no-such-host" in lines[0]
    assert "Traceback" not in result.stderr


def test_limit_scans_only_the_selected_group(lab_env: LabEnv, tmp_path: Path) -> None:
    result = lab_env.cli("scan", "--limit", "pilot", "--json", db=tmp_path / "pilot.db")
    assert result.code == 0, result.stderr
    summary = result.json()
    assert isinstance(summary, dict)
    pilot = {h.name for h in lab_env.lab.hosts() if "pilot" in h.groups}
    assert {h["name"] for h in summary["hosts"]} == pilot


def test_a_wrong_role_variable_fails_its_host_naming_the_variable(lab_env: LabEnv, tmp_path: Path) -> None:
    # patchctl's scan playbook skips the role's argument spec task: the module's own check names
    # the role variable instead, and only the host with the wrong value fails.
    inventory = yaml.safe_load(lab_env.inventory.read_text())
    victim = lab_env.lab.hosts()[0].name
    inventory["all"]["hosts"][victim]["patch_scan_linux_refresh"] = "maybe"
    bad = tmp_path / "inventory.yml"
    bad.write_text(yaml.safe_dump(inventory))
    result = lab_env.cli("scan", "-i", str(bad), "--json", db=tmp_path / "var.db")
    assert result.code == 1, result.stderr
    summary = result.json()
    assert isinstance(summary, dict)
    hosts = {h["name"]: h for h in summary["hosts"]}
    assert hosts[victim]["status"] == "failed"
    assert "patch_scan_linux_refresh" in hosts[victim]["error"] and "'maybe'" in hosts[victim]["error"]
    assert all(h["status"] == "ok" for name, h in hosts.items() if name != victim)
