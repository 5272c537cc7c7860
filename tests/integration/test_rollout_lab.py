"""Rollouts against the real lab: pilot first, bake, incidents, promotion, the fleet; exact versions
checked on the hosts over SSH (not through patchctl)."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from patchctl.lab import faults
from tests.conftest import Inbox

from .conftest import CliResult, LabEnv

pytestmark = [pytest.mark.integration, pytest.mark.lab]

BASE = {
    "patchctl-demo-app": "1.0-1",
    "patchctl-demo-ssl": "1.0-1",
    "patchctl-demo-db": "1.4-1",
    "patchctl-demo-kernel": "1.0-1",
    "patchctl-demo-broken": "1.0-1",
}
APPROVED = {"patchctl-demo-app": "1.1-1", "patchctl-demo-ssl": "1.0-2", "patchctl-demo-kernel": "1.1-1"}
PILOT = "srv-01"


def versions(env: LabEnv, host: str) -> dict[str, str]:
    """Installed (configured) versions of the lab's demo packages, straight from dpkg on the host."""
    out = env.ssh(host, "dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\\n' 'patchctl-demo-*'").stdout
    found = {}
    for line in out.splitlines():
        name, version, status = line.split(maxsplit=2)
        found[name] = version if status.strip() == "ii" else f"{version} ({status.strip()})"
    return found


def dpkg_log_lines(env: LabEnv, host: str) -> int:
    return int(env.ssh(host, "cat /var/log/dpkg.log 2>/dev/null | wc -l").stdout.strip())


def write_policy(path: Path, *, reject: str = "[patchctl-demo-broken]", waves: str | None = None) -> Path:
    waves = (
        waves
        or f"""
      - {{name: pilot, hosts: {PILOT}, bake_days: 7, max_concurrency: 1, max_fail_percent: 0,
          min_success_percent: 100}}
      - {{name: fleet, hosts: all, bake_days: 0, max_concurrency: 2, max_fail_percent: 0,
          min_success_percent: 100}}
    """
    )
    path.write_text(
        textwrap.dedent(
            f"""\
            ---
            baselines:
              debian:
                classifications: [security, bugfix, other]
                approve_after_days: 0
                reject: {reject}
            waves:
            """
        )
        + textwrap.dedent(waves).strip("\n")
        + "\n"
    )
    return path


class Patchctl:
    """The CLI with one store and one policy."""

    def __init__(self, env: LabEnv, tmp_path: Path, policy: Path) -> None:
        self.env, self.db, self.policy = env, tmp_path / "rollout.db", policy

    def __call__(self, *args: str, now: datetime | None = None) -> CliResult:
        glob = ["--policy", str(self.policy)]
        if now is not None:
            glob += ["--now", now.isoformat()]
        return self.env.cli(*glob, *args, db=self.db)


def ok(result: CliResult) -> CliResult:
    assert result.code == 0, f"exit {result.code}: {result.stdout}\n{result.stderr}"
    return result


def fresh(env: LabEnv, tmp_path: Path, policy: Path) -> Patchctl:
    """Hosts back to pristine, a new store, and a scan."""
    env.lab.reset()
    pc = Patchctl(env, tmp_path, policy)
    ok(pc("scan"))
    return pc


