"""Crash safety and concurrency against the real lab: the real patchctl process is killed with
SIGKILL at several points of a deploy and of a scan; the store and the hosts (dpkg, over plain SSH)
are then checked, and a rerun must finish the wave without installing anything twice. A second
deploy of the same rollout is refused while one runs; scans, reports and status run beside it."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from patchctl.lab.repo import SLOW_MARKER, SLOW_SECONDS_FILE
from patchctl.store import Store

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


def dpkg_actions(env: LabEnv, host: str) -> dict[tuple[str, str], int]:
    """(action, package) -> how many times dpkg's log shows that action landing on the package's
    target version on this host: ``upgrade``/``install`` (unpacked at it) and ``configure``."""
    out = env.ssh(host, "cat /var/log/dpkg.log").stdout
    counts: dict[tuple[str, str], int] = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 6 or fields[2] not in ("install", "upgrade", "configure"):
            continue
        name = fields[3].split(":")[0]
        landed = fields[5] if fields[2] in ("install", "upgrade") else fields[4]
        if TARGET.get(name) == landed:
            key = ("configure" if fields[2] == "configure" else "unpack", name)
            counts[key] = counts.get(key, 0) + 1
    return counts


APT_GET_LOG = "/var/log/patchctl-test-apt-get.log"
# Every apt-get the host runs goes through this wrapper (apt-get itself diverted aside with
# dpkg-divert), which notes its arguments first: what patchctl really ran on the host.
WATCH_APT_GET = (
    "dpkg-divert --local --rename --divert /usr/bin/apt-get.real --add /usr/bin/apt-get >/dev/null && "
    "printf '%s\\n' '#!/bin/sh' 'printf \"%s\\n\" \"$*\" >> " + APT_GET_LOG + "' "
    "'exec /usr/bin/apt-get.real \"$@\"' > /usr/bin/apt-get && chmod 0755 /usr/bin/apt-get && : > " + APT_GET_LOG
)


def apt_get_installs(env: LabEnv, host: str) -> list[str]:
    """The ``apt-get install`` command lines the host ran since WATCH_APT_GET."""
    return [ln for ln in env.ssh(host, f"cat {APT_GET_LOG}").stdout.splitlines() if ln.startswith("install ")]


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
    """Nothing installed twice is read from the hosts: each ran ``apt-get install`` exactly once
    (a wrapper notes every apt-get the host runs), and dpkg's log shows each package unpacked and
    configured at its target version exactly once; patchctl ran no apply for a host already done
    (no later result for it). Seen failing with the deploy's ``already_done`` left out of the
    hosts it skips (``todo = hosts``: the final run applied again to the hosts done before, a
    second result row after their ok) and with ``plan`` in the apply module putting present
    updates in the to-do list (a second ``apt-get install`` on the host killed in flight, while
    dpkg's log still showed each package unpacked and configured once: apt installing a version
    that is there does nothing dpkg logs). The refusal of a second deploy names the holder's pid,
    machine and since; seen failing with the since left out of the lock file's holder. Beside it,
    ``rollout status`` shows no result and every host pending, ``report`` every host missing."""
    hosts = sorted(h.name for h in lab_env.lab.hosts())
    first, second = hosts[0], hosts[1]
    cli = prepare(lab_env, tmp_path, {first: 25}, concurrency=1, fail_percent=100)
    for host in hosts:
        lab_env.ssh(host, WATCH_APT_GET)
    rollout_id = query(cli.db, "SELECT MAX(id) FROM rollouts")[0][0]

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
    assert len(err.strip().splitlines()) == 1
    held = re.fullmatch(
        rf"patchctl: error: rollout {rollout_id} is in use by 'patchctl' \(pid {proc.pid} on "
        rf"{re.escape(socket.gethostname())}, since (\S+)\)(?: \(waited \d+ s\))?: refused; try again when it ends",
        err.strip(),
    )
    assert held, err
    since = datetime.fromisoformat(held.group(1))
    assert timedelta(0) <= datetime.now(UTC) - since < timedelta(minutes=5), since
    assert [c for c, _o, _e in done[1:]] == [0, 0, 0], done[1:]
    assert all("Traceback" not in e for _c, _o, e in done)
    # what they printed beside it: nothing claimed for the host in flight
    status, report, updates = json.loads(done[1][1]), json.loads(done[2][1]), done[3][1]
    assert status["id"] == rollout_id and status["results"] == []
    assert [(w["state"], w["hosts_ok"], w["hosts_pending"]) for w in status["waves"]] == [("deploying", 0, len(hosts))]
    assert {h["name"]: h["state"] for h in report["hosts"]} == dict.fromkeys(hosts, "missing")
    assert report["compliance"]["percent"] == 0.0
    for name in TARGET:
        assert name in updates, updates
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
        once = {(a, n): 1 for a in ("unpack", "configure") for n in TARGET}
        assert dpkg_actions(lab_env, host) == once, host
        installs = apt_get_installs(lab_env, host)
        assert len(installs) == 1, (host, installs)
        assert {f"{n}={v}" for n, v in TARGET.items()} <= set(installs[0].split()), installs
    # what patchctl ran: no apply for a host after its ok result (the last run skipped the second
    # host), and the host killed in flight found everything present when its apply ran again
    rows = query(cli.db, "SELECT run_id, host, status, installed, present FROM deploy_results ORDER BY id")
    for host in hosts:
        mine = [r for r in rows if r[1] == host]
        assert [r[2] for r in mine] == ["ok"], (host, mine)
    last_run = query(cli.db, "SELECT MAX(id) FROM deploy_runs")[0][0]
    assert sorted(r[1] for r in rows if r[0] == last_run) == sorted(set(hosts) - {first, second})
    ((_run, _h, _s, installed, present),) = [r for r in rows if r[1] == first]
    assert json.loads(str(installed)) == [] and len(json.loads(str(present))) == len(TARGET)
    assert query(cli.db, "PRAGMA integrity_check") == [("ok",)]


# Makes the second host's transaction last: once a second scans row is there (visible only inside
# the transaction writing it), each host_updates row it inserts spins over SPIN x SPIN rows.
SLOW_SECOND_HOST = """
CREATE TABLE test_spin (x INTEGER);
INSERT INTO test_spin WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000) SELECT x FROM c;
CREATE TRIGGER test_slow_second_host AFTER INSERT ON host_updates WHEN (SELECT COUNT(*) FROM scans) >= 2
BEGIN SELECT sum(a.x * b.x) FROM test_spin a, test_spin b; END;
"""


def write_transaction_open(db: Path) -> bool:
    """Whether another connection holds the store's write lock (an open write transaction)."""
    conn = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc), exc
        return True
    finally:
        conn.close()


