"""Faults on lab hosts during one deploy wave: the dpkg lock held by another process, a full disk
(a tiny tmpfs over apt's archive cache, mounted inside the host only), and sshd killed while the
host installs. Each host ends recorded in the right state with its reason, the wave goes on while
it is within max_fail_percent and halts past it, and a rerun after the faults are gone finishes.

(A package whose postinst fails: test_rollout_lab.py::test_failed_install_halts_the_wave_at_zero_percent;
a reboot that never returns: test_reboot_lab.py::test_reboot_that_never_returns_is_failed_and_others_proceed.)"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from patchctl.lab import faults
from patchctl.lab.repo import SLOW_MARKER

from .conftest import LabEnv
from .test_crash_lab import (  # noqa: F401 - reap_started_commands is an autouse fixture
    TARGET,
    WATCH_APT_GET,
    apt_get_installs,
    assert_store_matches_hosts,
    dpkg_actions,
    dpkg_state,
    prepare,
    query,
    reap_started_commands,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.lab]

# apt takes this lock with fcntl (flock(1) would not stop it); the holder lives 10 minutes and
# leaves its pid (in the host's own PID namespace, as apt names it) in HOLDER_PID.
HOLDER_PID = "/run/patchctl-test-lock-holder.pid"
HOLD_DPKG_LOCK = (
    'setsid -f python3 -c \'import fcntl, os, time; f = open("/var/lib/dpkg/lock-frontend", "w"); '
    f'fcntl.lockf(f, fcntl.LOCK_EX); open("{HOLDER_PID}", "w").write(str(os.getpid())); time.sleep(600)\' '
    "</dev/null >/dev/null 2>&1; sleep 0.5"
)
NO_SPACE = re.compile(
    r"still at 1\.0-1: E: Failed to fetch http://patchctl-repo:8080/debian/pool/\S+\.deb  "
    r"Error writing to file - write \(28: No space left on device\) \[IP: [0-9.]+ 8080\]"
)


def test_host_faults_each_recorded_with_reason_and_wave_within_threshold(lab_env: LabEnv, tmp_path: Path) -> None:
    """One host a batch: the locked host fails (25% of 4), the cut one (50%, not past
    ``max_fail_percent: 50``), the full one (75%, past it): the wave halts and the clean host's
    batch never starts (nothing ran apt-get there, dpkg unchanged, no result). Each failure's
    reason is read from its ``failed`` fields: apt's line naming the lock's holder (its pid read
    on the host), "No space left on device". Seen failing with ``over_fail_threshold`` always
    false (the fourth batch started: the clean host's wrapper noted an ``apt-get install``), and with
    ``last_error`` taking apt's last ``E:`` line ("Unable to acquire the dpkg frontend lock" and
    "Unable to fetch some archives" in place of the holder and the full disk)."""
    locked, cut, full, clean = sorted(h.name for h in lab_env.lab.hosts())
    cli = prepare(lab_env, tmp_path, {cut: 8}, concurrency=1, fail_percent=50)
    for host in (locked, cut, full, clean):
        lab_env.ssh(host, WATCH_APT_GET)

    lab_env.ssh(locked, HOLD_DPKG_LOCK)
    holder = lab_env.ssh(locked, f"cat {HOLDER_PID}").stdout.strip()
    assert holder.isdigit(), holder
    faults.mount_tmpfs(lab_env.lab, full, "/var/cache/apt/archives", size="4k", mkdirs=("partial",))
    assert "patchctl-lab-full" in lab_env.ssh(full, "grep /var/cache/apt/archives /proc/mounts").stdout

    proc = cli.start("deploy", "--json")
    wait_for(
        f"{cut} to configure",
        lambda: lab_env.ssh(cut, f"test -e {SLOW_MARKER}", check=False).returncode == 0,
        proc=proc,
    )
    faults.kill_sshd(lab_env.lab, cut)
    stdout, stderr = proc.communicate(timeout=600)
    assert "Traceback" not in stderr
    # the clean host's batch never started, read from the host first: no apt-get install, dpkg
    # unchanged; and from the store: no result
    assert apt_get_installs(lab_env, clean) == []
    assert {n: v for n, (v, _s) in dpkg_state(lab_env, clean).items() if n in TARGET} == dict.fromkeys(TARGET, "1.0-1")
    assert dpkg_actions(lab_env, clean) == {}
    assert query(cli.db, "SELECT host FROM deploy_results WHERE host = ?", clean) == []
    assert proc.returncode == 1, stderr

    report = json.loads(stdout)
    hosts = {h["host"]: h for h in report["hosts"]}
    assert set(hosts) == {locked, cut, full}, "25% and 50% were within the threshold, 75% was not"
    assert report["state"] == "halted"
    assert "3 of 4 hosts failed or unreachable" in report["halted_reason"]
    assert report["not_started"] == [clean]

    uids = {f"apt:{n}:{v}" for n, v in TARGET.items()}
    assert hosts[locked]["status"] == "failed"
    lock_line = f"E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process {holder} (python3)"
    assert hosts[locked]["failed"] == dict.fromkeys(uids, f"still at 1.0-1: {lock_line}"), hosts[locked]
    assert hosts[full]["status"] == "failed"
    assert set(hosts[full]["failed"]) == uids, hosts[full]
    for uid, why in hosts[full]["failed"].items():
        assert NO_SPACE.fullmatch(why), (uid, why)
    assert hosts[cut]["status"] in ("failed", "unreachable")
    assert hosts[cut]["error"], hosts[cut]

    # the store agrees with dpkg; hosts that failed before installing are untouched
    assert_store_matches_hosts(lab_env, cli)
    for host in (locked, full):
        assert dpkg_state(lab_env, host)["patchctl-demo-app"] == ("1.0-1", "ii"), host
        assert dpkg_actions(lab_env, host) == {}, host

    # The faults go away (the lock holder and the tmpfs with a power cycle); the rerun finishes
    # the halted wave, and nothing is installed twice on any host.
    for host in (locked, full, cut):
        faults.power_off(lab_env.lab, host)
        faults.power_on(lab_env.lab, host)
    time.sleep(1)
    final = cli("deploy", "--json")
    assert final.code == 0, final
    again = final.json()
    assert isinstance(again, dict) and again["state"] == "finished"
    assert again["already_done"] == []
    assert assert_store_matches_hosts(lab_env, cli) == dict.fromkeys([locked, clean, full, cut], "ok")
    once = {(a, n): 1 for a in ("unpack", "configure") for n in TARGET}
    for host in (locked, clean, full, cut):
        assert dpkg_actions(lab_env, host) == once, host
    assert len(apt_get_installs(lab_env, clean)) == 1
