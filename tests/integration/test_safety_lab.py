"""Change safety against the real lab: hooks around the install, health checks before and after
it, services still running replaced code. What a host has installed is read with dpkg over SSH,
processes and boot ids from the host and the lab, never from patchctl."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from patchctl.lab.repo import WEBD, WEBD_PIDFILE

from .conftest import CliResult, LabEnv
from .test_crash_lab import dpkg_state
from .test_reboot_lab import INSIDE

pytestmark = [pytest.mark.integration, pytest.mark.lab]

APT = "DEBIAN_FRONTEND=noninteractive apt-get -q -y"
SECRET = "s3cr3t-hook-token-4711"


def policy(tmp_path: Path, *, reject: tuple[str, ...], concurrency: int = 4, fail_percent: int = 100) -> Path:
    path = tmp_path / "policy.yml"
    path.write_text(
        textwrap.dedent(
            f"""\
            ---
            baselines:
              debian:
                classifications: [security, bugfix, other]
                approve_after_days: 0
                reject: [{", ".join(reject)}]
            waves:
              - {{name: fleet, hosts: all, bake_days: 0, max_concurrency: {concurrency},
                  max_fail_percent: {fail_percent}, min_success_percent: 0}}
            windows:
              - {{name: lab-nightly, start: "0 1 * * *", duration: 4h, timezone: Europe/Berlin}}
            """
        )
    )
    return path


def inventory_with(env: LabEnv, tmp_path: Path, hostvars: dict[str, dict[str, Any]]) -> Path:
    """The lab's inventory with ``hostvars`` added to its hosts."""
    inv = yaml.safe_load(env.inventory.read_text())
    for host, extra in hostvars.items():
        inv["all"]["hosts"][host].update(extra)
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inv, sort_keys=False))
    return path