def test_pilot_then_bake_incident_and_fleet(lab_env: LabEnv, tmp_path: Path) -> None:
    pc = fresh(lab_env, tmp_path, write_policy(tmp_path / "policy.yml"))
    hosts = [h.name for h in lab_env.lab.hosts()]
    fleet = [h for h in hosts if h != PILOT]
    assert len(fleet) >= 3

    created = ok(pc("rollout", "create", "--json")).json()
    assert isinstance(created, dict)
    assert sorted(created["updates"]) == sorted(f"apt:{n}:{v}" for n, v in APPROVED.items())

    # The pilot only.
    ok(pc("deploy"))
    assert versions(lab_env, PILOT) == {**BASE, **APPROVED}
    for host in fleet:
        assert versions(lab_env, host) == BASE, host

    # Too early: the pilot bakes 7 days. Exit 3 with the reason; deploy refuses the fleet too.
    early = pc("rollout", "promote")
    assert early.code == 3, early.stderr
    assert "baking until" in early.stderr
    refused = pc("deploy")
    assert refused.code == 3 and "baking until" in refused.stderr
    assert pc("deploy", "--wave", "fleet").code == 3
    for host in fleet:
        assert versions(lab_env, host) == BASE, host

    # An open incident blocks promotion even after the bake.
    later = datetime.now(UTC) + timedelta(days=8)
    opened = ok(pc("incident", "open", "--rollout", str(created["rollout"]), "--host", PILOT, "app", "slow")).stdout
    blocked = pc("rollout", "promote", now=later)
    assert blocked.code == 3, blocked.stderr
    assert "incident" in blocked.stderr
    incident_id = opened.split()[1]
    ok(pc("incident", "close", incident_id, "--reason", "false alarm"))

    # Closed and baked: the fleet is promoted and deployed.
    ok(pc("rollout", "promote", "--deploy", now=later))
    for host in hosts:
        assert versions(lab_env, host) == {**BASE, **APPROVED}, host

    status = ok(pc("rollout", "status", "--json", now=later)).json()
    assert isinstance(status, dict)
    assert [(w["name"], w["state"]) for w in status["waves"]] == [("pilot", "done"), ("fleet", "done")]
    assert {r["host"]: r["status"] for r in status["results"]} == dict.fromkeys(hosts, "ok")

    # A second deploy of a finished wave changes nothing on any host.
    before = {h: dpkg_log_lines(lab_env, h) for h in hosts}
    again = ok(pc("deploy", "--wave", "pilot", "--json", now=later)).json()
    assert isinstance(again, dict) and again["hosts"] == []
    again = ok(pc("deploy", "--wave", "fleet", "--json", now=later)).json()
    assert isinstance(again, dict) and again["hosts"] == []
    assert {h: dpkg_log_lines(lab_env, h) for h in hosts} == before

    audit = ok(pc("audit", "--json")).json()
    assert isinstance(audit, list)
    actions = [a["action"] for a in audit]
    for expected in ("policy approved", "rollout create", "incident open", "incident close", "promote"):
        assert expected in actions, expected


def test_major_upgrade_only_with_major_flag(lab_env: LabEnv, tmp_path: Path) -> None:
    one_wave = """
      - {name: all, hosts: all, bake_days: 0, max_concurrency: 4, max_fail_percent: 0, min_success_percent: 100}
    """
    pc = fresh(lab_env, tmp_path, write_policy(tmp_path / "policy.yml", waves=one_wave))
    hosts = [h.name for h in lab_env.lab.hosts()]
    first = ok(pc("rollout", "create", "--json")).json()
    assert isinstance(first, dict)
    assert "apt:patchctl-demo-db:2.0-1" not in first["updates"]
    ok(pc("deploy"))
    for host in hosts:
        assert versions(lab_env, host)["patchctl-demo-db"] == "1.4-1", host

    refused = pc("approve", "apt:patchctl-demo-db:2.0-1")
    assert refused.code == 3 and "--major" in refused.stderr
    ok(pc("approve", "apt:patchctl-demo-db:2.0-1", "--major", "--reason", "tested by the DBAs"))
    ok(pc("scan"))
    second = ok(pc("rollout", "create", "--json")).json()
    assert isinstance(second, dict)
    assert second["updates"] == ["apt:patchctl-demo-db:2.0-1"]
    ok(pc("deploy"))
    for host in hosts:
        assert versions(lab_env, host)["patchctl-demo-db"] == "2.0-1", host
    audit = ok(pc("audit", "--json")).json()
    assert isinstance(audit, list)
    assert any(a["action"] == "approved" and a["detail"] == "tested by the DBAs" for a in audit)


