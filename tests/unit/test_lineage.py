"""A rollout's versions as floors of their lineages: what a deploy plans for a host from its last
scan (install, check, successor, blocked) and how it judges the versions dpkg/rpm report after
the run (patchctl.rules.lineage, patchctl.deploy.judge). The same on real hosts:
tests/integration/test_lineage_lab.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from patchctl.deploy import judge
from patchctl.report import full_report
from patchctl.rollouts import promote, rollout_status
from patchctl.rules.lineage import (
    Approved,
    Entry,
    HostPlan,
    LineageRollout,
    Offered,
    below_floor,
    follow_up_successors,
    host_plan,
    starved_lineages,
)
from patchctl.rules.model import HOST_BLOCKED, HOST_FAILED, HOST_OK, HOST_UNREACHABLE, ApplyOutcome, Update
from patchctl.rules.policy import Policy, Wave, parse_policy
from patchctl.store import Store
from patchctl.store.rollouts import Decision, RolloutStore
from patchctl.verify import VerifyOptions, verify
from tests.unit.test_scan_module import load_plugin_module
from tests.unit.test_store import OPENSSL, T0, ok_scan

NOW = datetime(2026, 1, 10, tzinfo=UTC)
APP = "patchctl-demo-app"
APPROVED = Approved(f"apt:{APP}:1.1-1", "apt", APP, "1.1-1")
LINEAGES = {("apt", APP)}


def policy(successors: str, classifications: str = "[security, bugfix, other]") -> Policy:
    text = f"baselines:\n  debian:\n    classifications: {classifications}\n    approve_after_days: 30\n"
    return parse_policy(text + f"    successors: {successors}\n", "p.yml")


def offer(version: str, installed: str = "1.0-1", major: bool = False) -> Offered:
    return Offered(f"apt:{APP}:{version}", "apt", APP, version, installed, "other", None, major)


def test_the_approved_version_missing_is_installed() -> None:
    plan = host_plan([APPROVED], {APPROVED.uid}, [offer("1.1-1")], LINEAGES, policy("block"), NOW)
    assert [(e.uid, e.install) for e in plan.entries] == [(APPROVED.uid, True)] and not plan.blocked


def test_nothing_missing_is_only_checked_and_a_package_never_listed_does_not_apply() -> None:
    plan = host_plan([APPROVED], set(), [], LINEAGES, policy("block"), NOW)
    assert [(e.uid, e.version, e.install) for e in plan.entries] == [(APPROVED.uid, "1.1-1", False)]
    assert host_plan([APPROVED], set(), [], set(), policy("block"), NOW) == HostPlan()


@pytest.mark.parametrize(
    ("successors", "reason"),
    [
        ("block", "approved 1.1-1 is no longer offered; the repositories offer 1.2-1 (successors: block"),
        ("repilot", "(successors: repilot: 1.2-1 goes through the pilot of a follow-up rollout first"),
    ],
)
def test_a_superseded_approved_version_blocks(successors: str, reason: str) -> None:
    """The defect this guards: the superseded uid is no longer missing, the successor is. Breaking
    it: planning only the missing rollout uids (the old deploy) gives an empty plan here, and
    the host was recorded ok."""
    plan = host_plan([APPROVED], {offer("1.2-1").uid}, [offer("1.2-1")], LINEAGES, policy(successors), NOW)
    assert plan.entries == []
    assert reason in plan.blocked[APPROVED.uid]


def test_successors_install_takes_the_newest_non_major_successor_without_the_age_wait() -> None:
    offers = [offer("1.2-1"), offer("1.3-1"), offer("2.0-1", major=True)]
    plan = host_plan([APPROVED], {o.uid for o in offers}, offers, LINEAGES, policy("install"), NOW)
    assert [(e.uid, e.version, e.install) for e in plan.entries] == [(f"apt:{APP}:1.3-1", "1.3-1", True)]
    assert plan.entries[0].note == "installed 1.3-1 (successor of approved 1.1-1)"


def test_successors_install_blocks_when_the_baseline_does_not_approve_it_or_only_a_major_is_offered() -> None:
    plan = host_plan([APPROVED], set(), [offer("1.2-1")], LINEAGES, policy("install", "[security]"), NOW)
    assert "the baseline does not approve apt:patchctl-demo-app:1.2-1" in plan.blocked[APPROVED.uid]
    plan = host_plan([APPROVED], set(), [offer("2.0-1", major=True)], LINEAGES, policy("install"), NOW)
    assert "a major successor is never taken" in plan.blocked[APPROVED.uid]


def test_a_host_already_at_or_above_the_floor_is_only_checked() -> None:
    # the scan lists 1.3-1 missing, but the host has 1.2-1: above the approved 1.1-1
    plan = host_plan([APPROVED], set(), [offer("1.3-1", installed="1.2-1")], LINEAGES, policy("block"), NOW)
    assert [(e.uid, e.install) for e in plan.entries] == [(APPROVED.uid, False)] and not plan.blocked


def test_below_floor_reads_the_versions_after_the_run() -> None:
    check = Entry(APPROVED, APPROVED.uid, "1.1-1", install=False)
    assert below_floor([check], {APP: "1.1-1"}) == {} == below_floor([check], {APP: "1.2-1"})
    assert below_floor([check], {APP: "1.0-1"}) == {
        APPROVED.uid: "1.0-1 installed after the run, below the approved 1.1-1"
    }
    assert below_floor([check], {}) == {}  # removed since: no longer applies
    install = Entry(APPROVED, APPROVED.uid, "1.1-1", install=True)
    assert "not installed after the run" in below_floor([install], {})[APPROVED.uid]


def test_judge_ok_only_when_the_package_manager_shows_the_floor() -> None:
    """Breaking it: judge returning the module's outcome as it is records the host ok at 1.0-1
    (its apply result had nothing failed: the version was only checked)."""
    plan = HostPlan(entries=[Entry(APPROVED, APPROVED.uid, "1.1-1", install=False)])
    ok = judge(ApplyOutcome("h", HOST_OK, versions={APP: "1.1-1"}), plan)
    assert ok.status == HOST_OK
    low = judge(ApplyOutcome("h", HOST_OK, versions={APP: "1.0-1"}), plan)
    assert low.status == HOST_FAILED
    assert low.error == f"{APPROVED.uid}: 1.0-1 installed after the run, below the approved 1.1-1"
    blocked = judge(ApplyOutcome("h", HOST_OK), HostPlan(blocked={APPROVED.uid: "approved 1.1-1 is no longer offered"}))
    assert (blocked.status, blocked.failed) == (HOST_BLOCKED, {APPROVED.uid: "approved 1.1-1 is no longer offered"})
    gone = ApplyOutcome("h", HOST_UNREACHABLE, error="ssh")
    assert judge(gone, plan) == gone


def test_the_apply_module_reports_the_installed_versions_it_read() -> None:
    """The ``versions`` of the apply result: what dpkg/rpm show installed. Breaking it: counting
    any status (``rc``: removed, config files left; ``iF``: half configured) as installed puts
    those packages in it, and a host would be judged at a version it does not run."""
    pal = load_plugin_module("patch_apply_linux")
    dpkg = "a\t1.1-1\tii\nb\t2.0-1\thi\nc\t1.0-1\trc\nd\t1.2-1\tiF\n"
    assert pal.installed_versions(pal.parse_dpkg_status(dpkg)) == {"a": "1.1-1", "b": "2.0-1"}
    rpm = pal.parse_rpm_status("patchctl-demo-app\tx86_64\t0\t1.2\t1\n")
    assert pal.installed_versions(rpm) == {"patchctl-demo-app": "1.2-1"}


def test_rollout_status_lists_blocked_hosts_apart_from_ok_and_failed(tmp_path: Path) -> None:
    """A blocked deploy result is neither ok nor failed nor pending in rollout status: the wave
    counts it in hosts_blocked, the next wave is not promoted (short of min_success_percent) and
    the status lists it with its reason. Breaking it: hosts_pending without the blocked hosts subtracted shows web01
    pending (1 instead of 0) here (run and failed)."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    with Store.open(url) as store:
        run = store.start_run("scan", "inv", None, 1, now=T0)
        store.record_host_scan(run, ok_scan("web01", T0, [OPENSSL]))
        store.finish_run(run, "ok", now=T0)
        rs = RolloutStore(store)
        entries = rs.catalog()
        rs.record_decisions([(e, Decision("approved", "tester", "test", T0), False) for e in entries])
        waves = [Wave("pilot", "web01", bake_days=0), Wave("fleet", "all", bake_days=0)]
        rid = rs.create_rollout(T0, "tester", "policy.yml", waves, entries)
        rs.set_wave(rid, 0, T0, "tester", "deploy start", state="deploying", hosts=["web01"], started_at=T0)
        deploy_run = rs.start_deploy_run(rid, "pilot", "tester", T0)
        why = "approved 1.1-1 is no longer offered; the repositories offer 1.2-1 (successors: block: ...)"
        blocked = ApplyOutcome("web01", HOST_BLOCKED, failed={OPENSSL.uid: why}, error=f"{OPENSSL.uid}: {why}")
        rs.record_deploy_result(deploy_run, rid, "pilot", blocked, T0)
        rs.finish_deploy_run(deploy_run, "finished", T0)
        rs.set_wave(rid, 0, T0, "tester", "wave finished", state="finished", finished_at=T0)
    status = rollout_status(url, rid, T0).as_dict()
    wave = status["waves"][0]
    assert (wave["hosts_ok"], wave["hosts_failed"], wave["hosts_blocked"], wave["hosts_pending"]) == (0, 0, 1, 0)
    assert status["blocked"] == [
        {"host": "web01", "rollout": rid, "wave": "pilot", "reason": f"{OPENSSL.uid}: {why}", "follow_up_rollout": None}
    ]
    assert not status["promotion"]["allowed"]
    assert "below min_success_percent 100" in status["promotion"]["reason"]


