"""Two reboot runs never overlap: `patchctl reboot` holds the store lock "reboot" for its whole run.
A second run is refused (exit 3, one line naming the holder), a dry run is not (it reboots
nothing), and a holder killed with SIGKILL leaves nothing stuck: the next run goes ahead and holds
the lock (read from the kernel's /proc/locks). The reboots right after a deploy wait for a running
reboot run, else leave their hosts pending."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from patchctl import reboot as reboot_flow
from patchctl.ansible.inventory import load_inventory
from patchctl.config import load_policy
from patchctl.reboot import REBOOT_LOCK
from patchctl.rules.model import HOST_OK, HostScan
from patchctl.rules.reboot_policy import ACTION_REBOOT
from patchctl.store import Store
from patchctl.store.locks import lock_dir
from patchctl.store.reboots import REBOOT_UNREACHABLE, RebootStore

HOLDER = textwrap.dedent(
    """\
    import sys, time
    from patchctl.store import Store
    from patchctl.store.locks import store_lock
    with Store.open(sys.argv[1]) as store, store_lock(store, sys.argv[2]):
        print("held", flush=True)
        time.sleep(300)
    """
)


def reboot(db_url: str, inventory: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "patchctl", "--db", db_url, "-i", str(inventory), "reboot", *extra],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_second_reboot_run_is_refused_and_a_killed_one_frees_the_lock(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    db_url = f"sqlite:///{db}"
    Store.open(db_url).close()
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    srv-01:\n      ansible_host: 127.0.0.1\n      patch_role: server\n")

    holder = subprocess.Popen([sys.executable, "-c", HOLDER, db_url, REBOOT_LOCK], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        refused = reboot(db_url, inventory)
        assert refused.returncode == 3, refused
        assert "Traceback" not in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        assert "reboot is in use by" in refused.stderr and f"pid {holder.pid}" in refused.stderr
        # a dry run reboots nothing, so it needs no lock
        assert reboot(db_url, inventory, "--dry-run").returncode == 0
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.communicate(timeout=30)  # also closes its pipe

    # killed -9 while holding it: the kernel dropped the lock, the next run goes ahead
    start = time.monotonic()
    done = reboot(db_url, inventory)
    assert done.returncode == 0, done
    assert time.monotonic() - start < 60
    lock_file = lock_dir(db) / f"{REBOOT_LOCK}.lock"
    assert lock_file.exists() and (lock_file.stat().st_mode & 0o077) == 0


def flock_holders(path: Path) -> set[int]:
    """The pids holding a flock on ``path``, from the kernel's own table (/proc/locks)."""
    st = path.stat()
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if fields[1] == "FLOCK" and fields[5] == inode:
            pids.add(int(fields[4]))
    return pids


