"""The commands that only read never create or migrate a store; those that act on what was stored never create one.

A typo in ``--db`` used to create the directories and an empty store, and ``report --json`` then
said 0 hosts and 0 missing security updates, exit 0: a CI gate on that number passed on a fleet
nobody scanned. Now every command that only reads stops with one line and exit 2, and leaves the
file system and the database as it found them; a store at an older schema revision names the
pending migration, which ``patchctl db upgrade`` (or any command that writes) applies.

Everything here goes through the real CLI (click's CliRunner, or a process) on real SQLite files
and schemas of the PostgreSQL test cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from click.testing import CliRunner, Result

from patchctl.cli import cli
from patchctl.rules.model import HostScan, Update
from patchctl.store import Store, alembic_config

T0 = datetime(2024, 6, 1, 10, 0, tzinfo=UTC)
SSL = Update("apt", "openssl", "3.0.13-1", "security", installed_version="3.0.11-1")
NO_STORE = "patchctl: error: no store at {url} (run 'patchctl scan' first, or check --db / PATCHCTL_DB)"

# Every command that only reads, as typed (the inventory of reboot --dry-run is added below).
READ_COMMANDS = [
    ["report"],
    ["report", "--json"],
    ["report", "--format", "csv"],
    ["updates"],
    ["updates", "--all"],
    ["audit"],
    ["rollout", "status"],
    ["rollout", "list"],
    ["incident", "list"],
    ["reboot", "--dry-run"],
]


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No user's configuration, database or policy; PATCHCTL_HOME as the test sets it."""
    for name in ("PATCHCTL_CONFIG", "PATCHCTL_DB", "PATCHCTL_INVENTORY", "PATCHCTL_POLICY", "PATCHCTL_NOW"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.yml"
    path.write_text("all:\n  hosts:\n    web-1:\n      patch_role: server\n      patch_window: nightly\n")
    return path


def run(url: str, args: list[str], inventory: Path) -> Result:
    needs_inventory = args[0] in ("reboot", "deploy", "verify")
    argv = ["--db", url, *(["-i", str(inventory)] if needs_inventory else []), *args]
    return CliRunner().invoke(cli, argv, catch_exceptions=False)


def shown(url: str) -> str:
    return sa.make_url(url).render_as_string(hide_password=True)


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def seeded(url: str) -> str:
    """A store at ``url`` with one scanned host missing a security update."""
    with Store.open(url) as store:
        run_id = store.start_run("scan", "inv", None, 1, now=T0)
        store.record_host_scan(run_id, HostScan("web-1", "ok", T0, os_family="Debian", pkg_mgr="apt", updates=[SSL]))
        store.finish_run(run_id, "ok", now=T0)
    return url


def one_revision_back(url: str) -> tuple[str, str, str]:
    """Migrate the store at ``url`` down one revision, as the migration tests do; the head, the
    revision it is at now and the name of the pending migration's file."""
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_revision(script.get_current_head())
    assert isinstance(head.down_revision, str)
    with Store.open(url) as store, store.engine.connect() as conn:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, head.down_revision)
        conn.commit()
    return head.revision, head.down_revision, Path(head.path).stem


