"""Change safety: hooks and health checks as the host-side code runs them, the results in the
store (SQLite and PostgreSQL) and in the report (text, JSON, HTML)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from patchctl.render.report_html import render_html
from patchctl.render.report_json import full_report_json
from patchctl.render.text import full_report_lines
from patchctl.report import full_report
from patchctl.rules.model import HOST_FAILED, HOST_OK, ApplyOutcome
from patchctl.rules.policy import Wave
from patchctl.rules.report import restart_services
from patchctl.store import Store
from patchctl.store.rollouts import Decision, RolloutStore
from tests.unit.test_scan_module import load_plugin_module
from tests.unit.test_store import OPENSSL, T0, ok_scan


def _safety() -> Any:
    return load_plugin_module("patch_apply_linux").__dict__["run_hooks"].__globals__


def test_hooks_stop_at_the_first_failure_that_must_succeed_and_keep_secrets_out() -> None:
    """Seen failing with ``must_succeed`` ignored (the optional hook stopped the phase) and with
    the no_log output kept (the secret in the result)."""
    s = _safety()
    results, error = s["run_hooks"](
        [
            {"name": "optional", "command": "echo soft; exit 1", "must_succeed": False},
            {"name": "secret", "command": 'echo "$TOKEN"', "environment": {"TOKEN": "t0p"}, "no_log": True},
            {"name": "drain", "command": "echo refused >&2; exit 4"},
            {"name": "never", "command": "touch /nonexistent/never"},
        ],
        "pre_install",
    )
    assert [(r["name"], r["rc"], r["ok"]) for r in results] == [
        ("optional", 1, False),
        ("secret", 0, True),
        ("drain", 4, False),
    ]
    assert error == "pre_install hook drain failed (exit 4): refused"
    assert "t0p" not in json.dumps(results)
    assert "command" not in results[0]


def test_a_hook_past_its_timeout_is_killed_with_its_children() -> None:
    s = _safety()
    results, error = s["run_hooks"]([{"name": "slow", "command": "sleep 30 & sleep 30", "timeout": 1}], "post_install")
    assert results[0]["timed_out"] and results[0]["rc"] == 124
    assert results[0]["seconds"] < 10
    assert error is not None and "timed out after 1s" in error


def test_health_compare_new_failures_fail_pre_existing_do_not() -> None:
    """Seen failing with a failure after the change counted new whatever the baseline said."""
    s = _safety()
    before = [
        {"name": "web", "kind": "tcp", "ok": True, "message": "ok"},
        {"name": "db", "kind": "tcp", "ok": False, "message": "refused"},
    ]
    after = [
        {"name": "web", "kind": "tcp", "ok": False, "message": "127.0.0.1:80 refused a connection"},
        {"name": "db", "kind": "tcp", "ok": False, "message": "refused"},
        {"name": "new", "kind": "command", "ok": True, "message": "exit 0"},
    ]
    compared = s["compare"](before, after)
    assert [(c["name"], c["state"], c["before"]) for c in compared] == [
        ("web", "failed", "passed"),
        ("db", "pre_existing", "failed"),
        ("new", "passed", None),
    ]
    assert s["health_error"](compared, "after the install") == (
        "health check failed after the install: web: 127.0.0.1:80 refused a connection"
    )
    assert s["health_error"](compared[1:], "after the install") is None


def test_health_check_kinds_on_this_machine() -> None:
    s = _safety()
    ok, message = s["run_check"]({"kind": "command", "command": "exit 3"})
    assert (ok, message) == (False, "exit 3")
    ok, message = s["run_check"]({"kind": "tcp", "host": "127.0.0.1", "port": 9, "timeout": 2})
    assert not ok and "127.0.0.1:9 refused a connection" in message
    assert s["check_name"]({"kind": "http", "url": "http://127.0.0.1/health"}) == "http http://127.0.0.1/health"


def test_restart_services_names_units_else_processes() -> None:
    entries = [
        {"unit": "nginx.service", "processes": [{"pid": 10, "comm": "nginx"}]},
        {"unit": None, "processes": [{"pid": 11, "comm": "webd"}]},
        {"unit": "ssh.service", "processes": []},
    ]
    assert restart_services(entries) == ("nginx", "ssh", "webd")


def test_health_and_restart_pending_in_the_store_and_the_report(db_url: str) -> None:
    """A deploy result's health checks and restart pending go to the store in its transaction and
    come back in the report's text, JSON and HTML, on both backends; a later result without
    services pending clears them. Seen failing with write_health left out of
    record_deploy_result (no health checks in the report) and with the empty restart list not
    clearing the host's (nginx still pending after the later result)."""
    with Store.open(db_url) as store:
        run = store.start_run("scan", "inv", None, 1, now=T0)
        store.record_host_scan(run, ok_scan("web01", T0, [OPENSSL]))
        store.finish_run(run, "ok", now=T0)
        rs = RolloutStore(store)
        entries = rs.catalog()
        rs.record_decisions([(e, Decision("approved", "tester", "test", T0), False) for e in entries])
        rid = rs.create_rollout(T0, "tester", "policy.yml", [Wave("fleet", "all", bake_days=0)], entries)
        deploy_run = rs.start_deploy_run(rid, "fleet", "tester", T0)
        outcome = ApplyOutcome(
            "web01",
            HOST_FAILED,
            installed=[OPENSSL.uid],
            error="health check failed after the install: webd: 10.0.0.1:80 refused a connection",
            hooks=[{"phase": "pre_install", "name": "drain", "rc": 0, "ok": True, "output": "drained"}],
            health=[
                {"name": "webd", "kind": "tcp", "state": "failed", "before": "passed", "message": "refused"},
                {"name": "db", "kind": "tcp", "state": "pre_existing", "before": "failed", "message": "down"},
                {"name": "etc", "kind": "command", "state": "passed", "before": "passed", "message": "exit 0"},
            ],
            restart_pending=[{"unit": "nginx.service", "processes": [{"pid": 7, "comm": "nginx"}]}],
        )
        rs.record_deploy_result(deploy_run, rid, "fleet", outcome, T0)

    rep = full_report(db_url, None, T0 + timedelta(hours=1))
    assert [(c.name, c.state) for c in rep.health] == [("webd", "failed"), ("db", "pre_existing"), ("etc", "passed")]
    assert [(r.host, r.services) for r in rep.restart_pending] == [("web01", ("nginx",))]
    lines = full_report_lines(rep)
    assert "web01: webd failed (before: passed, deploy): refused" in lines
    assert "web01: db pre_existing (before: failed, deploy): down" in lines
    assert "web01: restart pending: nginx" in lines
    data = full_report_json(rep)
    assert data["restart_pending"] == [{"host": "web01", "services": ["nginx"], "since": "2024-06-01T10:00:00Z"}]
    assert {c["name"]: c["state"] for c in data["health"]} == {"webd": "failed", "db": "pre_existing", "etc": "passed"}
    html = render_html(rep)
    assert 'id="health"' in html and 'id="restart-pending"' in html

    # a later change's result: its checks are the host's latest, nothing pending any more
    later = T0 + timedelta(minutes=30)
    with Store.open(db_url) as store:
        rs = RolloutStore(store)
        run2 = rs.start_deploy_run(rid, "fleet", "tester", later)
        ok = ApplyOutcome(
            "web01",
            HOST_OK,
            health=[{"name": "webd", "kind": "tcp", "state": "passed", "before": "failed", "message": "ok"}],
            restart_pending=[],
        )
        rs.record_deploy_result(run2, rid, "fleet", ok, later)
    rep = full_report(db_url, None, T0 + timedelta(hours=1))
    assert [(c.name, c.state) for c in rep.health] == [("webd", "passed")]
    assert rep.restart_pending == ()


