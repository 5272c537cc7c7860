"""The report's read path without SQLAlchemy: same rows as the Store, and a fast start-up."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic.script import ScriptDirectory

from patchctl.rules.model import HostScan, Update
from patchctl.store import Store, alembic_config, fastread

T0 = datetime(2024, 6, 1, 10, 0, tzinfo=UTC)
SSL = Update("apt", "openssl", "3.0.13-1", "security", installed_version="3.0.11-1")
DB = Update("apt", "db", "2.0-1", "other", installed_version="1.4-1", major=True)
CURL = Update("apt", "curl", "7.88.1-2", "bugfix", installed_version="7.88.1-1")


def _store(path: Path) -> str:
    url = f"sqlite:///{path}"
    with Store.open(url) as store:
        run = store.start_run("scan", "inv", None, 3)
        store.record_host_scan(
            run,
            HostScan(
                "web-1",
                "ok",
                T0,
                os_family="Debian",
                distribution="Debian",
                os_version="12",
                pkg_mgr="apt",
                updates=[SSL, DB],
                reboot_required=True,
                patch_role="server",
            ),
        )
        store.record_host_scan(run, HostScan("web-2", "ok", T0 + timedelta(seconds=1), updates=[CURL, SSL]))
        store.record_host_scan(run, HostScan("db-1", "unreachable", T0, error="ssh: timed out"))
        store.finish_run(run, "host failures")
    return url


def test_rows_equal_the_stores(tmp_path: Path) -> None:
    url = _store(tmp_path / "p.db")
    with Store.open(url) as store:
        expected = [asdict(r) for r in store.host_compliance()]
    conn = fastread.open_current(url)
    assert conn is not None
    try:
        assert [asdict(r) for r in fastread.host_compliance(conn)] == expected
        assert fastread.host_names(conn) == ["db-1", "web-1", "web-2"]
        assert [r.host for r in fastread.host_compliance(conn, {"web-2"})] == ["web-2"]
    finally:
        conn.close()


def test_head_revisions_are_alembics() -> None:
    assert fastread.head_revisions() == set(ScriptDirectory.from_config(alembic_config()).get_heads())


def test_only_a_current_sqlite_file_is_read_directly(tmp_path: Path) -> None:
    assert fastread.open_current(f"sqlite:///{tmp_path / 'missing.db'}") is None
    assert fastread.open_current("sqlite://") is None
    assert fastread.open_current("postgresql://u@h/db") is None
    url = _store(tmp_path / "old.db")
    Store.open(url).close()
    conn = sqlite3.connect(tmp_path / "old.db")
    with conn:
        conn.execute("UPDATE alembic_version SET version_num = '0001'")
    conn.close()
    assert fastread.open_current(url) is None  # not at head: the Store migrates it first


def _imported(*args: str, env_db: str) -> set[str]:
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['patchctl', '--db', {env_db!r}, *{list(args)!r}]\n"
        "try:\n    runpy.run_module('patchctl', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print('\\n'.join(sys.modules), file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stderr.split())


def test_help_and_report_import_neither_ansible_nor_sqlalchemy(tmp_path: Path) -> None:
    url = _store(tmp_path / "p.db")
    for args in (["--help"], ["report"], ["report", "--json"]):
        mods = _imported(*args, env_db=url)
        heavy = {m for m in mods if m.split(".")[0] in ("ansible", "ansible_runner", "sqlalchemy", "alembic")}
        assert not heavy, f"patchctl {' '.join(args)} imported {sorted(heavy)[:5]}"
