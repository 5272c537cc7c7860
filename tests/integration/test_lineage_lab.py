""" "ok" means installed, on real apt hosts while the repository moves on: the pilot installs the
approved version, the repository supersedes it and drops it (`patchctl lab repo publish
--drop-older`), the fleet is promoted. With ``successors: block`` the fleet hosts are
``blocked`` with the reason, never ``ok``; with ``repilot`` too, and the successor goes through a
follow-up rollout's pilot and bake before the fleet gets it; with ``successors: install`` they
get the successor. A host downgraded by hand is
no longer ``ok`` and its wave's next deploy installs the approved version again. The versions
each host ends with are read with dpkg-query over SSH; ``rollout status``, ``verify --json`` and
``report --json`` are compared host by host.

This lab has its own repository (the publishes change it), on the second test subnet."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from .conftest import CliResult, LabEnv, own_lab
from .test_compliance_lab import states

pytestmark = [pytest.mark.integration, pytest.mark.lab]

SUBNET = os.environ.get("PATCHCTL_TEST_SUBNET2", "127.79")
APP = "patchctl-demo-app"
OTHERS = "[patchctl-demo-ssl, patchctl-demo-kernel, patchctl-demo-broken, patchctl-demo-db]"


@pytest.fixture(scope="module")
def lineage_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabEnv]:
    with own_lab(tmp_path_factory, "patchctl-lineage-home", SUBNET, 3) as env:
        yield env


class Run:
    """The CLI with one store and one policy (its successors setting)."""

    def __init__(self, env: LabEnv, tmp_path: Path, successors: str) -> None:
        self.env, self.db, self.policy = env, tmp_path / "lineage.db", tmp_path / "policy.yml"
        hosts = [h.name for h in env.lab.hosts()]
        self.pilot, self.fleet = hosts[0], hosts[1:]
        self.policy.write_text(
            textwrap.dedent(
                f"""\
                ---
                baselines:
                  debian:
                    classifications: [security, bugfix, other]
                    approve_after_days: 0
                    reject: {OTHERS}
                    successors: {successors}
                    successor_bake_days: 2
                waves:
                  - {{name: pilot, hosts: {self.pilot}, bake_days: 7, max_concurrency: 1, max_fail_percent: 0}}
                  - {{name: fleet, hosts: all, bake_days: 0, max_concurrency: 2, max_fail_percent: 0}}
                """
            )
        )

    def __call__(self, *args: str, now: datetime | None = None, code: int | None = 0) -> CliResult:
        glob = ["--policy", str(self.policy)]
        if now is not None:
            glob += ["--now", now.isoformat()]
        result = self.env.cli(*glob, *args, db=self.db)
        if code is not None:
            assert result.code == code, f"{args}: exit {result.code}: {result.stdout}\n{result.stderr}"
        return result

    def version(self, host: str) -> str:
        """The app's version on the host, from dpkg itself (``ii`` only)."""
        out = self.env.ssh(host, f"dpkg-query -W -f '${{Version}} ${{db:Status-Abbrev}}' {APP}").stdout.split()
        return out[0] if out[1:] == ["ii"] else " ".join(out)

    def publish(self, version: str, drop_older: bool) -> None:
        args = ["lab", "repo", "publish", APP, version] + (["--drop-older"] if drop_older else [])
        result = self.env.cli(*args)
        assert result.code == 0, result.stdout + result.stderr

    def views(self, now: datetime) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
        """(rollout status, verify states, report states): verify and report asserted equal."""
        status = self("rollout", "status", "--json", now=now).json()
        verify = self("verify", "--json", now=now, code=None).json()
        report = self("report", "--json", now=now).json()
        by_verify, by_report = states(verify, report)
        assert isinstance(status, dict)
        return status, by_verify, by_report