def _blocked_store(db_url: str) -> tuple[int, str]:
    """web01 blocked and web02 failed in rollout 1's pilot; returns (rollout id, web01's reason)."""
    with Store.open(db_url) as store:
        run = store.start_run("scan", "inv", None, 2, now=T0)
        for host in ("web01", "web02"):
            store.record_host_scan(run, ok_scan(host, T0, [OPENSSL]))
        store.finish_run(run, "ok", now=T0)
        rs = RolloutStore(store)
        entries = rs.catalog()
        rs.record_decisions([(e, Decision("approved", "tester", "test", T0), False) for e in entries])
        rid = rs.create_rollout(T0, "tester", "policy.yml", [Wave("pilot", "all", bake_days=0)], entries)
        rs.set_wave(rid, 0, T0, "tester", "deploy start", state="deploying", hosts=["web01", "web02"], started_at=T0)
        deploy_run = rs.start_deploy_run(rid, "pilot", "tester", T0)
        why = "approved 1.1-1 is no longer offered; the repositories offer 1.2-1 (successors: block: ...)"
        blocked = ApplyOutcome("web01", HOST_BLOCKED, failed={OPENSSL.uid: why}, error=f"{OPENSSL.uid}: {why}")
        rs.record_deploy_result(deploy_run, rid, "pilot", blocked, T0)
        failed = ApplyOutcome("web02", HOST_FAILED, failed={OPENSSL.uid: "dpkg: error"}, error="dpkg: error")
        rs.record_deploy_result(deploy_run, rid, "pilot", failed, T0)
        rs.finish_deploy_run(deploy_run, "finished", T0)
        rs.set_wave(rid, 0, T0, "tester", "wave finished", state="finished", finished_at=T0)
    return rid, f"{OPENSSL.uid}: {why}"


