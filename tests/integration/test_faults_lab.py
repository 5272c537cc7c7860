"""Faults on lab hosts during one deploy wave: the dpkg lock held by another process, a full disk
(a tiny tmpfs over apt's archive cache, mounted inside the host only), and sshd killed while the
host installs. Each host ends recorded in the right state with its reason, the wave goes on while
it is within max_fail_percent and halts past it, and a rerun after the faults are gone finishes.

(A package whose postinst fails: test_rollout_lab.py::test_failed_install_halts_the_wave_at_zero_percent;
a reboot that never returns: test_reboot_lab.py::test_reboot_that_never_returns_is_failed_and_others_proceed.)"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from patchctl.lab import faults
from patchctl.lab.repo import SLOW_MARKER

from .conftest import LabEnv
from .test_crash_lab import (  # noqa: F401 - reap_started_commands is an autouse fixture
    TARGET,
    assert_store_matches_hosts,
    dpkg_state,
    prepare,
    reap_started_commands,
    upgrades_logged,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.lab]

# apt takes this lock with fcntl (flock(1) would not stop it); the holder lives 10 minutes.
HOLD_DPKG_LOCK = (
    'setsid -f python3 -c \'import fcntl, time; f = open("/var/lib/dpkg/lock-frontend", "w"); '
    "fcntl.lockf(f, fcntl.LOCK_EX); time.sleep(600)' </dev/null >/dev/null 2>&1; sleep 0.5"
)


def test_host_faults_each_recorded_with_reason_and_wave_within_threshold(lab_env: LabEnv, tmp_path: Path) -> None:
    locked, clean, full, cut = sorted(h.name for h in lab_env.lab.hosts())
    # two batches of two; 1 failure of 4 (25%) lets the second batch start, 3 of 4 halt the wave
    cli = prepare(lab_env, tmp_path, {cut: 8}, concurrency=2, fail_percent=50)

    lab_env.ssh(locked, HOLD_DPKG_LOCK)
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
    assert proc.returncode == 1, stderr

    report = json.loads(stdout)
    hosts = {h["host"]: h for h in report["hosts"]}
    assert set(hosts) == {locked, clean, full, cut}, "the second batch ran: 25% was within the threshold"
    assert report["state"] == "halted"
    assert "3 of 4 hosts failed or unreachable" in report["halted_reason"]

    assert hosts[clean]["status"] == "ok"
    assert hosts[locked]["status"] == "failed"
    assert "lock" in json.dumps(hosts[locked]).lower(), hosts[locked]
    assert hosts[full]["status"] == "failed"
    assert "space" in json.dumps(hosts[full]).lower(), hosts[full]
    assert hosts[cut]["status"] in ("failed", "unreachable")
    assert hosts[cut]["error"], hosts[cut]

    # the store agrees with dpkg; hosts that failed before installing are untouched
    assert_store_matches_hosts(lab_env, cli)
    for host in (locked, full):
        assert dpkg_state(lab_env, host)["patchctl-demo-app"] == ("1.0-1", "ii"), host

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
    assert clean in again["already_done"]
    assert assert_store_matches_hosts(lab_env, cli) == dict.fromkeys([locked, clean, full, cut], "ok")
    for host in (locked, clean, full, cut):
        assert upgrades_logged(lab_env, host) == dict.fromkeys(TARGET, 1), host
