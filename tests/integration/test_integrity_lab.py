"""Package integrity on the real lab: the lab repository is signed and apt verifies it. Three hosts
are pointed at broken copies of it (unsigned, signed by an unknown key, package files tampered
after indexing): the scan records an integrity problem for each of them, with the reason, and a
deploy installs nothing there, while the healthy host is scanned and deployed as usual. A host
whose own apt configuration turns verification off is refused too."""

from __future__ import annotations

import sqlite3
import textwrap
from pathlib import Path

import pytest

from patchctl.lab import faults
from patchctl.lab.repo import VARIANT_TAMPERED, VARIANT_UNKNOWN_KEY, VARIANT_UNSIGNED

from .conftest import LabEnv

pytestmark = [pytest.mark.integration, pytest.mark.lab]

BROKEN = {"srv-01": VARIANT_UNSIGNED, "srv-02": VARIANT_UNKNOWN_KEY, "cli-01": VARIANT_TAMPERED}
HEALTHY = "cli-02"
# what each broken host's recorded reason must say (apt's own words)
REASON = {
    VARIANT_UNSIGNED: "is not signed",
    VARIANT_UNKNOWN_KEY: "NO_PUBKEY",
    VARIANT_TAMPERED: "Hash Sum mismatch",
}
BASE = {"patchctl-demo-app": "1.0-1", "patchctl-demo-ssl": "1.0-1"}
TARGET = {"patchctl-demo-app": "1.1-1", "patchctl-demo-ssl": "1.0-2"}


def demo_versions(env: LabEnv, host: str) -> dict[str, str]:
    out = env.ssh(host, "dpkg-query -W -f '${Package} ${Version}\\n' patchctl-demo-app patchctl-demo-ssl").stdout
    return dict(line.split() for line in out.splitlines())


def test_broken_repositories_are_integrity_problems_and_nothing_installs(lab_env: LabEnv, tmp_path: Path) -> None:
    lab = lab_env.lab
    lab.reset()
    assert {h.name for h in lab.hosts()} >= {*BROKEN, HEALTHY}, "needs the 4-host lab"
    policy = tmp_path / "policy.yml"
    policy.write_text(
        textwrap.dedent(
            """\
            ---
            baselines:
              debian:
                classifications: [security, bugfix, other]
                approve_after_days: 0
                reject: [patchctl-demo-broken, patchctl-demo-kernel]
            waves:
              - {name: fleet, hosts: all, bake_days: 0, max_concurrency: 4, max_fail_percent: 100,
                 min_success_percent: 0}
            """
        )
    )
    db = tmp_path / "store.db"

    def cli(*args: str) -> tuple[int, object, str]:
        res = lab_env.cli("--policy", str(policy), "--json", *args, db=db)
        assert "Traceback" not in res.stderr, res.stderr
        return res.code, res.json() if res.stdout.strip() else None, res.stderr

    try:
        # A good scan first, and a rollout of what it found (the signed repository verifies).
        code, _out, err = cli("scan")
        assert code == 0, err
        code, created, err = cli("rollout", "create")
        assert code == 0, err
        assert isinstance(created, dict) and len(created["updates"]) == len(TARGET)

        for host, kind in BROKEN.items():
            faults.break_repo(lab, host, kind)

        # The scan: each broken host failed with 'integrity: ...' and apt's reason; the healthy one ok.
        code, scan, err = cli("scan")
        assert code == 1, err
        assert isinstance(scan, dict)
        by_host = {h["name"]: h for h in scan["hosts"]}
        assert by_host[HEALTHY]["status"] == "ok" and by_host[HEALTHY]["missing"] > 0
        with sqlite3.connect(db) as conn:
            stored = dict(conn.execute("SELECT name, last_status || ' ' || COALESCE(last_error, '') FROM hosts"))
        for host, kind in BROKEN.items():
            assert by_host[host]["status"] == "failed", by_host[host]
            error = by_host[host]["error"]
            assert error.startswith("integrity: "), error
            assert REASON[kind] in error, error
            assert stored[host] == f"failed {error}"

        # The deploy: nothing installs from a broken repository; the healthy host is patched.
        code, deployed, err = cli("deploy")
        assert code == 1, err
        assert isinstance(deployed, dict)
        outcome = {h["host"]: h for h in deployed["hosts"]}
        assert outcome[HEALTHY]["status"] == "ok", outcome[HEALTHY]
        assert demo_versions(lab_env, HEALTHY) == TARGET
        for host, kind in BROKEN.items():
            assert outcome[host]["status"] == "failed", outcome[host]
            assert outcome[host]["installed"] == []
            assert outcome[host]["error"].startswith("integrity: "), outcome[host]
            assert REASON[kind] in outcome[host]["error"], outcome[host]
            assert demo_versions(lab_env, host) == BASE, host

        # A host that trusts a source without its signature (its own apt configuration) is refused.
        faults.restore_repo(lab, "srv-01")
        lab.host_path("srv-01", "/etc/apt/sources.list.d/insecure.list").write_text(
            "deb [trusted=yes] http://patchctl-repo:8080/debian bookworm main\n"
        )
        code, scan, err = cli("scan", "--limit", "srv-01")
        assert code == 1, err
        assert isinstance(scan, dict)
        (only,) = scan["hosts"]
        assert only["error"].startswith("integrity: signature checks are turned off on this host: ")
        assert "insecure.list: trusted=yes" in only["error"]
    finally:
        lab.reset()  # every host back on the real, signed repository
