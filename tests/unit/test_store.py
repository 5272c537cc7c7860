"""The store against real databases, SQLite and PostgreSQL (each test runs on both: ``db_url`` in
tests/unit/conftest.py): migrations, recording scans, the views."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from psycopg.rows import dict_row
from sqlalchemy.dialects import sqlite as sqlite_dialect

from patchctl.errors import StoreError
from patchctl.rules.model import HostScan, Update
from patchctl.store import Store, alembic_config
from patchctl.store.schema import UTCDateTime, metadata, sqlite_timestamp

T0 = datetime(2024, 6, 1, 10, 0, tzinfo=UTC)
T1 = T0 + timedelta(days=1)
T2 = T0 + timedelta(days=2)

OPENSSL = Update(
    "apt",
    "openssl",
    "3.0.13-1~deb12u1",
    "security",
    installed_version="3.0.11-1~deb12u2",
    cves=("CVE-2024-0727",),
    origin="Debian-Security",
)
CURL = Update("apt", "curl", "7.88.1-10+deb12u6", "bugfix", installed_version="7.88.1-10+deb12u5")
NGINX = Update("apt", "nginx", "1.26.0-1", "feature", installed_version="1.22.1-9", major=True)


def url_of(path: Path) -> str:
    return f"sqlite:///{path}"


def sql(url: str, query: str, params: dict[str, object] | None = None) -> list[tuple[object, ...]]:
    """Rows of plain SQL, on a connection of its own (not the store's)."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(query), params or {})
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()


def ok_scan(host: str, at: datetime, updates: list[Update], **kw: object) -> HostScan:
    scan = HostScan(
        host=host,
        status="ok",
        scanned_at=at,
        os_family="Debian",
        distribution="Debian",
        os_version="12",
        pkg_mgr="apt",
        updates=updates,
        groups=("web", "pilot"),
        address="127.0.10.1",
        patch_role="server",
        patch_window="sun-night",
    )
    for key, value in kw.items():
        setattr(scan, key, value)
    return scan


def host_updates(url: str, host: str) -> dict[str, tuple[object, ...]]:
    """uid -> (state, installed_version, first_seen_at, resolved_at), read with plain SQL."""
    rows = sql(
        url,
        "SELECT u.uid, hu.state, hu.installed_version, hu.first_seen_at, hu.resolved_at "
        "FROM host_updates hu JOIN hosts h ON h.id = hu.host_id "
        "JOIN updates u ON u.id = hu.update_id WHERE h.name = :host",
        {"host": host},
    )
    return {str(r[0]): tuple(r[1:]) for r in rows}


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store.open(db_url) as s:
        yield s


# --- opening and migrating ------------------------------------------------------------------


def test_open_creates_parent_dir_and_migrates_to_head(db_url: str, backend: str) -> None:
    with Store.open(db_url) as store:
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert head is not None and head >= "0002"  # revisions are numbered; later ones build on these
        assert store.schema_revision() == head
        with store.engine.connect() as conn:
            if backend == "sqlite":
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
                assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
            else:
                assert conn.dialect.driver == "psycopg"
                assert str(conn.exec_driver_sql("SHOW application_name").scalar()).startswith("patchctl ")
            inspector = sa.inspect(conn)
            assert {"hosts", "scan_runs", "scans", "updates", "host_updates"} <= set(inspector.get_table_names())
            assert {"v_host_compliance", "v_missing_updates"} <= set(inspector.get_view_names())
    if backend == "sqlite":
        assert Path(sa.make_url(db_url).database or "").is_file()


def test_reopen_is_idempotent_and_keeps_data(db_url: str) -> None:
    with Store.open(db_url) as store:
        run = store.start_run("scan", "inventories/lab", None, 1)
        store.record_host_scan(run, ok_scan("web01", T0, [OPENSSL]))
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    for _ in range(2):
        with Store.open(db_url) as store:
            assert store.schema_revision() == head
            assert store.hosts() == ["web01"]
    assert sql(db_url, "SELECT version_num FROM alembic_version") == [(head,)]


def test_concurrent_openers_migrate_once(db_url: str) -> None:
    """Several processes opening a new store at once: one migrates, the others wait and find it done."""
    code = "import sys; from patchctl.store import Store; Store.open(sys.argv[1]).close()"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, db_url], stderr=subprocess.PIPE, text=True) for _ in range(4)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert sql(db_url, "SELECT version_num FROM alembic_version") == [(head,)]