def revisions(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return []
            return [str(r[0]) for r in conn.exec_driver_sql("SELECT version_num FROM alembic_version")]
    finally:
        engine.dispose()


def pg_tables(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return sorted(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()


# --- no store ---------------------------------------------------------------------------------


@pytest.mark.parametrize("args", READ_COMMANDS, ids=" ".join)
def test_a_typo_in_db_is_an_error_and_creates_nothing(
    args: list[str], tmp_path: Path, inventory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A typo: ``--db sqlite:////srv/patchctl/patchctl.dbx``, in directories that do not
    exist. Exit 2, the one line, nothing on stdout (a ``jq -e`` gate fails), no directory, no file.

    Breaking it: ``Store.open_existing`` opening as ``Store.open`` does (``open_engine(url)``,
    then ``migrate``) fails every case here, with "cannot create the store" (and, where the
    directory exists, exits 0 with a report of 0 hosts: the next test).
    """
    monkeypatch.setenv("PATCHCTL_HOME", str(tmp_path / "home"))
    before = files_under(tmp_path)
    url = f"sqlite:///{tmp_path / 'srv' / 'patchctl' / 'patchctl.dbx'}"
    result = run(url, args, inventory)
    assert (result.exit_code, result.stdout) == (2, ""), result.output
    assert result.stderr.splitlines() == [NO_STORE.format(url=url)]
    assert files_under(tmp_path) == before  # no srv/, no home/, no store file


# Commands that write, but only over what an earlier command stored: no store is theirs to create.
ACTING_COMMANDS = [
    ["deploy"],
    ["deploy", "--json"],
    ["reboot"],
    ["verify", "--no-scan"],
    ["rollout", "promote"],
    ["rollout", "promote", "--deploy"],
    ["incident", "open", "--rollout", "1", "the pilot's web service is down"],
    ["incident", "close", "1"],
]


@pytest.mark.parametrize("args", ACTING_COMMANDS, ids=" ".join)
def test_commands_that_act_on_the_store_never_create_one(
    args: list[str], tmp_path: Path, inventory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen failing with deploy, reboot and verify opening with ``Store.open(url)`` (create): each
    made an empty store in PATCHCTL_HOME and then said there was no rollout or no host."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("PATCHCTL_HOME", str(home))
    url = f"sqlite:///{home / 'patchctl.db'}"
    result = run(url, args, inventory)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [NO_STORE.format(url=url)]
    assert files_under(home) == []


@pytest.mark.parametrize("args", [["report", "--json"], ["updates"], ["audit"], ["rollout", "status"]], ids=" ".join)
def test_a_missing_file_in_an_existing_directory_is_not_created(
    args: list[str], tmp_path: Path, inventory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Also where the directory exists, and in PATCHCTL_HOME itself (the default store's place):
    a command that only reads creates no store there."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("PATCHCTL_HOME", str(home))
    url = f"sqlite:///{home / 'patchctl.db'}"
    result = run(url, args, inventory)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [NO_STORE.format(url=url)]
    assert files_under(home) == []
    default = CliRunner().invoke(cli, args, catch_exceptions=False)  # no --db: PATCHCTL_HOME's store
    assert default.exit_code == 2 and default.stderr.splitlines() == [NO_STORE.format(url=url)]
    assert files_under(home) == []


def test_an_empty_file_is_no_store_and_stays_empty(tmp_path: Path, inventory: Path) -> None:
    """A file with no patchctl tables (``touch``ed, or left by an old failed open) is no store,
    and reading it does not turn it into one.

    Breaking it: switching every SQLite connection to WAL (``set_journal`` ignored) writes the
    file's header: its size is no longer 0.
    """
    db = tmp_path / "patchctl.db"
    db.touch()
    url = f"sqlite:///{db}"
    for args in (["report", "--json"], ["updates"], ["db", "upgrade"]):
        result = run(url, args, inventory)
        assert result.exit_code == 2, result.output
        assert result.stderr.splitlines() == [NO_STORE.format(url=url)]
    assert db.stat().st_size == 0
    assert files_under(tmp_path) == ["inventory.yml", "patchctl.db"]


@pytest.mark.parametrize("args", READ_COMMANDS, ids=" ".join)
def test_an_empty_postgresql_schema_is_no_store_and_stays_empty(args: list[str], pg_url: str, inventory: Path) -> None:
    """On PostgreSQL "no store" means a schema without patchctl's tables: the same words, the
    password hidden, and no table made (no migration ran)."""
    result = run(pg_url, args, inventory)
    assert (result.exit_code, result.stdout) == (2, ""), result.output
    assert result.stderr.splitlines() == [NO_STORE.format(url=shown(pg_url))]
    assert str(sa.make_url(pg_url).password) not in result.stderr
    assert pg_tables(pg_url) == []


def test_the_ci_gate_of_the_issue_fails_on_a_typo(tmp_path: Path) -> None:
    """The process itself: ``patchctl --db <typo> report --json`` exits 2 with nothing on stdout,
    so ``jq -e '.totals.missing.by_classification.security == 0'`` cannot pass."""
    url = f"sqlite:///{tmp_path / 'srv' / 'patchctl' / 'patchctl.dbx'}"
    env = dict(os.environ, PATCHCTL_HOME=str(tmp_path / "home"))
    proc = subprocess.run(
        [sys.executable, "-m", "patchctl", "--db", url, "report", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr.splitlines() == [NO_STORE.format(url=url)]
    assert not (tmp_path / "srv").exists() and not (tmp_path / "home").exists()


# --- a store at an older revision -------------------------------------------------------------


def test_an_older_store_is_named_not_migrated_until_db_upgrade(db_url: str, inventory: Path) -> None:
    """``report`` on a store one revision behind names the pending migration, exits 2 and leaves
    the store at its revision; ``db upgrade`` migrates it and says from which to which; then
    ``report`` reads it (the seeded host and its security update).

    Breaking it: ``require_current`` returning for any revision it finds (no comparison with the
    heads) fails it on both backends: the old schema is read as if it were current.
    """
    seeded(db_url)
    head, old, pending = one_revision_back(db_url)
    for args in (["report"], ["report", "--json"], ["updates"], ["rollout", "list"]):
        result = run(db_url, args, inventory)
        assert (result.exit_code, result.stdout) == (2, ""), result.output
        assert result.stderr.splitlines() == [
            f"patchctl: error: the store at {shown(db_url)} is at schema revision {old}, older than this "
            f"patchctl: migration {pending} pending ('patchctl db upgrade' or 'patchctl scan' applies it)"
        ]
        assert revisions(db_url) == [old]

    upgraded = run(db_url, ["db", "upgrade"], inventory)
    assert upgraded.exit_code == 0, upgraded.output
    assert upgraded.stdout == f"store {shown(db_url)}: schema upgraded from revision {old} to {head}\n"
    assert revisions(db_url) == [head]

    report = run(db_url, ["report", "--json"], inventory)
    assert report.exit_code == 0, report.output
    totals = json.loads(report.stdout)["totals"]
    assert (totals["hosts"], totals["missing"]["by_classification"]["security"]) == (1, 1)

    again = run(db_url, ["db", "upgrade", "--json"], inventory)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == {"db": shown(db_url), "from": head, "to": head, "upgraded": False}


def test_a_command_that_writes_still_migrates_an_older_store(db_url: str, inventory: Path) -> None:
    """``approve`` (a command that writes) migrates as it opens, as before."""
    seeded(db_url)
    head, _old, _pending = one_revision_back(db_url)
    result = run(db_url, ["approve", "apt:openssl:3.0.13-1"], inventory)
    assert result.exit_code == 0, result.output
    assert revisions(db_url) == [head]


def test_db_upgrade_creates_no_store(tmp_path: Path, pg_url: str, inventory: Path) -> None:
    """Upgrading is for a store that exists: a typo is the same error as for a read."""
    url = f"sqlite:///{tmp_path / 'srv' / 'patchctl.db'}"
    result = run(url, ["db", "upgrade"], inventory)
    assert result.exit_code == 2 and result.stderr.splitlines() == [NO_STORE.format(url=url)]
    assert not (tmp_path / "srv").exists()
    result = run(pg_url, ["db", "upgrade"], inventory)
    assert result.exit_code == 2 and result.stderr.splitlines() == [NO_STORE.format(url=shown(pg_url))]
    assert pg_tables(pg_url) == []


# --- commands that write ----------------------------------------------------------------------


def test_a_command_that_writes_makes_no_directory_outside_patchctl_home(
    tmp_path: Path, inventory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write command given a ``--db`` in a directory that does not exist names the directory
    and makes nothing; in PATCHCTL_HOME it makes the directories and the store (the default).

    Breaking it: ``_in_home`` answering True for every directory makes the first command create
    ``srv/patchctl/`` and a store in it.
    """
    home = tmp_path / "home"
    monkeypatch.setenv("PATCHCTL_HOME", str(home))
    outside = tmp_path / "srv" / "patchctl"
    url = f"sqlite:///{outside / 'patchctl.db'}"
    result = run(url, ["approve", "nothing-by-this-name"], inventory)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        f"patchctl: error: cannot create the store {url}: no directory {outside} "
        "(create it, or check --db / PATCHCTL_DB)"
    ]
    assert not (tmp_path / "srv").exists()

    inside = home / "stores" / "lab"
    url = f"sqlite:///{inside / 'patchctl.db'}"
    result = run(url, ["approve", "nothing-by-this-name"], inventory)
    assert result.exit_code == 2 and "no update 'nothing-by-this-name'" in result.stderr
    assert revisions(url) == [ScriptDirectory.from_config(alembic_config()).get_current_head()]
    outside.mkdir(parents=True)  # once the directory is there, the store is made in it
    url = f"sqlite:///{outside / 'patchctl.db'}"
    result = run(url, ["approve", "nothing-by-this-name"], inventory)
    assert result.exit_code == 2 and "no update 'nothing-by-this-name'" in result.stderr
    assert (outside / "patchctl.db").is_file()


# --- speed ------------------------------------------------------------------------------------


def test_a_current_store_is_read_without_alembic(db_url: str) -> None:
    """``Store.open_existing`` answers a store at the newest revision without importing Alembic
    (about a third of a second), as ``Store.open`` does.

    Breaking it: ``require_current`` calling ``_script()`` before comparing with the revision
    files' heads puts alembic in the list.
    """
    seeded(db_url)
    code = (
        "import sys; from patchctl.store import Store; Store.open_existing(sys.argv[1]).close(); "
        "print(' '.join(m for m in sys.modules if m.split('.')[0] == 'alembic'))"
    )
    out = subprocess.run([sys.executable, "-c", code, db_url], capture_output=True, text=True, check=True)
    assert out.stdout.split() == []
