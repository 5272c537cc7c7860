"""Crash safety and concurrency against the real lab: the real patchctl process is killed with
SIGKILL at several points of a deploy and of a scan; the store and the hosts (dpkg, over plain SSH)
are then checked, and a rerun must finish the wave without installing anything twice. A second
deploy of the same rollout is refused while one runs; scans, reports and status run beside it."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from patchctl.lab.repo import SLOW_MARKER, SLOW_SECONDS_FILE

from .conftest import CliResult, LabEnv

pytestmark = [pytest.mark.integration, pytest.mark.lab]

TARGET = {
    "patchctl-demo-app": "1.1-1",
    "patchctl-demo-ssl": "1.0-2",
    "patchctl-demo-kernel": "1.1-1",
    "patchctl-demo-slow": "1.1-1",
}
APT = "DEBIAN_FRONTEND=noninteractive apt-get -q -y"


def dpkg_state(env: LabEnv, host: str) -> dict[str, tuple[str, str]]:
    """name -> (version, dpkg status abbrev) of the demo packages, from dpkg on the host."""
    out = env.ssh(host, "dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\\n' 'patchctl-demo-*'").stdout
    return {n: (v, s.strip()) for n, v, s in (ln.split(maxsplit=2) for ln in out.splitlines())}


def upgrades_logged(env: LabEnv, host: str) -> dict[str, int]:
    """How many times dpkg unpacked each demo package over its previous version on this host."""
    out = env.ssh(host, "grep -h ' upgrade patchctl-demo-' /var/log/dpkg.log || true").stdout
    counts: dict[str, int] = {}
    for line in out.splitlines():
        name = line.split()[3].split(":")[0]
        counts[name] = counts.get(name, 0) + 1
    return counts


def query(db: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        return list(conn.execute(sql, params))


def wait_for(
    what: str,
    check: Callable[[], bool],
    timeout: float = 120.0,
    every: float = 0.1,
    proc: subprocess.Popen[str] | None = None,
) -> None:
    """Wait until ``check()``; with ``proc``, fail at once (with its output) if it ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(
                f"waiting for {what}: the command ended first (exit {proc.returncode}): {out[-1500:]} {err[-1500:]}"
            )
        time.sleep(every)
    if proc is not None:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"timed out waiting for {what}; the command said: {out[-1500:]} {err[-1500:]}")
    raise AssertionError(f"timed out waiting for {what}")


class Cli:
    def __init__(self, env: LabEnv, db: Path, policy: Path) -> None:
        self.env, self.db, self.policy = env, db, policy

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "patchctl", "--db", f"sqlite:///{self.db}", "--policy", str(self.policy), *args]

    def __call__(self, *args: str, timeout: int = 600) -> CliResult:
        proc = subprocess.run(
            self.argv(*args), capture_output=True, text=True, env=self.env.env, timeout=timeout, check=False
        )
        assert "Traceback" not in proc.stderr, proc.stderr
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    def start(self, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            self.argv(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env.env,
        )
        _STARTED.append(proc)
        return proc


# Commands started in the background by the current test; reaped after it, pass or fail, so that
# a failing test cannot leave a running deploy (or an unreaped Popen) to the next one.
_STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def reap_started_commands() -> Iterator[None]:
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=60)


