"""The superseded-update scenario of tests/integration/test_lineage_lab.py on dnf hosts: the
pilot installs the approved version, the RPM repository (dnf's and zypper's) supersedes and drops
it (`patchctl lab repo publish --pkg-mgr dnf --drop-older`), and with ``successors: block`` the
promoted fleet hosts, dnf and zypper, are ``blocked``, never ``ok``; versions read with ``rpm -q``
over SSH. Its own lab (one apt host left out of the waves, two dnf hosts, one zypper host) on the
second test subnet."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from .conftest import LabEnv, own_lab
from .test_compliance_lab import states

pytestmark = [pytest.mark.integration, pytest.mark.lab]

SUBNET = os.environ.get("PATCHCTL_TEST_SUBNET2", "127.79")
APP = "patchctl-demo-app"
PILOT, FLEET = "dnf-01", ("dnf-02", "zyp-01")


@pytest.fixture(scope="module")
def rpm_lineage_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabEnv]:
    with own_lab(tmp_path_factory, "patchctl-rpm-lineage-home", SUBNET, 1, dnf_hosts=2, zypper_hosts=1) as env:
        yield env


def rpm_version(env: LabEnv, host: str) -> str:
    return env.ssh(host, f"rpm -q --qf '%{{VERSION}}-%{{RELEASE}}' {APP}").stdout.strip()


def test_superseded_approved_version_blocks_the_dnf_and_zypper_fleet(rpm_lineage_lab: LabEnv, tmp_path: Path) -> None:
    """Breaking it as in the apt test (judge() returning the apply outcome unchecked): promote
    --deploy exited 0 with the dnf fleet host ok at its old version (run and failed here)."""
    env = rpm_lineage_lab
    db, policy = tmp_path / "lineage.db", tmp_path / "policy.yml"
    baseline = textwrap.indent(
        textwrap.dedent(
            f"""\
            classifications: [security, critical, bugfix, feature, other]
            approve_after_days: 0
            allow: [{APP}]
            reject: [patchctl-demo-ssl, patchctl-demo-kernel, patchctl-demo-broken, patchctl-demo-db]
            successors: block
            """
        ),
        "    ",
    )
    policy.write_text(
        "---\nbaselines:\n  redhat:\n"
        + baseline
        + "  suse:\n"
        + baseline
        + textwrap.dedent(
            f"""\
            waves:
              - {{name: pilot, hosts: {PILOT}, bake_days: 7, max_concurrency: 1, max_fail_percent: 0}}
              - {{name: fleet, hosts: "{":".join(FLEET)}", bake_days: 0, max_concurrency: 2, max_fail_percent: 0}}
            """
        )
    )

    def cli(*args: str, now: datetime | None = None, code: int = 0) -> object:
        glob = ["--policy", str(policy)] + (["--now", now.isoformat()] if now else [])
        result = env.cli(*glob, *args, db=db)
        assert result.code == code, f"{args}: exit {result.code}: {result.stdout}\n{result.stderr}"
        return result.json() if "--json" in args else None

    before = {h: rpm_version(env, h) for h in FLEET}
    for version, drop in (("1.3-1", []), ("1.4-1", ["--drop-older"])):
        if version == "1.4-1":
            cli("deploy")
            assert rpm_version(env, PILOT) == "1.3-1"
        published = env.cli("lab", "repo", "publish", APP, version, "--pkg-mgr", "dnf", *drop)
        assert published.code == 0, published.stdout + published.stderr
        cli("scan")
        if version == "1.3-1":
            created = cli("rollout", "create", "--json")
            assert isinstance(created, dict)
            assert sorted(created["updates"]) == [f"dnf:{APP}:1.3-1", f"zypper:{APP}:1.3-1"]
    later = datetime.now(UTC) + timedelta(days=8)
    cli("rollout", "promote", "--deploy", "--json", now=later, code=1)
    assert {h: rpm_version(env, h) for h in FLEET} == before
    status = cli("rollout", "status", "--json")
    assert isinstance(status, dict)
    results = {r["host"]: r for r in status["results"]}
    assert results[PILOT]["status"] == "ok"
    by_verify, by_report = states(cli("verify", "--json", code=1), cli("report", "--json"))
    for host in FLEET:
        assert results[host]["status"] == "blocked", results[host]
        assert "approved 1.3-1 is no longer offered; the repositories offer 1.4-1" in results[host]["error"]
        assert by_verify[host] == by_report[host] == "blocked", host