def test_failed_install_halts_the_wave_at_zero_percent(
    lab_env: LabEnv, tmp_path: Path, webhook: tuple[str, Inbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host's failure is dpkg's error text (its state and the postinst's exit), in the deploy's
    result, its error and rollout status. Seen failing with the apply module's ``outcome`` giving
    only "dpkg state iF" (the deploy's ``failed`` reason compared unequal), where the old check of
    the uid key alone stayed green."""
    url, inbox = webhook
    monkeypatch.setitem(lab_env.env, "PATCHCTL_NOTIFY_WEBHOOK_URL", url)
    one_at_a_time = """
      - {name: fleet, hosts: all, bake_days: 0, max_concurrency: 1, max_fail_percent: 0, min_success_percent: 100}
    """
    pc = fresh(lab_env, tmp_path, write_policy(tmp_path / "policy.yml", reject="[]", waves=one_at_a_time))
    hosts = sorted(h.name for h in lab_env.lab.hosts())
    created = ok(pc("rollout", "create", "--json")).json()
    assert isinstance(created, dict)
    assert "apt:patchctl-demo-broken:1.1-1" in created["updates"]

    result = pc("deploy", "--json")
    assert result.code == 1, result.stderr
    report = result.json()
    assert isinstance(report, dict)
    assert report["state"] == "halted"
    ran = {h["host"]: h for h in report["hosts"]}
    assert list(ran) == [hosts[0]], "no further host may start after the first failure"
    assert ran[hosts[0]]["status"] == "failed"
    # dpkg's own error, as the host printed it: the state dpkg left and the failed postinst
    dpkg_error = (
        "dpkg state iF after install: dpkg: error processing package patchctl-demo-broken (--configure): "
        "installed patchctl-demo-broken package post-installation script subprocess returned error exit status 1"
    )
    assert ran[hosts[0]]["failed"] == {"apt:patchctl-demo-broken:1.1-1": dpkg_error}, ran[hosts[0]]
    assert dpkg_error in ran[hosts[0]]["error"], ran[hosts[0]]
    assert sorted(report["not_started"]) == hosts[1:]
    assert versions(lab_env, hosts[0])["patchctl-demo-broken"] == "1.1-1 (iF)"  # half-configured
    for host in hosts[1:]:
        assert versions(lab_env, host) == BASE, host

    status = ok(pc("rollout", "status", "--json")).json()
    assert isinstance(status, dict)
    assert status["waves"][0]["state"] == "halted"
    assert [(r["host"], r["status"], r["failed"]) for r in status["results"]] == [
        (hosts[0], "failed", {"apt:patchctl-demo-broken:1.1-1": dpkg_error})
    ]
    blocked = pc("rollout", "promote")
    assert blocked.code == 3 and "halted" in blocked.stderr

    # the notification channel heard of the failed host and the halted wave
    events = [json.loads(r["body"]) for r in inbox.requests]
    assert [e["event"] for e in events] == ["host.failed", "wave.halted"]
    assert events[0]["payload"]["host"] == hosts[0]
    assert "patchctl-demo-broken" in events[0]["payload"]["reason"]
    assert events[1]["payload"]["wave"] == "fleet"


def test_unreachable_host_counts_as_failed(lab_env: LabEnv, tmp_path: Path) -> None:
    one_wave = """
      - {name: fleet, hosts: all, bake_days: 0, max_concurrency: 4, max_fail_percent: 0, min_success_percent: 100}
    """
    pc = fresh(lab_env, tmp_path, write_policy(tmp_path / "policy.yml", waves=one_wave))
    victim = lab_env.lab.hosts()[1].name
    ok(pc("rollout", "create"))
    faults.power_off(lab_env.lab, victim)
    try:
        result = pc("deploy", "--json")
    finally:
        faults.power_on(lab_env.lab, victim)
    assert result.code == 1, result.stderr
    report = result.json()
    assert isinstance(report, dict)
    states = {h["host"]: h["status"] for h in report["hosts"]}
    assert states[victim] == "unreachable"
    assert report["state"] == "halted", "an unreachable host counts towards max_fail_percent"

    # Run again with the host back: only it is deployed, the others are not touched again.
    lab_env.lab.wait_reachable(60, [victim])
    others = [h.name for h in lab_env.lab.hosts() if h.name != victim]
    before = {h: dpkg_log_lines(lab_env, h) for h in others}
    again = ok(pc("deploy", "--json")).json()
    assert isinstance(again, dict)
    assert [h["host"] for h in again["hosts"]] == [victim]
    assert again["state"] == "finished"
    assert {h: dpkg_log_lines(lab_env, h) for h in others} == before
    assert versions(lab_env, victim) == {**BASE, **APPROVED}