def test_restart_mode_and_decision_follow_the_role_and_the_window() -> None:
    """Seen failing with the window check left out of restart_decision (a closed window restarted)."""
    from zoneinfo import ZoneInfo

    from patchctl.rules.maintenance import parse_windows
    from patchctl.rules.reboot_policy import ACTION_PENDING, ACTION_REBOOT, restart_decision, restart_mode

    assert restart_mode("server") == "services"
    assert restart_mode("client") == "never"
    assert restart_mode("client", "services") == "services"
    try:
        restart_mode("server", "sometimes")
    except ValueError as exc:
        assert "patch_restart must be one of services, reboot, never" in str(exc)
    else:
        raise AssertionError("a bad patch_restart was accepted")
    (window,) = parse_windows(
        [{"name": "nightly", "start": "0 1 * * *", "duration": "4h", "timezone": "Europe/Berlin"}], "policy.yml"
    ).values()
    berlin = ZoneInfo("Europe/Berlin")
    from datetime import datetime

    inside = datetime(2024, 6, 2, 2, 0, tzinfo=berlin)
    outside = datetime(2024, 6, 2, 12, 0, tzinfo=berlin)
    assert restart_decision("services", window, inside).action == ACTION_REBOOT
    assert restart_decision("services", window, outside).action == ACTION_PENDING
    assert restart_decision("never", window, inside).action == ACTION_PENDING
    assert restart_decision("reboot", window, inside).action == ACTION_PENDING
    assert restart_decision("services", None, inside).action == ACTION_PENDING