def test_a_blocked_host_is_blocked_in_verify_report_and_rollout_status(db_url: str, tmp_path: Path) -> None:
    """The one rule's ``blocked``: a host whose last deploy was blocked is ``blocked`` (with the
    reason) in verify and the report alike, and ``rollout status`` lists it; a failed one stays
    ``failed``; a later ok result in a newer rollout (the follow-up) ends it. SQLite and
    PostgreSQL. Breaking it: without the blocked check in compliance_state, verify and the report
    said ``missing`` for web01 (``failed`` before the state existed); with blocked_hosts taking every
    blocked result, not only each host's last, web01 stayed ``blocked`` after rollout 2's ok
    (both run and failed here)."""
    rid, reason = _blocked_store(db_url)
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    web01:\n    web02:\n")
    now = T0 + timedelta(hours=1)
    report = full_report(db_url, None, now)
    assert dict(report.states) == {"web01": "blocked", "web02": "failed"}
    verified = verify(VerifyOptions(str(inventory), db_url, now, rescan=False)).as_dict()
    by_host = {h["host"]: h for h in verified["hosts"]}
    assert {h: v["state"] for h, v in by_host.items()} == {"web01": "blocked", "web02": "failed"}
    assert reason in by_host["web01"]["detail"]
    assert verified["counts"]["blocked"] == 1
    status = rollout_status(db_url, rid, now).as_dict()
    assert [b["host"] for b in status["blocked"]] == ["web01"]
    assert [(f.host, f.status) for f in report.failures] == [("web01", "blocked"), ("web02", "failed")]
    # a newer rollout delivers web01: its last deploy is ok, it is no longer blocked
    with Store.open(db_url) as store:
        rs = RolloutStore(store)
        rid2 = rs.create_rollout(now, "tester", "policy.yml", [Wave("pilot", "web01", bake_days=0)], rs.catalog())
        deploy_run = rs.start_deploy_run(rid2, "pilot", "tester", now)
        rs.record_deploy_result(deploy_run, rid2, "pilot", ApplyOutcome("web01", HOST_OK), now)
        rs.finish_deploy_run(deploy_run, "finished", now)
    states = full_report(db_url, None, now).states
    assert states["web01"] == "missing"  # approved openssl still missing: no longer blocked


