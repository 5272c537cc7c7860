"""RPM package integrity on the real lab: the lab's RPM repository is signed (every package with
``rpm --addsign``, the metadata with ``repomd.xml.asc``) and dnf and zypper verify it. For each
manager, three hosts are pointed at broken copies of it (unsigned, signed by an unknown key,
package files tampered after indexing): the scan records an integrity problem for each of them,
with the manager's reason, and a deploy installs nothing there (``rpm -q`` over SSH), while the
healthy host of each manager is scanned and patched. A host whose own configuration turns the
checks off is verified all the same (dnf: the checks are forced on the command line) or refused
(zypper, which has no such option).

Seen failing with: DNF_VERIFY_OPTIONS emptied (the dnf host with ``gpgcheck=0 repo_gpgcheck=0``
scans its unsigned repository as ok); ZypperBackend.check_config not called (the zypper host with
``gpgcheck=0`` scans ok); the zypper download check writing into zypper's own cache (the tampered
zypper host's scan is ok after a good scan cached the files); rpm_integrity_problems returning
nothing (every broken host's reason is "... failed (rc=1): ..." without ``integrity:``).
"""

from __future__ import annotations

import sqlite3
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from patchctl.lab import faults, rpm
from patchctl.lab.repo import VARIANT_TAMPERED, VARIANT_UNKNOWN_KEY, VARIANT_UNSIGNED

from .conftest import OWN_LAB_SUBNET, LabEnv, own_lab

pytestmark = [pytest.mark.integration, pytest.mark.lab]

BROKEN = {
    "dnf-01": VARIANT_UNSIGNED,
    "dnf-02": VARIANT_UNKNOWN_KEY,
    "dnf-03": VARIANT_TAMPERED,
    "zyp-01": VARIANT_UNSIGNED,
    "zyp-02": VARIANT_UNKNOWN_KEY,
    "zyp-03": VARIANT_TAMPERED,
}
HEALTHY = ("dnf-04", "zyp-04")
# what each broken host's recorded reason must say (the manager's own words)
REASON = {
    ("dnf", VARIANT_UNSIGNED): "GPG verification is enabled, but GPG signature is not available",
    ("dnf", VARIANT_UNKNOWN_KEY): "GPG signature verification error: Bad GPG signature",
    ("dnf", VARIANT_TAMPERED): "checksum doesn't match",
    ("zypper", VARIANT_UNSIGNED): "File 'repomd.xml' from repository 'patchctl lab repository' is unsigned",
    ("zypper", VARIANT_UNKNOWN_KEY): "is signed with an unknown key",
    ("zypper", VARIANT_TAMPERED): "Digest verification failed for file",
}
BASE = {"patchctl-demo-app": "1.0-1", "patchctl-demo-ssl": "1.0-1"}
TARGET = {"patchctl-demo-app": "1.1-1", "patchctl-demo-ssl": "1.0-2"}

POLICY = """\
---
baselines:
  redhat:
    classifications: [security, bugfix]
    approve_after_days: 0
    reject: [patchctl-demo-kernel]
  suse:
    classifications: [security, bugfix]
    approve_after_days: 0
    reject: [patchctl-demo-kernel]
waves:
  - {name: fleet, hosts: all, bake_days: 0, max_concurrency: 8, max_fail_percent: 100,
     min_success_percent: 0}
"""


@pytest.fixture(scope="module")
def rpm_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabEnv]:
    with own_lab(tmp_path_factory, "patchctl-rpm-integrity", OWN_LAB_SUBNET, 0, dnf_hosts=4, zypper_hosts=4) as env:
        yield env


def pkg_mgr(host: str) -> str:
    return "dnf" if host.startswith("dnf") else "zypper"


def demo_versions(env: LabEnv, host: str) -> dict[str, str]:
    """What the host's rpm database holds, over plain SSH."""
    out = env.ssh(host, "rpm -q --qf '%{NAME} %{VERSION}-%{RELEASE}\\n' patchctl-demo-app patchctl-demo-ssl").stdout
    return dict(line.split() for line in out.splitlines())


