"""The RPM path against the lab's dnf and zypper hosts (Debian's dnf 4.14 and zypper 1.14 with an
RPM distribution identity): what the store holds equals what the package managers say on the
hosts, advisories are classified, a severity policy deploys exactly what it approves, and a reboot
need is detected. An apt host runs beside them in the same scan."""

from __future__ import annotations

import os
import sqlite3
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import LabEnv, own_lab

pytestmark = [pytest.mark.integration, pytest.mark.lab]

SUBNET = os.environ.get("PATCHCTL_TEST_SUBNET2", "127.79")
DNF_HOST = "dnf-01"
ZYPPER_HOST = "zyp-01"

POLICY = """\
version: 1
baselines:
  redhat:
    classifications: [security]
    severities: [important, critical]
    approve_after_days: 0
  suse:
    classifications: [security]
    severities: [important, critical]
    approve_after_days: 0
waves:
  - name: rpm
    hosts: "dnf:zypper"
    bake_days: 0
    max_concurrency: 2
    max_fail_percent: 0
    min_success_percent: 100
"""


@pytest.fixture(scope="module")
def rpm_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabEnv]:
    with own_lab(tmp_path_factory, "patchctl-rpm-home", SUBNET, 1, dnf_hosts=1, zypper_hosts=1) as env:
        yield env


def dnf_check_update(env: LabEnv) -> dict[str, str]:
    """name -> version, straight from `dnf check-update` on the host (exit 100: updates exist)."""
    proc = env.ssh(DNF_HOST, "LANG=C dnf -q check-update", check=False)
    assert proc.returncode in (0, 100), proc.stderr
    found = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3:
            found[parts[0].rpartition(".")[0]] = parts[1]
    return found


def zypper_list_updates(env: LabEnv) -> dict[str, str]:
    """name -> version, straight from `zypper --xmlout list-updates` on the host."""
    out = env.ssh(ZYPPER_HOST, "LANG=C zypper -n --xmlout list-updates").stdout
    root = ET.fromstring(out[out.find("<?xml") :])  # noqa: S314 - the lab host's own zypper
    return {u.get("name", ""): u.get("edition", "") for u in root.iter("update") if u.get("kind") == "package"}


def rpm_q(env: LabEnv, host: str) -> dict[str, str]:
    out = env.ssh(host, "rpm -qa --qf '%{NAME} %{VERSION}-%{RELEASE}\\n' 'patchctl-demo-*'").stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def stored(db: Path, host: str) -> dict[str, dict[str, object]]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        rows = con.execute("SELECT * FROM v_missing_updates WHERE host = ?", (host,)).fetchall()
    finally:
        con.close()
    return {row["name"]: dict(row) for row in rows}


def test_rpm_hosts_present_an_rpm_identity(rpm_lab: LabEnv) -> None:
    groups = {h.name: set(h.groups) for h in rpm_lab.lab.hosts()}
    assert {"dnf", "redhat"} <= groups[DNF_HOST]
    assert {"zypper", "suse"} <= groups[ZYPPER_HOST]
    assert "apt" not in groups[DNF_HOST] | groups[ZYPPER_HOST]
    assert (
        rpm_lab.ssh(DNF_HOST, "test -f /etc/redhat-release && grep -q '^ID=\"almalinux\"' /etc/os-release").returncode
        == 0
    )
    assert rpm_lab.ssh(ZYPPER_HOST, "grep -q '^ID_LIKE=\"suse' /etc/os-release").returncode == 0
    for host in (DNF_HOST, ZYPPER_HOST):
        # the apt-side test packages are not on RPM hosts: no name is in both databases
        dpkg = rpm_lab.ssh(host, "dpkg-query -W 'patchctl-demo-*'", check=False)
        assert dpkg.returncode != 0 and "patchctl-demo" not in dpkg.stdout
        assert rpm_q(rpm_lab, host)["patchctl-demo-ssl"] == "1.0-1"