def test_a_current_store_opens_without_alembic(db_url: str) -> None:
    """Opening a store already at the newest revision imports no Alembic module (its import costs
    every command about a third of a second); a new store does, to migrate.

    Breaking it: an ``import alembic`` at the top of patchctl/store/engine.py (or a head check in
    ``engine.migrate`` that never matches) puts alembic in the first list.
    """
    code = (
        "import sys; from patchctl.store import Store; Store.open(sys.argv[1]).close(); "
        "print(' '.join(m for m in sys.modules if m.split('.')[0] == 'alembic'))"
    )

    def alembic_modules() -> list[str]:
        out = subprocess.run([sys.executable, "-c", code, db_url], capture_output=True, text=True, check=True)
        return out.stdout.split()

    assert alembic_modules() != []  # a new store: migrated with Alembic
    assert alembic_modules() == []  # now current


def test_schema_module_matches_the_migrations(store: Store) -> None:
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, metadata) == []


def test_database_from_a_newer_patchctl_is_refused(db_url: str) -> None:
    Store.open(db_url).close()
    sql(db_url, "UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(StoreError, match=r"9999.*newer"):
        Store.open(db_url)


def test_bad_url_gives_store_error_naming_the_url(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not a url"):
        Store.open("not a url")
    with pytest.raises(StoreError, match="nosuchdialect://host/db"):
        Store.open("nosuchdialect://host/db")
    blocker = tmp_path / "file"
    blocker.write_text("")
    bad = f"sqlite:///{blocker}/sub/patchctl.db"
    with pytest.raises(StoreError, match=str(blocker)):
        Store.open(bad)
    not_a_db = tmp_path / "garbage.db"
    not_a_db.write_bytes(b"this is not a sqlite database" * 100)
    with pytest.raises(StoreError, match=r"garbage\.db"):
        Store.open(url_of(not_a_db))


def test_password_is_hidden_in_errors() -> None:
    with pytest.raises(StoreError) as info:
        Store.open("nosuchdialect://admin:s3cret@db.example/patchctl")
    assert "s3cret" not in str(info.value)
    assert "db.example" in str(info.value)


def test_postgresql_url_without_driver_uses_psycopg_and_errors_hide_the_password(pg_url: str) -> None:
    """``postgresql://`` works as given (psycopg 3); a wrong password or a dead port is a StoreError."""
    url = sa.make_url(pg_url)
    plain = url.set(drivername="postgresql")
    with Store.open(plain.render_as_string(hide_password=False)) as store:
        assert store.engine.dialect.driver == "psycopg"
    with pytest.raises(StoreError, match=r"127\.0\.0\.1") as info:
        Store.open(url.set(password="wr0ng-pw").render_as_string(hide_password=False))
    assert "wr0ng-pw" not in str(info.value)
    assert str(url.password) not in str(info.value)
    with socket.socket() as sock:  # a port where nothing listens
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    with pytest.raises(StoreError, match=f"127.0.0.1:{free}"):
        Store.open(url.set(port=free).render_as_string(hide_password=False))


def test_closed_store_refuses_work(db_url: str) -> None:
    store = Store.open(db_url)
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.hosts()


# --- recording scans ------------------------------------------------------------------------


def test_rescan_marks_installed_and_gone(store: Store, db_url: str) -> None:
    run = store.start_run("scan", "inv", "web*", 1, now=T0)
    store.record_host_scan(run, ok_scan("web01", T0, [OPENSSL, CURL, NGINX]))
    states = host_updates(db_url, "web01")
    assert {uid: s[0] for uid, s in states.items()} == {
        OPENSSL.uid: "missing",
        CURL.uid: "missing",
        NGINX.uid: "missing",
    }
    assert states[OPENSSL.uid][1] == "3.0.11-1~deb12u2"
    assert store.watched_packages("apt") == ["curl", "nginx", "openssl"]

    # openssl got installed; curl vanished without its version being installed.
    run2 = store.start_run("scan", "inv", None, 1, now=T1)
    store.record_host_scan(
        run2,
        ok_scan(
            "web01",
            T1,
            [NGINX],
            installed={"openssl": OPENSSL.version, "curl": "7.88.1-10+deb12u5"},
        ),
    )
    states = host_updates(db_url, "web01")
    assert states[OPENSSL.uid][0] == "installed"
    assert states[OPENSSL.uid][1] == OPENSSL.version
    assert states[OPENSSL.uid][3] is not None
    assert states[CURL.uid][0] == "gone"
    assert states[CURL.uid][3] is not None
    assert states[NGINX.uid][0] == "missing"
    assert states[NGINX.uid][3] is None
    assert store.watched_packages("apt") == ["nginx"]
    assert [m.uid for m in store.missing_updates("web01")] == [NGINX.uid]

    # The update comes back (e.g. a downgrade): missing again, resolved_at cleared.
    run3 = store.start_run("scan", "inv", None, 1, now=T2)
    store.record_host_scan(run3, ok_scan("web01", T2, [NGINX, OPENSSL]))
    states = host_updates(db_url, "web01")
    assert states[OPENSSL.uid][0] == "missing"
    assert states[OPENSSL.uid][3] is None


def test_unreachable_scan_keeps_previous_missing_rows(store: Store, db_url: str) -> None:
    run = store.start_run("scan", "inv", None, 1)
    store.record_host_scan(run, ok_scan("web01", T0, [OPENSSL, CURL], reboot_required=True))
    before = host_updates(db_url, "web01")

    run2 = store.start_run("scan", "inv", None, 1)
    store.record_host_scan(
        run2,
        HostScan("web01", "unreachable", T1, error="ssh: connection refused"),
    )
    assert host_updates(db_url, "web01") == before
    (row,) = store.host_compliance()
    assert row.reachability == "unreachable"
    assert row.last_error == "ssh: connection refused"
    assert row.last_scan_at == T1
    assert row.last_ok_scan_at == T0
    assert row.missing_total == 2
    assert row.reboot_required is True  # unknown now: the last known value stays
    assert row.os == "Debian 12"  # facts kept from the last successful scan
    last = sql(db_url, "SELECT status, error, missing_total FROM scans ORDER BY id DESC LIMIT 1")
    assert last == [("unreachable", "ssh: connection refused", None)]


def test_first_seen_at_kept_and_last_seen_at_bumped(store: Store, db_url: str, backend: str) -> None:
    run = store.start_run("scan", "inv", None, 2)
    store.record_host_scan(run, ok_scan("web01", T0, [OPENSSL]))
    store.record_host_scan(run, ok_scan("web02", T1, [OPENSSL]))
    run2 = store.start_run("scan", "inv", None, 1)
    store.record_host_scan(run2, ok_scan("web01", T2, [OPENSSL]))

    (m1,) = store.missing_updates("web01")
    (m2,) = store.missing_updates("web02")
    assert m1.first_seen_at == T0
    assert m1.last_seen_at == T2
    assert m1.catalog_first_seen_at == T0
    assert m2.first_seen_at == T1
    assert m2.catalog_first_seen_at == T0
    rows = sql(db_url, "SELECT uid, first_seen_at, last_seen_at FROM updates")
    assert len(rows) == 1
    if backend == "sqlite":  # naive UTC text
        assert str(rows[0][1]).startswith("2024-06-01 10:00:00")
        assert str(rows[0][2]).startswith("2024-06-03 10:00:00")
    else:  # timestamptz
        assert rows[0][1:] == (T0, T2)


def test_catalog_keeps_richer_details(store: Store) -> None:
    run = store.start_run("scan", "inv", None, 2)
    store.record_host_scan(run, ok_scan("web01", T0, [OPENSSL]))
    sparse = Update("apt", OPENSSL.name, OPENSSL.version)  # no classification, no CVEs
    store.record_host_scan(run, ok_scan("web02", T1, [sparse]))
    for row in store.missing_updates():
        assert row.classification == "security"
        assert row.cves == ("CVE-2024-0727",)


def test_reboot_required_since(store: Store) -> None:
    run = store.start_run("scan", "inv", None, 1)
    store.record_host_scan(run, ok_scan("web01", T0, [], reboot_required=True))
    store.record_host_scan(run, ok_scan("web01", T1, [], reboot_required=True))
    (row,) = store.host_compliance()
    assert row.reboot_required is True
    assert row.reboot_required_since == T0
    store.record_host_scan(run, ok_scan("web01", T2, [], reboot_required=False))
    (row,) = store.host_compliance()
    assert row.reboot_required is False
    assert row.reboot_required_since is None


def test_finish_run_counts_hosts(store: Store) -> None:
    run = store.start_run("scan", "inventories/lab", "all", 4, now=T0)
    store.record_host_scan(run, ok_scan("web01", T0, [OPENSSL]))
    store.record_host_scan(run, ok_scan("web02", T0, []))
    store.record_host_scan(run, HostScan("db01", "failed", T0, error="apt-get update failed"))
    store.record_host_scan(run, HostScan("db02", "unreachable", T0))
    store.finish_run(run, "failed", now=T1)
    info = store.get_run(run)
    assert (info.kind, info.inventory, info.limit_pattern, info.status) == (
        "scan",
        "inventories/lab",
        "all",
        "failed",
    )
    assert (info.started_at, info.finished_at) == (T0, T1)
    assert (info.hosts_total, info.hosts_ok, info.hosts_failed, info.hosts_unreachable) == (
        4,
        2,
        1,
        1,
    )
    with pytest.raises(StoreError, match="no run 999"):
        store.finish_run(999, "ok")


def test_bad_input_is_a_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match="unknown status"):
        store.record_host_scan(1, HostScan("web01", "weird", T0))
    with pytest.raises(StoreError, match="run kind"):
        store.start_run("bogus", "inv", None, 0)
    # Foreign keys are enforced: a scan of a run that does not exist is refused, and the
    # transaction leaves nothing behind.
    with pytest.raises(StoreError, match="web01"):
        store.record_host_scan(4242, ok_scan("web01", T0, [OPENSSL]))
    assert store.hosts() == []
    assert store.missing_updates() == []
    # The connection it ran on went back to the pool rolled back: the next scan is written.
    run = store.start_run("scan", "inv", None, 1)
    store.record_host_scan(run, ok_scan("web01", T0, [OPENSSL]))
    assert [m.uid for m in store.missing_updates("web01")] == [OPENSSL.uid]


def test_concurrent_writers_from_threads(db_url: str) -> None:
    stores = [Store.open(db_url) for _ in range(2)]
    run = stores[0].start_run("scan", "inv", None, 20)
    errors: list[BaseException] = []

    def work(store: Store, first: int) -> None:
        try:
            for i in range(first, 20, 2):
                store.record_host_scan(run, ok_scan(f"h{i:02d}", T0, [OPENSSL, CURL]))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s, n)) for n, s in enumerate(stores)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    stores[0].finish_run(run, "ok")
    assert stores[1].get_run(run).hosts_ok == 20
    assert len(stores[1].hosts()) == 20
    for s in stores:
        s.close()