def test_the_run_after_a_killed_holder_really_takes_the_lock(tmp_path: Path) -> None:
    """After the holder is killed with SIGKILL, the next run does not merely exit 0: the kernel
    shows it holding the lock's flock while it reboots (a host whose SSH port accepts and never
    answers keeps it busy), and a third run meanwhile is refused naming it. Seen failing with
    ``reboot_pending`` taking no lock (no flock in /proc/locks, the third run not refused),
    where the old check of the exit code alone stayed green."""
    db = tmp_path / "store.db"
    db_url = f"sqlite:///{db}"
    now = datetime.now(UTC)
    with Store.open(db_url) as store:
        run = store.start_run("scan", "hosts.yml", None, 1)
        store.record_host_scan(run, HostScan(host="srv-01", status=HOST_OK, scanned_at=now, pkg_mgr="apt"))
        RebootStore(store).mark_reboot_pending("srv-01", now)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes the TCP handshake; nothing ever answers ssh
    port = silent.getsockname()[1]
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  hosts:\n    srv-01:\n      ansible_host: 127.0.0.1\n"
        f"      ansible_port: {port}\n      patch_role: server\n      patch_window: anytime\n"
    )
    policy = tmp_path / "policy.yml"
    policy.write_text(
        "---\nbaselines: {debian: {classifications: [security]}}\n"
        "windows: [{name: anytime, start: '* * * * *', duration: 2h, timezone: UTC}]\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, db_url, REBOOT_LOCK], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    lock_file = lock_dir(db) / f"{REBOOT_LOCK}.lock"
    assert flock_holders(lock_file) == {holder.pid}
    os.kill(holder.pid, signal.SIGKILL)
    holder.communicate(timeout=30)
    argv = [sys.executable, "-m", "patchctl", "--db", db_url, "--policy", str(policy), "-i", str(inventory)]
    second = subprocess.Popen([*argv, "reboot"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while second.pid not in flock_holders(lock_file):
            assert second.poll() is None, second.communicate()
            assert time.monotonic() < deadline, "the run after the killed holder never took the lock"
            time.sleep(0.05)
        third = reboot(db_url, inventory)
        assert third.returncode == 3, third
        assert f"reboot is in use by 'patchctl' (pid {second.pid} on {socket.gethostname()}, since " in third.stderr
        assert second.pid in flock_holders(lock_file)
    finally:
        silent.close()
        second.kill() if second.poll() is None else None
        second.communicate(timeout=120)
    assert flock_holders(lock_file) == set()


def _silent_host(tmp_path: Path) -> tuple[socket.socket, Path, Path, str]:
    """A store with srv-01 scanned, an inventory pointing srv-01 at a port that accepts and never
    answers ssh, and a policy whose window is always open: (the socket, inventory, policy, url)."""
    db_url = f"sqlite:///{tmp_path / 'store.db'}"
    with Store.open(db_url) as store:
        run = store.start_run("scan", "hosts.yml", None, 1)
        store.record_host_scan(run, HostScan(host="srv-01", status=HOST_OK, scanned_at=datetime.now(UTC)))
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  hosts:\n    srv-01:\n      ansible_host: 127.0.0.1\n"
        f"      ansible_port: {silent.getsockname()[1]}\n      patch_role: server\n      patch_window: anytime\n"
    )
    policy = tmp_path / "policy.yml"
    policy.write_text(
        "---\nbaselines: {debian: {classifications: [security]}}\n"
        "windows: [{name: anytime, start: '* * * * *', duration: 2h, timezone: UTC}]\n"
    )
    return silent, inventory, policy, db_url


def _after_deploy(inventory: Path, policy: Path, db_url: str) -> tuple[float, reboot_flow.RebootReport]:
    loaded, rules = load_inventory(str(inventory)), load_policy(str(policy))
    start = time.monotonic()
    report = reboot_flow.after_deploy(
        inventory_path=str(inventory),
        inventory=loaded,
        db_url=db_url,
        policy=rules,
        now=datetime.now(UTC),
        reboot_required={"srv-01": True},
        changed={"srv-01": True},
    )
    return time.monotonic() - start, report


@pytest.mark.parametrize("holder_lives", [3.0, 300.0])
def test_reboots_right_after_a_deploy_wait_for_a_running_reboot_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, holder_lives: float
) -> None:
    """The reboots right after a deploy wait (AFTER_DEPLOY_LOCK_WAIT, 2 min; 8 s here) for a
    reboot run that holds the lock: one that ends within it (3 s) lets them go ahead (the host is
    tried: here unreachable, still pending); one that outlives it leaves the host ``reboot
    pending`` untried, after the whole wait. Seen failing with the wait set to 0 (the first case
    gave up at once, untried; the second returned in well under the wait)."""
    monkeypatch.setattr(reboot_flow, "AFTER_DEPLOY_LOCK_WAIT", 8.0)
    silent, inventory, policy, db_url = _silent_host(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER.replace("300", str(holder_lives)), db_url, REBOOT_LOCK],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        took, report = _after_deploy(inventory, policy, db_url)
    finally:
        silent.close()
        holder.kill()
        holder.communicate(timeout=30)
    assert [(p.host, p.action) for p in report.plans] == [("srv-01", ACTION_REBOOT)]
    with Store.open(db_url) as store:
        assert [p.host for p in RebootStore(store).pending()] == ["srv-01"]  # still pending
    if holder_lives < 8.0:
        assert list(report.results) == ["srv-01"], report
        assert report.results["srv-01"].status == REBOOT_UNREACHABLE, report.results
        assert took >= holder_lives - 1
    else:
        assert report.results == {}, report
        assert 8.0 <= took < 30, took