def test_deleted_mappings_and_units_from_proc_text() -> None:
    s = _safety()
    maps = (
        "7f0000000000-7f0000001000 r--s 00000000 00:2a 1234   /usr/lib/libdemo.so.1 (deleted)\n"
        "7f0000002000-7f0000003000 rw-s 00000000 00:05 99     /dev/shm/cache (deleted)\n"
        "7f0000004000-7f0000005000 r--p 00000000 00:2a 1235   /usr/lib/libc.so.6\n"
        "7f0000006000-7f0000007000 rw-s 00000000 00:01 7      /memfd:pool (deleted)\n"
    )
    assert s["deleted_mappings"](maps) == ["/usr/lib/libdemo.so.1"]
    assert s["unit_of"]("0::/system.slice/nginx.service\n") == "nginx.service"
    assert s["unit_of"]("0::/user.slice/user-0.slice/session-3.scope\n") is None
    assert s["process_name"]("patchctl-demo-w", ["/usr/bin/python3", "/usr/sbin/patchctl-demo-webd", "1"]) == (
        "patchctl-demo-webd"
    )
    assert s["needrestart_services"]("NEEDRESTART-VER: 3.6\nNEEDRESTART-SVC: ssh.service\n") == ["ssh.service"]


ALERTMANAGER = {
    "version": "4",
    "groupKey": '{}:{alertname="HighErrorRate"}',
    "status": "firing",
    "receiver": "patchctl",
    "groupLabels": {"alertname": "HighErrorRate"},
    "commonLabels": {"alertname": "HighErrorRate", "severity": "page"},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager.example:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "HighErrorRate", "instance": "web01:9100", "severity": "page"},
            "annotations": {"summary": "5xx above 5% for 10m"},
            "startsAt": "2024-06-01T10:55:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example:9090/graph",
            "fingerprint": "a1b2c3",
        },
        {
            "status": "resolved",
            "labels": {"alertname": "HighErrorRate", "instance": "web02:9100"},
            "annotations": {"summary": "over"},
            "startsAt": "2024-06-01T10:00:00Z",
            "endsAt": "2024-06-01T10:30:00Z",
        },
    ],
}


def _cli(db_url: str, *args: str, stdin: str | None = None) -> Any:
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "patchctl", "--db", db_url, *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_an_alertmanager_payload_opens_an_incident_that_blocks_promotion(db_url: str, tmp_path: Any) -> None:
    """The firing alert opens one incident on the latest rollout (host from its instance label,
    the resolved one opens none), the finished and baked pilot is then not promoted; a bad
    payload is one line, exit 2, nothing written. Seen failing with resolved alerts not skipped
    (two incidents, one on web02)."""
    from patchctl.rollouts import list_incidents, promote
    from patchctl.rules.policy import parse_policy

    with Store.open(db_url) as store:
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
        rs.record_deploy_result(deploy_run, rid, "pilot", ApplyOutcome("web01", HOST_OK, installed=[OPENSSL.uid]), T0)
        rs.finish_deploy_run(deploy_run, "finished", T0)
        rs.set_wave(rid, 0, T0, "tester", "wave finished", state="finished", finished_at=T0)

    bad = _cli(db_url, "incident", "open", "--from-alert", "-", stdin='{"alerts": [{"status": "burning"}]}')
    assert bad.returncode == 2
    assert bad.stderr.strip() == "patchctl: error: -: alerts[0]: status: must be firing or resolved, got 'burning'"
    assert list_incidents(db_url, rid, include_closed=True) == []

    path = tmp_path / "alert.json"
    path.write_text(json.dumps(ALERTMANAGER))
    res = _cli(db_url, "--json", "incident", "open", "--from-alert", str(path))
    assert res.returncode == 0, res.stderr
    assert [(i["rollout"], i["host"], i["text"]) for i in json.loads(res.stdout)] == [
        (rid, "web01", "alert HighErrorRate: 5xx above 5% for 10m")
    ]
    (inc,) = list_incidents(db_url, rid, include_closed=False)
    assert inc.host == "web01"
    policy = parse_policy(
        "baselines:\n  debian: {classifications: [security]}\n"
        "waves:\n  - {name: pilot, hosts: web01, bake_days: 0}\n  - {name: fleet, hosts: all}\n",
        "p",
    )
    import pytest

    from patchctl.errors import PolicyBlocked

    with pytest.raises(PolicyBlocked, match="incident"):
        promote(db_url, rid, T0 + timedelta(days=1), policy)

    plain = _cli(db_url, "incident", "open", "--from-alert", "-", stdin=json.dumps({"rollout": rid, "text": "pager"}))
    assert plain.returncode == 0, plain.stderr
    assert "incident 2 opened on rollout" in plain.stdout