# --- views ----------------------------------------------------------------------------------


def test_views_return_expected_rows(store: Store) -> None:
    windows_update = Update(
        "windows",
        "2024-05 Cumulative Update for Windows Server 2022",
        "200",
        "security",
        update_id="d2a6b3c4-0001",
        kbs=("KB5037782",),
        reboot_hint=True,
    )
    run = store.start_run("scan", "inv", None, 3)
    store.record_host_scan(run, ok_scan("web01", T0, [OPENSSL, CURL, NGINX]))
    store.record_host_scan(
        run,
        HostScan(
            "win01",
            "ok",
            T0,
            os_family="Windows",
            distribution="Microsoft Windows Server 2022 Standard",
            os_version="10.0.20348",
            pkg_mgr="windows",
            updates=[windows_update],
            reboot_required=True,
        ),
    )
    store.record_host_scan(run, HostScan("db01", "failed", T0, error="boom"))

    rows = {r.host: r for r in store.host_compliance()}
    assert list(rows) == ["db01", "web01", "win01"]
    web = rows["web01"]
    assert (web.os, web.pkg_mgr, web.patch_role, web.reachability) == (
        "Debian 12",
        "apt",
        "server",
        "ok",
    )
    assert web.missing_total == 3
    assert web.missing_by_class["security"] == 1
    assert web.missing_by_class["bugfix"] == 1
    assert web.missing_by_class["feature"] == 1
    assert web.missing_by_class["critical"] == 0
    assert web.missing_major == 1
    assert web.reboot_required is False
    win = rows["win01"]
    assert win.os == "Microsoft Windows Server 2022 Standard 10.0.20348"
    assert (win.missing_total, win.missing_by_class["security"], win.reboot_required) == (
        1,
        1,
        True,
    )
    db = rows["db01"]
    assert (db.reachability, db.os, db.missing_total, db.last_error) == ("failed", "", 0, "boom")

    missing = store.missing_updates()
    assert [(m.host, m.uid) for m in missing] == [
        ("web01", CURL.uid),
        ("web01", NGINX.uid),
        ("web01", OPENSSL.uid),
        ("win01", "windows:d2a6b3c4-0001"),
    ]
    nginx = next(m for m in missing if m.name == "nginx")
    assert (nginx.version, nginx.installed_version, nginx.classification, nginx.major) == (
        "1.26.0-1",
        "1.22.1-9",
        "feature",
        True,
    )
    assert nginx.first_seen_at == T0
    assert [m.uid for m in store.missing_updates("win01")] == ["windows:d2a6b3c4-0001"]
    assert store.missing_updates("nope") == []
    assert store.watched_packages("windows") == [windows_update.name]
    assert [r.host for r in store.host_compliance(["win01", "db01"])] == ["db01", "win01"]