def test_broken_rpm_repositories_are_integrity_problems_and_nothing_installs(rpm_lab: LabEnv, tmp_path: Path) -> None:
    lab = rpm_lab.lab
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY)
    db = tmp_path / "store.db"

    def cli(*args: str) -> tuple[int, object, str]:
        res = rpm_lab.cli("--policy", str(policy), "--json", *args, db=db)
        assert "Traceback" not in res.stderr, res.stderr
        return res.code, res.json() if res.stdout.strip() else None, res.stderr

    # Every host trusts the lab key alone, in its rpm database; the served metadata is signed.
    for host in (*BROKEN, *HEALTHY):
        assert "patchctl lab repository" in rpm_lab.ssh(host, "rpm -qi gpg-pubkey").stdout, host
    assert (lab.dir / "repo" / rpm.REPO_SUBDIR / "repodata" / rpm.REPOMD_SIGNATURE).is_file()

    # A good scan first (its downloads verify), and a rollout of what it found.
    code, scan, err = cli("scan")
    assert code == 0, (scan, err)
    code, created, err = cli("rollout", "create")
    assert code == 0, err
    assert isinstance(created, dict)
    assert sorted(created["updates"]) == sorted(f"{m}:{n}:{v}" for m in ("dnf", "zypper") for n, v in TARGET.items())

    for host, kind in BROKEN.items():
        faults.break_repo(lab, host, kind)

    # The scan: each broken host failed with 'integrity: ...' and its manager's reason.
    code, scan, err = cli("scan")
    assert code == 1, err
    assert isinstance(scan, dict)
    by_host = {h["name"]: h for h in scan["hosts"]}
    for host in HEALTHY:
        assert by_host[host]["status"] == "ok" and by_host[host]["missing"] > 0, by_host[host]
    with sqlite3.connect(db) as conn:
        stored = dict(conn.execute("SELECT name, last_status || ' ' || COALESCE(last_error, '') FROM hosts"))
    for host, kind in BROKEN.items():
        assert by_host[host]["status"] == "failed", by_host[host]
        error = by_host[host]["error"]
        assert error.startswith("integrity: "), error
        assert REASON[pkg_mgr(host), kind] in error, error
        assert stored[host] == f"failed {error}"

    # The deploy: nothing installs from a broken repository; the healthy hosts are patched.
    code, deployed, err = cli("deploy")
    assert code == 1, err
    assert isinstance(deployed, dict)
    outcome = {h["host"]: h for h in deployed["hosts"]}
    for host in HEALTHY:
        assert outcome[host]["status"] == "ok", outcome[host]
        assert demo_versions(rpm_lab, host) == TARGET, host
    for host, kind in BROKEN.items():
        assert outcome[host]["status"] == "failed", outcome[host]
        assert outcome[host]["installed"] == []
        assert outcome[host]["error"].startswith("integrity: "), outcome[host]
        assert REASON[pkg_mgr(host), kind] in outcome[host]["error"], outcome[host]
        assert demo_versions(rpm_lab, host) == BASE, host

    # A host whose own configuration turns the checks off. dnf: forced on all the same, so the
    # unsigned repository still fails; zypper: refused before it fetches anything.
    faults.break_repo(lab, "dnf-01", VARIANT_UNSIGNED)
    repo_path = lab.host_path("dnf-01", "/etc/yum.repos.d/patchctl-lab.repo")
    repo_path.write_text(repo_path.read_text().replace("gpgcheck=1", "gpgcheck=0"))
    faults.restore_repo(lab, "zyp-01")
    lab.host_path("zyp-01", "/etc/zypp/repos.d/insecure.repo").write_text(
        textwrap.dedent(
            """\
            [insecure]
            name=a repository trusted without its signature
            baseurl=http://patchctl-repo:8080/rpm/
            enabled=1
            gpgcheck=0
            """
        )
    )
    code, scan, err = cli("scan", "--limit", "dnf-01:zyp-01")
    assert code == 1, err
    assert isinstance(scan, dict)
    by_host = {h["name"]: h for h in scan["hosts"]}
    assert by_host["dnf-01"]["error"].startswith("integrity: dnf makecache: "), by_host["dnf-01"]
    assert REASON["dnf", VARIANT_UNSIGNED] in by_host["dnf-01"]["error"]
    assert by_host["zyp-01"]["error"] == (
        "integrity: signature checks are turned off on this host: /etc/zypp/repos.d/insecure.repo: gpgcheck=0"
    )
    for host in ("dnf-01", "zyp-01"):
        assert demo_versions(rpm_lab, host) == BASE, host