def test_follow_up_successors_take_the_newest_non_major_newer_version() -> None:
    """Breaking it: without the ``not o.major`` filter the follow-up took 2.0-1 (run and failed)."""
    offers = [offer("1.2-1"), offer("1.3-1"), offer("2.0-1", major=True), offer("1.0-2")]
    assert {k: o.version for k, o in follow_up_successors([APPROVED], offers, policy("repilot")).items()} == {
        APPROVED.uid: "1.3-1"
    }
    assert follow_up_successors([APPROVED], offers, policy("block")) == {}
    assert follow_up_successors([APPROVED], [offer("2.0-1", major=True)], policy("repilot")) == {}


REPILOT_POLICY = """\
baselines:
  debian:
    classifications: [other]
    successors: repilot
    successor_bake_days: 2
waves:
  - {name: pilot, hosts: web01, bake_days: 7}
  - {name: fleet, hosts: all, bake_days: 0}
"""


def test_promote_creates_the_follow_up_rollout_of_repilot_blocked_hosts(db_url: str) -> None:
    """successors: repilot on the store, both backends: web02 blocked in rollout 1 (approved 1.1-1
    superseded by 1.2-1); ``rollout promote`` (the cron path, no rollout named) creates rollout 2
    holding only 1.2-1, its pilot baking successor_bake_days, the audit trail of rollout 1 naming
    it, and promotes it (its pilot is due); a second promote creates no other. Both statuses list
    web02 blocked with follow-up 2. Breaking it: promote without the follow-up step answered for
    rollout 1, complete, no wave and no follow-up (run and failed here)."""
    pol = parse_policy(REPILOT_POLICY, "p.yml")
    a11 = Update("apt", APP, "1.1-1", installed_version="1.0-1")
    a12 = Update("apt", APP, "1.2-1", installed_version="1.0-1")
    with Store.open(db_url) as store:
        run = store.start_run("scan", "inv", None, 2, now=T0)
        store.record_host_scan(run, ok_scan("web01", T0, [a11]))
        store.record_host_scan(run, ok_scan("web02", T0, [a11]))
        store.finish_run(run, "ok", now=T0)
        rs = RolloutStore(store)
        rid = rs.create_rollout(T0, "tester", "p.yml", pol.waves, [e for e in rs.catalog() if e.uid == a11.uid])
        deploy_run = rs.start_deploy_run(rid, "pilot", "tester", T0)
        rs.set_wave(rid, 0, T0, "t", "deploy", state="finished", hosts=["web01"], started_at=T0, finished_at=T0)
        rs.record_deploy_result(deploy_run, rid, "pilot", ApplyOutcome("web01", HOST_OK), T0)
        t1 = T0 + timedelta(days=8)
        run = store.start_run("scan", "inv", None, 1, now=t1)
        store.record_host_scan(run, ok_scan("web02", t1, [a12]))
        store.finish_run(run, "ok", now=t1)
        why = "approved 1.1-1 is no longer offered; the repositories offer 1.2-1 (successors: repilot: ...)"
        blocked = ApplyOutcome("web02", HOST_BLOCKED, failed={a11.uid: why}, error=f"{a11.uid}: {why}")
        rs.set_wave(rid, 1, t1, "t", "deploy", state="finished", hosts=["web02"], started_at=t1, finished_at=t1)
        rs.record_deploy_result(deploy_run, rid, "fleet", blocked, t1)
        rs.finish_deploy_run(deploy_run, "finished", t1)
    result = promote(db_url, None, t1, pol)
    assert (result.follow_up_of, result.promotion.wave and result.promotion.wave.wave.name) == (rid, "pilot")
    fid = result.rollout_id
    assert fid != rid
    again = promote(db_url, None, t1, pol)
    assert again.rollout_id == fid and again.follow_up_of is None
    with Store.open(db_url) as store:
        rs = RolloutStore(store)
        follow = rs.rollout(fid)
        assert [u.uid for u in follow.updates] == [a12.uid] and follow.follows == rid
        assert [(w.wave.name, w.wave.bake_days) for w in follow.waves] == [("pilot", 2), ("fleet", 0)]
        assert rs.follow_ups(rid) == [fid]
        trail = [(a.action, a.detail) for a in rs.audit_log(rid)]
        assert (
            "rollout follow-up",
            f"successors: repilot: {a12.uid} succeeds approved {a11.uid}",
        ) in trail
    for shown in (rid, fid):
        status = rollout_status(db_url, shown, t1, pol).as_dict()
        assert [(b["host"], b["rollout"], b["follow_up_rollout"]) for b in status["blocked"]] == [("web02", rid, fid)]
    assert rollout_status(db_url, fid, t1, pol).as_dict()["follows"] == rid
    # a month after rollout 1's pilot started, its lineage has reached no host beyond the pilot
    month = T0 + timedelta(days=31)
    starved = rollout_status(db_url, fid, month, pol).as_dict()["starved"]
    assert [(x["lineage"], x["rollouts"], x["days"]) for x in starved] == [(f"apt:{APP}", [rid, fid], 31.0)]
    assert [(x.name, x.rollouts) for x in full_report(db_url, None, month, policy=pol).starved] == [(APP, (rid, fid))]
    assert rollout_status(db_url, fid, t1, pol).as_dict()["starved"] == []