def start(env: LabEnv, tmp_path: Path, successors: str, approved: str, successor: str) -> tuple[Run, datetime]:
    """Pristine hosts (1.0-1); ``approved`` published, frozen and deployed on the pilot; then
    ``successor`` published with the older versions dropped, and a rescan. Returns the run and
    a moment after the pilot's bake."""
    env.lab.reset()
    run = Run(env, tmp_path, successors)
    run.publish(approved, drop_older=False)
    run("scan")
    created = run("rollout", "create", "--json").json()
    assert isinstance(created, dict) and created["updates"] == [f"apt:{APP}:{approved}"]
    run("deploy")
    assert run.version(run.pilot) == approved
    run.publish(successor, drop_older=True)
    run("scan")
    return run, datetime.now(UTC) + timedelta(days=8)


def test_downgraded_host_is_not_ok_and_is_retried(lineage_lab: LabEnv, tmp_path: Path) -> None:
    """A pilot recorded ok at the approved 1.1-1 and downgraded by hand to 1.0-1: the next verify
    says it lacks the rollout's version (missing, undelivered), and the next deploy of its wave
    retries it and installs 1.1-1 again, checked with dpkg. Runs first: the lab's repository still
    offers 1.0-1 and 1.1-1 (the tests after it publish newer versions and drop the older).

    Breaking it: already_done counting every host ok before as done put the pilot in
    already_done and left it at 1.0-1 (run and failed here)."""
    lineage_lab.lab.reset()
    run = Run(lineage_lab, tmp_path, "block")
    run("scan")
    created = run("rollout", "create", "--json").json()
    assert isinstance(created, dict) and created["updates"] == [f"apt:{APP}:1.1-1"]
    run("deploy")
    assert run.version(run.pilot) == "1.1-1"
    lineage_lab.ssh(run.pilot, f"DEBIAN_FRONTEND=noninteractive apt-get install -y -q --allow-downgrades {APP}=1.0-1")
    assert run.version(run.pilot) == "1.0-1"
    verify = run("verify", "--json", code=None).json()
    assert isinstance(verify, dict)
    pilot = next(h for h in verify["hosts"] if h["host"] == run.pilot)
    assert (pilot["state"], pilot["undelivered"]) == ("missing", [f"apt:{APP}:1.1-1"])
    again = run("deploy", "--wave", "pilot", "--json").json()
    assert isinstance(again, dict) and run.pilot not in again["already_done"]
    assert [(h["host"], h["status"]) for h in again["hosts"]] == [(run.pilot, "ok")]
    assert run.version(run.pilot) == "1.1-1"
    _status, by_verify, _by_report = run.views(datetime.now(UTC))
    assert by_verify[run.pilot] == "compliant"


@pytest.mark.parametrize("successors", ["block"])
def test_superseded_approved_version_blocks_the_fleet(lineage_lab: LabEnv, tmp_path: Path, successors: str) -> None:
    """The superseded-update scenario: before, the fleet hosts were recorded ok at 1.0-1 and the wave
    finished at 100%, exit 0. Breaking it: with judge() returning the apply outcome unchecked,
    promote --deploy exited 0 with both fleet hosts ok, nothing installed (run and failed here;
    the old planning, only the missing rollout uids, fails tests/unit/test_lineage.py)."""
    approved, successor = ("1.3-1", "1.4-1") if successors == "block" else ("1.5-1", "1.6-1")
    run, later = start(lineage_lab, tmp_path, successors, approved, successor)
    promoted = run("rollout", "promote", "--deploy", "--json", now=later, code=1)
    assert promoted.code == 1
    for host in run.fleet:
        assert run.version(host) == "1.0-1", host  # nothing installed: blocked
    assert run.version(run.pilot) == approved

    status, by_verify, by_report = run.views(datetime.now(UTC))
    results = {r["host"]: r for r in status["results"]}
    reason = f"approved {approved} is no longer offered; the repositories offer {successor}"
    for host in run.fleet:
        assert results[host]["status"] == "blocked", results[host]
        assert reason in results[host]["error"]
        # the one rule: verify, report and rollout status say blocked alike
        assert by_verify[host] == by_report[host] == results[host]["status"] == "blocked", host
    fleet = next(w for w in status["waves"] if w["name"] == "fleet")
    assert fleet["hosts_ok"] == 0 and fleet["hosts_blocked"] == len(run.fleet)
    assert sorted(b["host"] for b in status["blocked"]) == sorted(run.fleet)
    assert results[run.pilot]["status"] == "ok"
    # the pilot has the rollout's version; the successor has no approval recorded yet
    assert by_verify[run.pilot] == by_report[run.pilot] == "compliant"


