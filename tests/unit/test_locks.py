"""Store locks: a second holder is refused naming the first; a holder killed with SIGKILL leaves no
lock behind; the store and its lock files are created owner-only (0600)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from patchctl.store import Store
from patchctl.store.locks import LockBusy, lock_dir, store_lock

HOLD = textwrap.dedent(
    """
    import sys, time
    from patchctl.store import Store
    from patchctl.store.locks import store_lock
    with Store.open(sys.argv[1]) as store, store_lock(store, "rollout 1"):
        print("held", flush=True)
        time.sleep(600)
    """
)


def test_second_holder_refused_then_free_after_release(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    with Store.open(url) as a, Store.open(url) as b:
        with store_lock(a, "rollout 1"):
            busy = r"rollout 1 is in use by 'patchctl' \(pid \d+ on .*, since .*\)"
            with pytest.raises(LockBusy, match=busy) as exc, store_lock(b, "rollout 1"):
                pass
            assert exc.value.code == 3
            with store_lock(b, "rollout 2"):  # another rollout is another lock
                pass
        with store_lock(b, "rollout 1"):
            pass


def test_lock_of_a_process_killed_with_sigkill_is_free(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    Store.open(url).close()
    proc = subprocess.Popen([sys.executable, "-c", HOLD, url], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with Store.open(url) as store:
            with pytest.raises(LockBusy, match=f"pid {proc.pid}"), store_lock(store, "rollout 1"):
                pass
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            start = time.monotonic()
            with store_lock(store, "rollout 1", wait=5):
                assert time.monotonic() - start < 1, "the kernel frees the lock with the process"
    finally:
        proc.kill()
        proc.communicate(timeout=30)


def test_store_and_lock_files_are_owner_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store, its ``-wal`` and ``-shm`` and the lock files are 0600, read while the store is
    open (SQLite deletes ``-wal`` and ``-shm`` on close, so a check afterwards saw none of them).
    Seen failing: with the store file created 0644 in engine.py, the modes read
    ``{'p.db': 0o644, 'p.db-shm': 0o644, 'p.db-wal': 0o644}``; with the check moved after the
    close, the ``-wal``/``-shm`` entries are missing."""
    monkeypatch.setenv("PATCHCTL_HOME", str(tmp_path / "state"))  # where the store's directory is made
    db = tmp_path / "state" / "p.db"
    old = os.umask(0o022)
    try:
        with Store.open(f"sqlite:///{db}") as store, store_lock(store, "rollout 1"):
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in db.parent.glob("p.db*") if p.is_file()}
            locks = {p: stat.S_IMODE(p.stat().st_mode) for p in lock_dir(db).iterdir()}
            lock_dir_mode = stat.S_IMODE(lock_dir(db).stat().st_mode)
    finally:
        os.umask(old)
    assert modes == {"p.db": 0o600, "p.db-wal": 0o600, "p.db-shm": 0o600}
    assert locks and set(locks.values()) == {0o600}, locks
    assert lock_dir_mode == 0o700


def test_waiting_for_a_lock_gives_up_with_the_holder(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    with Store.open(url) as a, Store.open(url) as b, store_lock(a, "reboot"):
        start = time.monotonic()
        with pytest.raises(LockBusy, match=r"waited 1 s"), store_lock(b, "reboot", wait=1.0):
            pass
        assert time.monotonic() - start >= 1.0