def test_kill_9_during_scan_keeps_the_hosts_it_finished(lab_env: LabEnv, tmp_path: Path) -> None:
    """The kill lands inside the second host's transaction (held open by a trigger on the store:
    its scans row and catalog rows written, its host_updates being written, the write lock held
    for over a second): that host has no row at all afterwards, the first its whole scan. Seen
    failing with ``write_scan`` committing after the host's scans row (before its host_updates):
    the host in flight kept its scans row, two where one must be."""
    lab_env.lab.reset()
    policy = tmp_path / "policy.yml"
    policy.write_text("---\nbaselines: {}\n")
    cli = Cli(lab_env, tmp_path / "store.db", policy)
    Store.open(f"sqlite:///{cli.db}").close()
    with sqlite3.connect(cli.db) as conn:
        conn.executescript(SLOW_SECOND_HOST)
    hosts_before = query(cli.db, "SELECT COUNT(*) FROM hosts")
    assert hosts_before == [(0,)]
    proc = cli.start("scan", "--forks", "1")
    wait_for("the first host's scan", lambda: _scans(cli.db) > 0, every=0.02, proc=proc)

    def second_in_its_transaction() -> bool:
        # held for a second or more: not one of the short writes between hosts
        for _ in range(5):
            if not write_transaction_open(cli.db):
                return False
            time.sleep(0.25)
        return True

    wait_for("the second host's open transaction", second_in_its_transaction, every=0.1, proc=proc)
    assert _scans(cli.db) == 1
    kill9(proc)
    done = query(cli.db, "SELECT h.name, s.status, s.missing_total FROM scans s JOIN hosts h ON h.id = s.host_id")
    assert len(done) == 1 and all(status == "ok" and missing == 5 for _h, status, missing in done), done
    assert query(cli.db, "SELECT status FROM scan_runs") == [("running",)]
    # the host in flight left nothing: one host, its rows only; the catalog holds its updates alone
    ((first,),) = query(cli.db, "SELECT name FROM hosts")
    assert first == done[0][0]
    assert query(cli.db, "SELECT COUNT(DISTINCT host_id) FROM host_updates") == [(1,)]
    assert query(cli.db, "SELECT COUNT(*) FROM updates") == [(5,)]
    with sqlite3.connect(cli.db) as conn:
        conn.executescript("DROP TRIGGER test_slow_second_host; DROP TABLE test_spin;")
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