def kill9(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def prepare(env: LabEnv, tmp_path: Path, slow: dict[str, int], concurrency: int, fail_percent: int) -> Cli:
    """Pristine hosts with patchctl-demo-slow 1.0-1 installed (its update configures for ``slow[host]``
    seconds), a one-wave policy, a scan and a rollout of every approved update."""
    env.lab.reset()
    for host in env.lab.hosts():
        env.ssh(
            host.name,
            f"{APT} update >/dev/null && {APT} install patchctl-demo-slow=1.0-1 >/dev/null 2>&1 && "
            f"echo {slow.get(host.name, 0)} > {SLOW_SECONDS_FILE}",
        )
    policy = tmp_path / "policy.yml"
    policy.write_text(
        textwrap.dedent(
            f"""\
            ---
            baselines:
              debian:
                classifications: [security, bugfix, other]
                approve_after_days: 0
                reject: [patchctl-demo-broken]
            waves:
              - {{name: fleet, hosts: all, bake_days: 0, max_concurrency: {concurrency},
                  max_fail_percent: {fail_percent}, min_success_percent: 0}}
            """
        )
    )
    cli = Cli(env, tmp_path / "store.db", policy)
    assert cli("scan").code == 0
    created = cli("rollout", "create", "--json")
    assert created.code == 0, created.stderr
    return cli


def assert_store_matches_hosts(env: LabEnv, cli: Cli) -> dict[str, str]:
    """No host is recorded as done unless dpkg on it has every update configured; returns host -> status."""
    recorded: dict[str, str] = {}
    for host, status in query(
        cli.db, "SELECT host, status FROM deploy_results WHERE id IN (SELECT MAX(id) FROM deploy_results GROUP BY host)"
    ):
        recorded[str(host)] = str(status)
    for host, status in recorded.items():
        if status == "ok":
            state = dpkg_state(env, host)
            for name, version in TARGET.items():
                assert state[name] == (version, "ii"), f"{host} recorded ok but dpkg says {name} {state[name]}"
    return recorded


def test_kill_9_during_deploy_loses_nothing_and_installs_nothing_twice(lab_env: LabEnv, tmp_path: Path) -> None:
    hosts = sorted(h.name for h in lab_env.lab.hosts())
    first, second = hosts[0], hosts[1]
    cli = prepare(lab_env, tmp_path, {first: 25}, concurrency=1, fail_percent=100)

    # 1. Killed before the first host: the run is recorded as started, no host is touched.
    proc = cli.start("deploy")
    wait_for("the deploy run to start", lambda: bool(query(cli.db, "SELECT id FROM deploy_runs")), every=0.02)
    kill9(proc)
    assert query(cli.db, "SELECT status FROM deploy_runs") == [("running",)]
    assert query(cli.db, "SELECT host FROM deploy_results") == []
    time.sleep(2)
    for host in hosts:
        assert dpkg_state(lab_env, host)["patchctl-demo-slow"] == ("1.0-1", "ii"), host

    # 2. Killed while the first host installs (its postinst is running): a second deploy of the
    # same rollout is refused meanwhile, and scans, reports and status run beside it.
    proc = cli.start("deploy")
    wait_for(
        f"{first} to configure the slow package",
        lambda: lab_env.ssh(first, f"test -e {SLOW_MARKER}", check=False).returncode == 0,
        every=0.2,
        proc=proc,
    )
    # all at once, while the first host still configures (its postinst sleeps 25 s)
    others = [
        cli.start(*args) for args in (["deploy"], ["rollout", "status", "--json"], ["report", "--json"], ["updates"])
    ]
    done = [(p.wait(timeout=120), *p.communicate()) for p in others]
    assert lab_env.ssh(first, f"test -e {SLOW_MARKER}", check=False).returncode == 0, "too slow to test beside it"
    kill9(proc)
    code, _out, err = done[0]
    assert code == 3, err
    assert "rollout" in err and "in use by" in err and "pid" in err
    assert len(err.strip().splitlines()) == 1
    assert [c for c, _o, _e in done[1:]] == [0, 0, 0], done[1:]
    assert all("Traceback" not in e for _c, _o, e in done)
    assert query(cli.db, "SELECT host FROM deploy_results") == []  # nothing claimed for the host in flight
    wait_for(
        f"{first} to finish configuring",
        lambda: lab_env.ssh(first, f"test -e {SLOW_MARKER}", check=False).returncode != 0,
    )
    time.sleep(1)

    # 3. Killed between hosts: right after the second host's result is recorded.
    proc = cli.start("deploy")
    wait_for(
        f"{second}'s result",
        lambda: bool(query(cli.db, "SELECT id FROM deploy_results WHERE host = ?", second)),
        every=0.02,
    )
    kill9(proc)
    recorded = assert_store_matches_hosts(lab_env, cli)
    assert recorded.get(second) == "ok"

    # The rerun finishes the wave; the dead runs are closed as crashed; nothing was installed twice.
    final = cli("deploy", "--json")
    assert final.code == 0, final
    report = final.json()
    assert isinstance(report, dict) and report["state"] == "finished"
    assert second in report["already_done"]
    recorded = assert_store_matches_hosts(lab_env, cli)
    assert recorded == dict.fromkeys(hosts, "ok")
    statuses = [s for (s,) in query(cli.db, "SELECT status FROM deploy_runs ORDER BY id")]
    assert statuses == ["crashed", "crashed", "crashed", "finished"]
    assert len(query(cli.db, "SELECT id FROM audit_events WHERE action = 'deploy run crashed'")) == 3
    for host in hosts:
        assert {n: v for n, (v, _s) in dpkg_state(lab_env, host).items() if n in TARGET} == TARGET, host
        assert upgrades_logged(lab_env, host) == dict.fromkeys(TARGET, 1), host
    assert query(cli.db, "PRAGMA integrity_check") == [("ok",)]


def test_kill_9_during_scan_keeps_the_hosts_it_finished(lab_env: LabEnv, tmp_path: Path) -> None:
    lab_env.lab.reset()
    policy = tmp_path / "policy.yml"
    policy.write_text("---\nbaselines: {}\n")
    cli = Cli(lab_env, tmp_path / "store.db", policy)
    proc = cli.start("scan", "--forks", "1")
    wait_for("a host's scan", lambda: tmp_path.joinpath("store.db").exists() and _scans(cli.db) > 0, every=0.02)
    kill9(proc)
    done = query(cli.db, "SELECT h.name, s.status, s.missing_total FROM scans s JOIN hosts h ON h.id = s.host_id")
    assert done and all(status == "ok" and missing == 5 for _h, status, missing in done), done
    assert query(cli.db, "SELECT status FROM scan_runs") == [("running",)]
    # every recorded host has its whole scan: one row per missing update
    for host, _status, missing in done:
        rows = query(
            cli.db,
            "SELECT COUNT(*) FROM host_updates hu JOIN hosts h ON h.id = hu.host_id "
            "WHERE h.name = ? AND hu.state = 'missing'",
            host,
        )
        assert rows == [(missing,)]
    time.sleep(11)  # the grace time of a run that just started (patchctl.scan.close_dead_scans)
    again = cli("scan")
    assert again.code == 0, again
    runs = query(cli.db, "SELECT status, hosts_ok FROM scan_runs ORDER BY id")
    assert runs[0][0] == "crashed" and runs[0][1] == len(done)
    assert runs[1] == ("ok", len(lab_env.lab.hosts()))
    assert query(cli.db, "PRAGMA integrity_check") == [("ok",)]


def _scans(db: Path) -> int:
    try:
        count = query(db, "SELECT COUNT(*) FROM scans")[0][0]
    except sqlite3.OperationalError:
        return 0  # not migrated yet
    assert isinstance(count, int)
    return count