def test_a_lineage_never_beyond_the_pilot_is_starved() -> None:
    """Rollouts 1-3 each pilot a newer version of the app, none reaches the fleet: 40 days after
    rollout 1's pilot started the lineage is starved (rollouts 1-3); openssl reached the fleet in
    rollout 2, so its rollout 3 (pilot only, 5 days) is not. Breaking it: counting from the
    latest pilot (min -> max of the trailing starts) gave 10 days, not starved (run and failed)."""
    day = timedelta(days=1)
    rows = [
        LineageRollout(1, "apt", APP, "1.1-1", NOW - 40 * day, False),
        LineageRollout(2, "apt", APP, "1.2-1", NOW - 25 * day, False),
        LineageRollout(3, "apt", APP, "1.3-1", NOW - 10 * day, False),
        LineageRollout(1, "apt", "openssl", "3.0.13", NOW - 40 * day, False),
        LineageRollout(2, "apt", "openssl", "3.0.14", NOW - 25 * day, True),
        LineageRollout(3, "apt", "openssl", "3.0.15", NOW - 5 * day, False),
        LineageRollout(4, "apt", "curl", "8.0", None, False),
    ]
    starved = starved_lineages(rows, {"apt": 30}, NOW)
    assert [(s.name, s.days, s.rollouts, s.versions) for s in starved] == [
        (APP, 40.0, (1, 2, 3), ("1.1-1", "1.2-1", "1.3-1"))
    ]
    assert "consider 'successors: install'" in starved[0].reason
    assert starved_lineages(rows, {"apt": 45}, NOW) == []
