"""Two reboot runs never overlap: `patchctl reboot` holds the store lock "reboot" for its whole run.
A second run is refused (exit 3, one line naming the holder), a dry run is not (it reboots
nothing), and a holder killed with SIGKILL leaves nothing stuck: the next run goes ahead."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from patchctl.reboot import REBOOT_LOCK
from patchctl.store import Store
from patchctl.store.locks import lock_dir

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