def test_views_are_plain_sql(store: Store, db_url: str, backend: str) -> None:
    """Other tools (sqlite3, psql, a BI tool) can read the views without patchctl or SQLAlchemy."""
    run = store.start_run("scan", "inv", None, 1)
    store.record_host_scan(run, ok_scan("web01", T0, [OPENSSL, CURL]))
    url = sa.make_url(db_url)
    if backend == "sqlite":
        with sqlite3.connect(url.database or "") as db:
            db.row_factory = sqlite3.Row
            row = dict(db.execute("SELECT * FROM v_host_compliance").fetchone())
            hosts = [r["host"] for r in db.execute("SELECT host FROM v_missing_updates")]
    else:
        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(conninfo, row_factory=dict_row) as db:
            row = db.execute("SELECT * FROM v_host_compliance").fetchone() or {}
            hosts = [r["host"] for r in db.execute("SELECT host FROM v_missing_updates")]
    assert row["host"] == "web01"
    assert row["missing_total"] == 2
    assert row["missing_security"] == 1
    assert row["missing_bugfix"] == 1
    assert row["reachability"] == "ok"
    assert hosts == ["web01", "web01"]


# --- the scan's write path bypasses SQLAlchemy's types: it must write what they would ----------


@pytest.mark.parametrize(
    "value",
    [
        T0,
        datetime(2024, 6, 1, 10, 0, 0, 1, tzinfo=UTC),
        datetime(2024, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5))),
        datetime(2024, 6, 1, 12, 30, tzinfo=timezone(timedelta(hours=2, minutes=30))),
        datetime(2024, 6, 1, 10, 0),  # naive: taken as UTC
        datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    ],
)
def test_sqlite_timestamp_is_the_text_sqlalchemy_stores(value: datetime) -> None:
    dialect = sqlite_dialect.dialect()
    bind = sqlite_dialect.DATETIME().bind_processor(dialect)
    assert bind is not None
    assert sqlite_timestamp(value) == bind(UTCDateTime().process_bind_param(value, dialect))