def test_scan_stores_exactly_what_dnf_and_zypper_report(rpm_lab: LabEnv, tmp_path: Path) -> None:
    db = tmp_path / "scan.db"
    result = rpm_lab.cli("scan", "--json", db=db)
    assert result.code == 0, result.stderr
    summary = result.json()
    assert isinstance(summary, dict)
    assert summary["hosts_ok"] == 3
    for host, truth in ((DNF_HOST, dnf_check_update(rpm_lab)), (ZYPPER_HOST, zypper_list_updates(rpm_lab))):
        assert truth, f"{host}: the package manager reports no update; the lab repo should offer some"
        rows = stored(db, host)
        assert {name: row["version"] for name, row in rows.items()} == truth, host
        ssl = rows["patchctl-demo-ssl"]
        assert (ssl["classification"], ssl["severity"], ssl["major"]) == ("security", "important", 0), host
        assert rows["patchctl-demo-kernel"]["severity"] == "moderate", host
        assert rows["patchctl-demo-db"]["major"] == 1, host
        assert rows["patchctl-demo-db"]["classification"] == "enhancement", host
        assert rows["patchctl-demo-app"]["classification"] == "bugfix", host
    con = sqlite3.connect(db)
    try:
        cves = con.execute(
            "SELECT u.source, u.cves FROM updates u WHERE u.name = 'patchctl-demo-ssl' AND u.source != 'apt'"
        ).fetchall()
        pkg_mgrs = dict(con.execute("SELECT name, pkg_mgr FROM hosts").fetchall())
    finally:
        con.close()
    assert {source for source, _ in cves} == {"dnf", "zypper"}
    assert all("CVE-2024-90101" in str(value) for _, value in cves)
    assert pkg_mgrs[DNF_HOST] == "dnf" and pkg_mgrs[ZYPPER_HOST] == "zypper"
    assert pkg_mgrs["srv-01"] == "apt"


def test_severity_policy_deploys_exactly_the_important_security_update(rpm_lab: LabEnv, tmp_path: Path) -> None:
    db = tmp_path / "deploy.db"
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY)
    before = {host: rpm_q(rpm_lab, host) for host in (DNF_HOST, ZYPPER_HOST)}
    assert rpm_lab.cli("--policy", str(policy), "scan", db=db).code == 0
    create = rpm_lab.cli("--policy", str(policy), "rollout", "create", "--json", db=db)
    assert create.code == 0, create.stderr
    frozen = create.json()
    assert isinstance(frozen, dict)
    # only the Important security advisory: not the Moderate one, not bugfix, not the major
    assert sorted(frozen["updates"]) == ["dnf:patchctl-demo-ssl:1.0-2", "zypper:patchctl-demo-ssl:1.0-2"]
    deploy = rpm_lab.cli("--policy", str(policy), "deploy", "--wave", "rpm", db=db)
    assert deploy.code == 0, deploy.stdout + deploy.stderr
    for host in (DNF_HOST, ZYPPER_HOST):
        after = rpm_q(rpm_lab, host)
        expected = dict(before[host], **{"patchctl-demo-ssl": "1.0-2"})
        assert after == expected, host


def test_reboot_needed_after_the_reboot_package(rpm_lab: LabEnv, tmp_path: Path) -> None:
    db = tmp_path / "reboot.db"
    assert rpm_lab.cli("scan", db=db).code == 0
    rpm_lab.ssh(DNF_HOST, "dnf -q -y install patchctl-demo-kernel-1.1-1")
    rpm_lab.ssh(ZYPPER_HOST, "zypper -n -q install patchctl-demo-kernel=1.1-1; test $? = 0 -o $? = 102")
    assert rpm_lab.ssh(DNF_HOST, "dnf needs-restarting -r", check=False).returncode == 1
    assert rpm_lab.ssh(ZYPPER_HOST, "zypper needs-rebooting", check=False).returncode == 102
    assert rpm_lab.cli("scan", db=db).code == 0
    data = rpm_lab.cli("report", "--json", db=db).json()
    assert isinstance(data, dict)
    rows = {row["name"]: row for row in data["hosts"]}
    assert rows[DNF_HOST]["reboot_pending"] is True
    assert rows[ZYPPER_HOST]["reboot_pending"] is True
    assert rows["srv-01"]["reboot_pending"] is False
    # a reboot clears it, as on a real host (new boot time for dnf, fresh /run for zypper)
    for host in (DNF_HOST, ZYPPER_HOST):
        before = rpm_lab.lab.boot_id(host)
        rpm_lab.ssh(host, "reboot", check=False)
        deadline = time.monotonic() + 30
        while rpm_lab.lab.boot_id(host) in (before, None) and time.monotonic() < deadline:
            time.sleep(0.2)
        rpm_lab.lab.wait_reachable(60, [host])
    assert rpm_lab.cli("scan", db=db).code == 0
    data = rpm_lab.cli("report", "--json", db=db).json()
    assert isinstance(data, dict)
    rows = {row["name"]: row for row in data["hosts"]}
    assert rows[DNF_HOST]["reboot_pending"] is False
    assert rows[ZYPPER_HOST]["reboot_pending"] is False