def test_repilot_sends_the_successor_through_a_follow_up_rollout(lineage_lab: LabEnv, tmp_path: Path) -> None:
    """successors: repilot on real hosts: the promoted fleet hosts are blocked and the same
    ``rollout promote --deploy`` creates follow-up rollout 2 holding only the successor 1.6-1;
    rollout status, verify and report say ``blocked`` alike, status naming the follow-up; the
    next promote deploys rollout 2's pilot (1.6-1, read with dpkg), its bake (successor_bake_days
    2) holds the fleet back, then the fleet gets 1.6-1 and all three say compliant. Breaking it:
    without the follow-up step in promote_and_deploy, the first promote's follow_up_rollout was
    null (run and failed here)."""
    run, later = start(lineage_lab, tmp_path, "repilot", "1.5-1", "1.6-1")
    first = run("rollout", "promote", "--deploy", "--json", now=later, code=1).json()
    assert isinstance(first, dict) and first["follow_up_rollout"] == 2
    assert {h: run.version(h) for h in run.fleet} == dict.fromkeys(run.fleet, "1.0-1")
    status, by_verify, by_report = run.views(datetime.now(UTC))
    assert (status["id"], status["follows"], status["updates"]) == (2, 1, [f"apt:{APP}:1.6-1"])
    blocked = {b["host"]: b for b in status["blocked"]}
    assert sorted(blocked) == sorted(run.fleet)
    for host in run.fleet:
        assert (blocked[host]["rollout"], blocked[host]["follow_up_rollout"]) == (1, 2)
        assert "approved 1.5-1 is no longer offered; the repositories offer 1.6-1" in blocked[host]["reason"]
        assert by_verify[host] == by_report[host] == "blocked", host
    audit = run("audit", "--rollout", "1", "--json").json()
    assert isinstance(audit, list)
    assert any(a["action"] == "rollout follow-up" and a["subject"] == "rollout 2" for a in audit)

    pilot = run("rollout", "promote", "--deploy", "--json", now=later).json()
    assert isinstance(pilot, dict) and (pilot["rollout"], pilot["wave"]) == (2, "pilot")
    assert run.version(run.pilot) == "1.6-1"
    held = run("rollout", "promote", now=later + timedelta(days=1), code=3)
    assert "baking" in held.stdout + held.stderr
    fleet = run("rollout", "promote", "--deploy", "--json", now=later + timedelta(days=3)).json()
    assert isinstance(fleet, dict) and (fleet["rollout"], fleet["wave"]) == (2, "fleet")
    assert {h: run.version(h) for h in run.fleet} == dict.fromkeys(run.fleet, "1.6-1")
    status, by_verify, by_report = run.views(datetime.now(UTC))
    assert status["blocked"] == []
    for host in (run.pilot, *run.fleet):
        assert by_verify[host] == by_report[host] == "compliant", host


def test_successors_install_takes_the_successor(lineage_lab: LabEnv, tmp_path: Path) -> None:
    """Breaking it: host_plan never taking the install branch (blocking as with block) left the
    fleet hosts at 1.0-1 (run and failed here)."""
    run, later = start(lineage_lab, tmp_path, "install", "1.7-1", "1.8-1")
    result = run("rollout", "promote", "--deploy", "--json", now=later).json()
    assert isinstance(result, dict)
    for host in run.fleet:
        assert run.version(host) == "1.8-1", host
    status, by_verify, by_report = run.views(datetime.now(UTC))
    results = {r["host"]: r for r in status["results"]}
    for host in run.fleet:
        assert results[host]["status"] == "ok" and f"apt:{APP}:1.8-1" in results[host]["installed"]
        assert by_verify[host] == by_report[host] == "compliant", host
    deployed = {h["host"]: h for h in result["hosts"]}
    assert sorted(deployed) == sorted(run.fleet)
    for host in run.fleet:
        assert deployed[host]["notes"] == ["installed 1.8-1 (successor of approved 1.7-1)"]