def test_scan_rows_are_what_the_column_types_write(store: Store, db_url: str, backend: str) -> None:
    """Every row a scan writes reads back through the typed schema as it went in, and SQLite keeps
    the very text SQLAlchemy's types would (timestamps, JSON)."""
    at = T0.astimezone(timezone(timedelta(hours=2)))  # not UTC: stored as UTC
    run = store.start_run("scan", "inv", None, 2)
    store.record_host_scan(run, ok_scan("web01", at, [OPENSSL, CURL], reboot_required=True))
    store.record_host_scan(run, HostScan("db01", "unreachable", T0.replace(tzinfo=None), error="timeout"))
    store.record_host_scan(run, ok_scan("web01", T1, [OPENSSL], installed={CURL.name: CURL.version}))
    engine = sa.create_engine(
        sa.make_url(db_url).set(drivername="postgresql+psycopg") if backend != "sqlite" else db_url
    )
    try:
        with engine.connect() as conn:
            web01 = conn.execute(sa.select(metadata.tables["hosts"]).where(sa.column("name") == "web01")).one()
            db01 = conn.execute(sa.select(metadata.tables["hosts"]).where(sa.column("name") == "db01")).one()
            hu = metadata.tables["host_updates"]
            u = metadata.tables["updates"]
            states = {
                r.uid: r
                for r in conn.execute(
                    sa.select(u.c.uid, hu.c.state, hu.c.installed_version, hu.c.first_seen_at, hu.c.last_seen_at,
                              hu.c.resolved_at).join(hu, hu.c.update_id == u.c.id)
                )
            }  # fmt: skip
            catalog = {r.uid: r for r in conn.execute(sa.select(u))}
            scans = conn.execute(sa.select(metadata.tables["scans"]).order_by(sa.column("id"))).all()
            raw = {
                "hosts": conn.exec_driver_sql(
                    "SELECT first_seen_at, last_scan_at, last_ok_scan_at, reboot_required_since, groups FROM hosts"
                    " WHERE name = 'web01'"
                ).one(),
                "updates": conn.exec_driver_sql(
                    "SELECT first_seen_at, last_seen_at, cves, advisory_ids, kbs FROM updates WHERE name = 'openssl'"
                ).one(),
                "scans": conn.exec_driver_sql("SELECT scanned_at, missing_by_class FROM scans ORDER BY id").all(),
            }
    finally:
        engine.dispose()
    assert (web01.first_seen_at, web01.last_scan_at, web01.last_ok_scan_at) == (T0, T1, T1)
    assert (web01.reboot_required, web01.reboot_required_since) == (False, None)
    assert web01.groups == ["web", "pilot"]
    assert (web01.missing_total, web01.missing_security, web01.missing_bugfix) == (1, 1, 0)
    assert (db01.first_seen_at, db01.last_scan_at, db01.last_ok_scan_at, db01.last_status) == (
        T0,
        T0,
        None,
        "unreachable",
    )
    assert db01.reboot_required is False
    assert states[OPENSSL.uid].state == "missing"
    assert states[OPENSSL.uid][3:] == (T0, T1, None)
    assert states[CURL.uid].state == "installed"
    assert states[CURL.uid].installed_version == CURL.version
    assert states[CURL.uid][3:] == (T0, T0, T1)
    openssl = catalog[OPENSSL.uid]
    assert (openssl.cves, openssl.advisory_ids, openssl.kbs) == (["CVE-2024-0727"], [], [])
    assert (openssl.major, openssl.reboot_hint, openssl.first_seen_at) == (False, False, T0)
    assert [(s.scanned_at, s.status, s.missing_total, s.missing_by_class) for s in scans] == [
        (T0, "ok", 2, {"bugfix": 1, "security": 1}),
        (T0, "unreachable", None, None),
        (T1, "ok", 1, {"security": 1}),
    ]
    assert scans[0].reboot_required is True
    if backend == "sqlite":
        t0, t1 = sqlite_timestamp(T0), sqlite_timestamp(T1)
        assert tuple(raw["hosts"]) == (t0, t1, t1, None, '["web","pilot"]')
        assert tuple(raw["updates"]) == (t0, t1, '["CVE-2024-0727"]', "[]", "[]")
        assert [tuple(r) for r in raw["scans"]] == [
            (t0, '{"bugfix":1,"security":1}'),
            (t0, None),
            (t1, '{"security":1}'),
        ]