class Run:
    def __init__(self, env: LabEnv, tmp_path: Path, inventory: Path, policy: Path) -> None:
        self.env, self.inventory, self.policy = env, inventory, policy
        self.db = tmp_path / "safety.db"

    def __call__(self, *args: str) -> CliResult:
        res = self.env.cli("-i", str(self.inventory), "--policy", str(self.policy), *args, db=self.db)
        assert "Traceback" not in res.stderr, res.stderr
        return res

    def query(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as conn:
            return list(conn.execute(sql, params))


def test_failing_pre_install_hook_installs_nothing_and_counts_toward_the_threshold(
    lab_env: LabEnv, tmp_path: Path
) -> None:
    """The first host's pre_install hook fails: dpkg on it still shows every package at its old
    version, the host is failed with the hook's output, and that failure (1 of 4 > 20%) halts the
    wave before the next batch. The secret in the hook's environment is nowhere in the output or
    the store; a post_install hook that fails with must_succeed false does not fail its host.

    Seen failing with the module's pre_install abort removed (the host installed 1.1-1 and was
    ok, the wave went on) and with the hook's ``environment`` not declared no_log (the secret
    showed in the stored error)."""
    lab_env.lab.reset()
    hosts = sorted(h.name for h in lab_env.lab.hosts())  # the wave's order
    first, second = hosts[0], hosts[1]
    inv = inventory_with(
        lab_env,
        tmp_path,
        {
            first: {
                "patch_hooks": {
                    "pre_install": [
                        {
                            "name": "drain",
                            "command": 'echo "draining with $TOKEN"; echo LB refused >&2; exit 3',
                            "environment": {"TOKEN": SECRET},
                            "timeout": 30,
                        },
                    ]
                }
            },
            second: {"patch_hooks": {"post_install": [{"name": "notify", "command": "exit 1", "must_succeed": False}]}},
        },
    )
    run = Run(
        lab_env,
        tmp_path,
        inv,
        policy(tmp_path, reject=("patchctl-demo-broken", "patchctl-demo-kernel"), concurrency=1, fail_percent=20),
    )
    assert run("scan").code == 0
    assert run("rollout", "create").code == 0
    res = run("--json", "deploy")
    assert res.code == 1, res.stderr
    report = json.loads(res.stdout)
    by_host = {h["host"]: h for h in report["hosts"]}
    assert set(by_host) == {first}, report
    assert by_host[first]["status"] == "failed"
    assert "pre_install hook drain failed (exit 3)" in by_host[first]["error"]
    assert "LB refused" in by_host[first]["error"]
    assert "nothing installed" in by_host[first]["error"]
    assert report["state"] == "halted"
    assert "1 of 4 hosts failed" in report["halted_reason"]
    assert sorted(report["not_started"]) == sorted(hosts[1:])
    assert dpkg_state(lab_env, first)["patchctl-demo-app"] == ("1.0-1", "ii")
    assert dpkg_state(lab_env, first)["patchctl-demo-ssl"] == ("1.0-1", "ii")
    assert SECRET not in res.stdout + res.stderr
    stored = run.query("SELECT error, hooks FROM deploy_results")
    assert stored and all(SECRET not in str(row) for row in stored)
    (hooks,) = [json.loads(r[1]) for r in stored]
    assert [(h["phase"], h["name"], h["rc"], h["ok"]) for h in hooks] == [("pre_install", "drain", 3, False)]

    # the rest of the wave, the hook gone from the first host: the second host's failing
    # post_install hook may fail (must_succeed false), so it is ok with the new versions
    run.inventory = inventory_with(lab_env, tmp_path, {second: inv_hooks(inv, second)})
    again = run("--json", "deploy")
    data = json.loads(again.stdout)
    by_host = {h["host"]: h for h in data["hosts"]}
    assert by_host[second]["status"] == "ok", by_host[second]
    assert dpkg_state(lab_env, second)["patchctl-demo-app"] == ("1.1-1", "ii")
    post = run.query("SELECT hooks FROM deploy_results WHERE host = ?", second)
    assert [(h["phase"], h["ok"]) for h in json.loads(post[-1][0])] == [("post_install", False)]


def inv_hooks(inv: Path, host: str) -> dict[str, Any]:
    hv: dict[str, Any] = yaml.safe_load(inv.read_text())["all"]["hosts"][host]
    return {"patch_hooks": hv["patch_hooks"]}


def start_webd(env: LabEnv, host: str, port: int) -> int:
    """Install the lab daemon 1.0-1 (and its library) on ``host`` and start it on its own address."""
    address = env.lab.host(host).address
    env.ssh(
        host,
        f"{APT} update >/dev/null && {APT} install patchctl-demo-lib=1.0-1 patchctl-demo-web=1.0-1 >/dev/null 2>&1"
        f" && {WEBD} {address} {port} </dev/null >/dev/null 2>&1 && sleep 0.5",
    )
    return int(env.ssh(host, f"cat {WEBD_PIDFILE}").stdout)


def test_a_service_the_update_stops_fails_its_host_and_a_pre_existing_failure_does_not(
    lab_env: LabEnv, tmp_path: Path
) -> None:
    """The lab daemon's update stops it (its postinst): the tcp check that passed before the
    install fails after it, and its host fails with the check's message although dpkg shows the
    update installed. On the second host the same check already failed before (its daemon never
    started): reported pre_existing, the host is ok. Both are in the store and the report.

    Seen failing with ``compare`` counting every failure after the install as new (the second
    host failed too) and with the module's health error dropped (the first host was ok)."""
    lab_env.lab.reset()
    hosts = sorted(h.name for h in lab_env.lab.hosts())
    broken, already = hosts[0], hosts[1]
    start_webd(lab_env, broken, 8085)
    lab_env.ssh(already, f"{APT} update >/dev/null && {APT} install patchctl-demo-web=1.0-1 >/dev/null 2>&1")

    def checks(host: str) -> list[dict[str, Any]]:
        address = lab_env.lab.host(host).address
        return [
            {"name": "webd", "kind": "tcp", "host": address, "port": 8085, "timeout": 3},
            {"name": "etc", "kind": "command", "command": "test -d /etc"},
        ]

    inv = inventory_with(lab_env, tmp_path, {h: {"patch_health": checks(h)} for h in (broken, already)})
    run = Run(lab_env, tmp_path, inv, policy(tmp_path, reject=("patchctl-demo-broken", "patchctl-demo-kernel")))
    assert run("scan").code == 0
    assert run("rollout", "create").code == 0
    res = run("--json", "deploy")
    assert res.code == 1, res.stdout + res.stderr
    by_host = {h["host"]: h for h in json.loads(res.stdout)["hosts"]}
    assert by_host[broken]["status"] == "failed"
    assert "health check failed after the install: webd:" in by_host[broken]["error"]
    assert "refused" in by_host[broken]["error"]
    assert "apt:patchctl-demo-web:1.1-1" in by_host[broken]["installed"]
    assert dpkg_state(lab_env, broken)["patchctl-demo-web"] == ("1.1-1", "ii")
    assert by_host[already]["status"] == "ok", by_host[already]
    assert dpkg_state(lab_env, already)["patchctl-demo-web"] == ("1.1-1", "ii")

    stored = {
        (h, n): (s, b)
        for h, n, s, b in run.query("SELECT host, name, state, before FROM health_results WHERE context = 'deploy'")
    }
    assert stored == {
        (broken, "webd"): ("failed", "passed"),
        (broken, "etc"): ("passed", "passed"),
        (already, "webd"): ("pre_existing", "failed"),
        (already, "etc"): ("passed", "passed"),
    }
    report = run("--json", "report")
    assert report.code in (0, 1), report.stderr
    health = {(c["host"], c["name"]): c["state"] for c in json.loads(report.stdout)["health"]}
    assert health[(broken, "webd")] == "failed"
    assert health[(already, "webd")] == "pre_existing"
    text = run("report")
    assert f"{broken}: webd failed" in text.stdout


def test_a_daemon_running_a_replaced_library_is_restarted_in_its_window_without_a_reboot(
    lab_env: LabEnv, tmp_path: Path
) -> None:
    """The lab daemon maps the lab library; the library's update replaces the file, so the
    daemon runs the deleted one: the server, inside its window (``patch_restart`` defaults to
    services there), gets the daemon restarted with its restart command: a new pid mapping no
    deleted file, the tcp health check passing after it, the same boot id (no reboot). The client
    is only reported: ``restart pending: patchctl-demo-webd`` in the deploy, the report and verify.

    Seen failing with the apply module's restart_pending left out (no restart, the old pid
    still running the deleted library), with the window rule ignored (the client restarted) and
    with verify reading no services (no restart pending on the client's line)."""
    lab_env.lab.reset()
    server, client = "srv-01", "cli-01"
    port = 8087
    pids = {h: start_webd(lab_env, h, port) for h in (server, client)}
    boot_before = {h: lab_env.lab.boot_id(h) for h in (server, client)}

    def vars_of(host: str) -> dict[str, Any]:
        address = lab_env.lab.host(host).address
        restart = f"kill $(cat {WEBD_PIDFILE}); sleep 0.5; {WEBD} {address} {port} </dev/null >/dev/null 2>&1"
        return {
            "patch_restart_commands": {"patchctl-demo-webd": restart},
            "patch_health": [{"name": "webd", "kind": "tcp", "host": address, "port": port, "timeout": 3}],
        }

    inv = inventory_with(lab_env, tmp_path, {h: vars_of(h) for h in (server, client)})
    run = Run(
        lab_env,
        tmp_path,
        inv,
        policy(tmp_path, reject=("patchctl-demo-broken", "patchctl-demo-kernel", "patchctl-demo-web")),
    )
    assert run("scan").code == 0
    assert run("--now", INSIDE.isoformat(), "rollout", "create").code == 0
    res = run("--json", "--now", INSIDE.isoformat(), "deploy")
    assert res.code == 0, res.stdout + res.stderr
    data = json.loads(res.stdout)
    restarts = {r["host"]: r for r in data["restarts"]}
    assert restarts[server]["action"] == "restart", restarts
    assert restarts[server]["status"] == "ok", restarts[server]
    assert restarts[server]["restarted"] == ["patchctl-demo-webd"]
    assert restarts[server]["still_pending"] == []
    assert [(c["name"], c["state"]) for c in restarts[server]["health"]] == [("webd", "passed")]
    assert restarts[client]["action"] == "pending"
    assert restarts[client]["services"] == ["patchctl-demo-webd"]

    new_pid = int(lab_env.ssh(server, f"cat {WEBD_PIDFILE}").stdout)
    assert new_pid != pids[server]
    assert lab_env.ssh(server, f"test -d /proc/{pids[server]}", check=False).returncode != 0
    assert "(deleted)" not in lab_env.ssh(server, f"cat /proc/{new_pid}/maps").stdout
    assert "(deleted)" in lab_env.ssh(client, f"cat /proc/{pids[client]}/maps").stdout
    assert {h: lab_env.lab.boot_id(h) for h in (server, client)} == boot_before
    assert dpkg_state(lab_env, server)["patchctl-demo-lib"] == ("1.0-2", "ii")

    text = run("report").stdout
    assert f"{client}: restart pending: patchctl-demo-webd" in text
    assert f"{server}: restart pending" not in text
    # verify shows it beside the state (the client is compliant: its updates are installed)
    verified = run("--now", INSIDE.isoformat(), "verify")
    assert f"{client}: compliant: approved updates installed; restart pending: patchctl-demo-webd" in verified.stdout
    assert f"{server}: compliant: approved updates installed\n" in verified.stdout  # nothing pending


def test_a_failing_post_reboot_hook_fails_the_reboot_and_a_passing_one_runs_after_it(
    lab_env: LabEnv, tmp_path: Path
) -> None:
    """Both servers reboot in their window after the kernel update; srv-01's post_reboot hook
    exits 4: its reboot is failed with the hook's output; srv-02's writes a marker with the new
    boot id (it ran after the reboot). Seen failing with the hook tasks removed from the role
    (both reboots ok, no marker)."""
    lab_env.lab.reset()
    bad, good = "srv-01", "srv-02"
    marker = "/root/post-reboot-hook-ran"
    inv = inventory_with(
        lab_env,
        tmp_path,
        {
            bad: {"patch_hooks": {"post_reboot": [{"name": "warmup", "command": "echo cache cold >&2; exit 4"}]}},
            good: {"patch_hooks": {"post_reboot": [{"command": f"cat /proc/sys/kernel/random/boot_id > {marker}"}]}},
        },
    )
    run = Run(lab_env, tmp_path, inv, policy(tmp_path, reject=("patchctl-demo-broken",)))
    assert run("scan").code == 0
    assert run("--now", INSIDE.isoformat(), "rollout", "create").code == 0
    res = run("--json", "--now", INSIDE.isoformat(), "deploy")
    reboots = {r["host"]: r["result"] for r in json.loads(res.stdout)["reboots"] if r["result"]}
    assert reboots[bad]["status"] == "failed", reboots
    assert "post_reboot hook warmup failed (exit 4): cache cold" in reboots[bad]["error"]
    assert reboots[good]["status"] == "ok", reboots[good]
    after = lab_env.lab.boot_id(good)
    assert lab_env.ssh(good, f"cat {marker}").stdout.strip() == after == reboots[good]["boot_id_after"]
    assert res.code == 1
