"""The summary counts kept beside the rows they summarize (migration 0006), on SQLite and PostgreSQL:
``hosts.missing_*`` (what ``v_host_compliance`` reads) always equal what ``host_updates`` says, after
scans, catalog changes and deploy results; ``scan_runs.scans_*`` equal the report's history
aggregated from ``scans``; the migration fills both for existing rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from alembic import command

from patchctl.rules.model import ApplyOutcome, HostScan, Update
from patchctl.rules.policy import Wave
from patchctl.store import Store, alembic_config
from patchctl.store import reports as reads
from patchctl.store.rollouts import Decision, RolloutStore
from patchctl.store.schema import HOST_SUMMARY_COLUMNS, VIEW_CLASSIFICATIONS
from tests.unit.test_store import CURL, NGINX, OPENSSL, T0, T1, T2, ok_scan, sql

# Reported with less detail by one host ("other", not major), then fully by another.
KERNEL_SPARSE = Update("apt", "linux-image-amd64", "6.1.90-1", "other", installed_version="6.1.85-1")
KERNEL = Update("apt", "linux-image-amd64", "6.1.90-1", "security", installed_version="6.1.85-1", major=True)
ODD = Update("apt", "odd", "2", "made-up-class", installed_version="1")


def _aggregated(url: str) -> dict[str, dict[str, int]]:
    """host -> the summary columns, aggregated from host_updates as migration 0001's view did."""
    known = ", ".join(f"'{c}'" for c in VIEW_CLASSIFICATIONS)
    per_class = ", ".join(
        f"SUM(CASE WHEN u.classification = '{c}' THEN 1 ELSE 0 END)"
        if c != "other"
        else f"SUM(CASE WHEN u.classification = 'other' OR u.classification NOT IN ({known}) THEN 1 ELSE 0 END)"
        for c in VIEW_CLASSIFICATIONS
    )
    rows = sql(
        url,
        f"SELECT h.name, COUNT(hu.update_id), {per_class}, SUM(CASE WHEN u.major THEN 1 ELSE 0 END)"  # noqa: S608 - test constants only
        " FROM hosts h LEFT JOIN host_updates hu ON hu.host_id = h.id AND hu.state = 'missing'"
        " LEFT JOIN updates u ON u.id = hu.update_id GROUP BY h.name",
    )
    return {str(r[0]): {c: int(str(v or 0)) for c, v in zip(HOST_SUMMARY_COLUMNS, r[1:], strict=True)} for r in rows}


def _kept(store: Store) -> dict[str, dict[str, int]]:
    """host -> the summary as v_host_compliance gives it (from the hosts' columns)."""
    out = {}
    for r in store.host_compliance():
        by_class = {f"missing_{c}": n for c, n in r.missing_by_class.items()}
        out[r.host] = {"missing_total": r.missing_total, **by_class, "missing_major": r.missing_major}
    return out


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store.open(db_url) as s:
        yield s


def test_summary_follows_scans_catalog_changes_and_deploys(store: Store, db_url: str) -> None:
    run = store.start_run("scan", "inv", None, 3, now=T0)
    store.record_host_scan(run, ok_scan("web01", T0, [OPENSSL, CURL, KERNEL_SPARSE, ODD]))
    store.record_host_scan(run, ok_scan("web02", T0, [KERNEL_SPARSE, NGINX]))
    store.record_host_scan(run, HostScan("db01", "unreachable", T0, error="timeout"))
    assert _kept(store) == _aggregated(db_url)
    assert _kept(store)["web01"]["missing_other"] == 2  # "other" and the unknown class
    assert _kept(store)["db01"]["missing_total"] == 0  # never scanned ok

    # A third host tells the catalog the kernel is a major security update: the other hosts that
    # miss it count it as such from now on, though their own rows did not change.
    store.record_host_scan(run, ok_scan("web03", T0 + timedelta(minutes=1), [KERNEL]))
    kept = _kept(store)
    assert kept == _aggregated(db_url)
    assert (kept["web02"]["missing_security"], kept["web02"]["missing_major"]) == (1, 2)

    # A deploy installs two updates on web01; an unreachable scan keeps what was known.
    rs = RolloutStore(store)
    entries = rs.catalog()
    ids = {e.uid: e.id for e in entries}
    rid = rs.create_rollout(T1, "tester", "policy.yml", [Wave("pilot", "web01", bake_days=0)], entries)
    deploy_run = rs.start_deploy_run(rid, "pilot", "tester", T1)
    outcome = ApplyOutcome("web01", "ok", installed=[OPENSSL.uid], reboot_required=True)
    rs.record_deploy_result(deploy_run, rid, "pilot", outcome, T1, present=[CURL.uid], update_ids=ids)
    run2 = store.start_run("scan", "inv", None, 1, now=T1)
    store.record_host_scan(run2, HostScan("web02", "failed", T1, error="apt is locked"))
    kept = _kept(store)
    assert kept == _aggregated(db_url)
    assert kept["web01"]["missing_total"] == 2
    assert kept["web02"]["missing_total"] == 2

    # A rescan: what it reports is what is missing.
    store.record_host_scan(run2, ok_scan("web01", T1, [NGINX], installed={OPENSSL.name: OPENSSL.version}))
    assert _kept(store) == _aggregated(db_url)
    assert _kept(store)["web01"]["missing_total"] == 1


def test_history_is_kept_on_finished_runs_and_equals_the_aggregate(store: Store, db_url: str) -> None:
    run = store.start_run("scan", "inv", None, 3, now=T0)
    store.record_host_scan(run, ok_scan("web01", T0, [OPENSSL, CURL]))
    store.record_host_scan(run, ok_scan("web02", T0, [], reboot_required=True))
    store.record_host_scan(run, ok_scan("web03", T0, []))
    store.record_host_scan(run, HostScan("db01", "unreachable", T0, error="timeout"))
    store.finish_run(run, "ok", now=T0)
    running = store.start_run("scan", "inv", None, 1, now=T1)
    store.record_host_scan(running, HostScan("db01", "failed", T1, error="boom"))
    kept = sql(db_url, "SELECT scans_total, scans_missing_updates FROM scan_runs WHERE id = :r", {"r": running})
    assert kept == [(None, None)]

    with store.engine.connect() as conn:
        q = reads.sqlalchemy_query(conn)
        points = reads.history(q, 30)
        # The same points aggregated from scans (what --limit does), and for some hosts.
        aggregated = reads.history(q, 30, ["web01", "web02", "web03", "db01"])
        only_web01 = reads.history(q, 30, ["web01"])
    assert points == aggregated
    first, second = points
    assert (first.run_id, first.hosts, first.missing_total) == (run, 4, 2)
    assert dict(first.by_state) == {
        "compliant": 1,
        "missing": 1,
        "reboot_pending": 1,
        "failed": 0,
        "unreachable": 1,
    }
    assert (second.run_id, second.hosts, second.by_state["failed"]) == (running, 1, 1)
    assert [(p.run_id, p.hosts, p.by_state["missing"]) for p in only_web01] == [(run, 1, 1)]


def test_migration_fills_the_summaries_of_existing_rows(store: Store, db_url: str) -> None:
    run = store.start_run("scan", "inv", None, 2, now=T0)
    store.record_host_scan(run, ok_scan("web01", T0, [OPENSSL, CURL, NGINX, ODD]))
    store.record_host_scan(run, ok_scan("web02", T0, [], reboot_required=True))
    store.finish_run(run, "ok", now=T0)
    kept, runs = _kept(store), sql(db_url, "SELECT * FROM scan_runs")
    with store.engine.connect() as conn:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0005")
        assert _aggregated(db_url) == kept  # the 0001 view again, aggregating
        command.upgrade(cfg, "head")
        conn.commit()
    assert _kept(store) == kept == _aggregated(db_url)
    assert sql(db_url, "SELECT * FROM scan_runs") == runs


# --- update_counts (migration 0007) -------------------------------------------------------------


def _update_counts(url: str) -> dict[str, tuple[int, int]]:
    """uid -> (hosts_missing, hosts_installed) as kept in update_counts (zeros left out)."""
    rows = sql(
        url,
        "SELECT u.uid, c.hosts_missing, c.hosts_installed FROM update_counts c JOIN updates u ON u.id = c.update_id",
    )
    return {str(r[0]): (int(str(r[1])), int(str(r[2]))) for r in rows if r[1] or r[2]}


def _update_counts_aggregated(url: str) -> dict[str, tuple[int, int]]:
    """The same, counted from host_updates."""
    rows = sql(
        url,
        "SELECT u.uid, SUM(CASE WHEN hu.state = 'missing' THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN hu.state = 'installed' THEN 1 ELSE 0 END)"
        " FROM host_updates hu JOIN updates u ON u.id = hu.update_id GROUP BY u.uid",
    )
    return {str(r[0]): (int(str(r[1])), int(str(r[2]))) for r in rows if r[1] or r[2]}


def _catalog_view(url: str) -> dict[str, tuple[int, int]]:
    rows = sql(url, "SELECT uid, hosts_missing, hosts_installed FROM v_update_catalog")
    return {str(r[0]): (int(str(r[1])), int(str(r[2]))) for r in rows if r[1] or r[2]}


def _check_update_counts(store: Store, db_url: str) -> dict[str, tuple[int, int]]:
    kept = _update_counts(db_url)
    assert kept == _update_counts_aggregated(db_url) == _catalog_view(db_url)
    assert {e.uid: e.hosts_missing for e in RolloutStore(store).catalog() if e.hosts_missing} == {
        uid: missing for uid, (missing, _installed) in kept.items() if missing
    }
    with store.engine.connect() as conn:
        q = reads.sqlalchemy_query(conn)
        # The whole fleet's top list (kept counts) is the one counted from every host's rows.
        assert reads.top_missing(q, 10) == reads.top_missing(q, 10, store.hosts())
    return kept


def test_update_counts_follow_scans_and_deploys(store: Store, db_url: str) -> None:
    run = store.start_run("scan", "inv", None, 2, now=T0)
    store.record_host_scan(run, ok_scan("web01", T0, [OPENSSL, CURL, KERNEL_SPARSE]))
    store.record_host_scan(run, ok_scan("web02", T0, [OPENSSL, NGINX]))
    kept = _check_update_counts(store, db_url)
    assert kept == {OPENSSL.uid: (2, 0), CURL.uid: (1, 0), KERNEL_SPARSE.uid: (1, 0), NGINX.uid: (1, 0)}
    assert store.watched_packages("apt") == sorted([OPENSSL.name, CURL.name, KERNEL.name, NGINX.name])

    # Resolved: curl installed, the kernel gone; then both missing again (from installed, from gone).
    at = T0 + timedelta(hours=1)
    store.record_host_scan(run, ok_scan("web01", at, [OPENSSL, KERNEL_SPARSE], installed={CURL.name: CURL.version}))
    assert _check_update_counts(store, db_url)[CURL.uid] == (0, 1)
    store.record_host_scan(run, ok_scan("web01", at + timedelta(hours=1), [OPENSSL]))
    kept = _check_update_counts(store, db_url)
    assert (kept[CURL.uid], KERNEL_SPARSE.uid in kept) == ((0, 1), False)
    assert store.watched_packages("apt") == sorted([OPENSSL.name, NGINX.name])
    store.record_host_scan(run, ok_scan("web01", at + timedelta(hours=2), [OPENSSL, CURL, KERNEL_SPARSE]))
    kept = _check_update_counts(store, db_url)
    assert (kept[CURL.uid], kept[KERNEL_SPARSE.uid]) == ((1, 0), (1, 0))

    # Still missing with another installed version, and a scan older than what the store knows:
    # the rows change, the counts do not.
    newer = Update("apt", OPENSSL.name, OPENSSL.version, "security", installed_version="3.0.12-1")
    store.record_host_scan(run, ok_scan("web01", at + timedelta(hours=3), [newer, CURL, KERNEL_SPARSE]))
    store.record_host_scan(run, ok_scan("web02", T0 - timedelta(days=1), [OPENSSL, NGINX]))
    assert _check_update_counts(store, db_url) == kept

    # A deploy installs openssl on web02 (curl, "present", is not missing there: unchanged); a
    # failed scan changes nothing.
    rs = RolloutStore(store)
    entries = rs.catalog()
    ids = {e.uid: e.id for e in entries}
    rid = rs.create_rollout(T1, "tester", "policy.yml", [Wave("pilot", "web02", bake_days=0)], entries)
    deploy_run = rs.start_deploy_run(rid, "pilot", "tester", T1)
    outcome = ApplyOutcome("web02", "ok", installed=[OPENSSL.uid, OPENSSL.uid])
    rs.record_deploy_result(deploy_run, rid, "pilot", outcome, T1, present=[CURL.uid, OPENSSL.uid], update_ids=ids)
    store.record_host_scan(run, HostScan("web02", "failed", T1, error="apt is locked"))
    kept = _check_update_counts(store, db_url)
    assert (kept[OPENSSL.uid], kept[CURL.uid]) == ((1, 1), (1, 0))

    # Recomputed from the rows by refresh_summaries, and filled by the migration.
    sql(db_url, "UPDATE update_counts SET hosts_missing = 99")
    store.refresh_summaries()
    assert _check_update_counts(store, db_url) == kept
    with store.engine.connect() as conn:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0006")
        assert _catalog_view(db_url) == kept  # the 0004 view again, aggregating
        command.upgrade(cfg, "head")
        conn.commit()
    assert _check_update_counts(store, db_url) == kept


# --- hosts.missing_approved (migration 0008) ----------------------------------------------------


def _approved_aggregated(url: str) -> dict[str, int]:
    """host -> its missing updates whose latest decision approves them, joined as the report did."""
    rows = sql(
        url,
        "SELECT h.name, COUNT(*) FROM host_updates hu JOIN hosts h ON h.id = hu.host_id"
        " JOIN v_update_decisions d ON d.update_id = hu.update_id"
        " WHERE hu.state = 'missing' AND d.state = 'approved' GROUP BY h.name",
    )
    return {str(r[0]): int(str(r[1])) for r in rows}


def _check_approved(store: Store, db_url: str) -> dict[str, int] | None:
    with store.engine.connect() as conn:
        q = reads.sqlalchemy_query(conn)
        kept = reads.approved_missing(q)
        some = reads.approved_missing(q, ["web01", "nope"])
    if kept is not None:
        assert kept == _approved_aggregated(db_url)
        assert some == {h: n for h, n in kept.items() if h == "web01"}
    return kept


def _decide(rs: RolloutStore, at: datetime, *decided: tuple[Update, str, bool]) -> None:
    entries = {e.uid: e for e in rs.catalog()}
    rs.record_decisions([(entries[u.uid], Decision(state, "tester", None, at), auto) for u, state, auto in decided])


def test_approved_missing_follows_scans_decisions_and_deploys(store: Store, db_url: str) -> None:
    rs = RolloutStore(store)
    run = store.start_run("scan", "inv", None, 3, now=T0)
    store.record_host_scan(run, ok_scan("web01", T0, [OPENSSL, CURL, KERNEL_SPARSE]))
    store.record_host_scan(run, ok_scan("web02", T0, [OPENSSL, NGINX]))
    store.record_host_scan(run, ok_scan("web03", T0, [CURL]))
    assert _check_approved(store, db_url) is None  # no decision yet: unknown

    # The policy waits on openssl and curl, then approves them; an operator declines curl later
    # in the same batch (the latest decision counts); nginx needs a manual approval.
    _decide(rs, T0, (OPENSSL, "waiting", True), (CURL, "waiting", True), (NGINX, "needs manual approval", True))
    assert _check_approved(store, db_url) == {}
    _decide(rs, T1, (OPENSSL, "approved", True), (CURL, "approved", True), (CURL, "rejected", False))
    assert _check_approved(store, db_url) == {"web01": 1, "web02": 1}
    _decide(rs, T1, (CURL, "approved", False), (NGINX, "approved", False))
    assert _check_approved(store, db_url) == {"web01": 2, "web02": 2, "web03": 1}

    # Scans: a new update (no decision: not approved), resolved and reopened rows; a reclassified
    # kernel (the other hosts' counts are recomputed); a failed scan keeps what was known.
    at = T1 + timedelta(hours=1)
    store.record_host_scan(
        run, ok_scan("web01", at, [OPENSSL, KERNEL_SPARSE, ODD], installed={CURL.name: CURL.version})
    )
    assert _check_approved(store, db_url) == {"web01": 1, "web02": 2, "web03": 1}
    _decide(rs, at, (KERNEL_SPARSE, "approved", False))
    store.record_host_scan(run, ok_scan("web03", at, [CURL, KERNEL]))
    store.record_host_scan(run, ok_scan("web01", at + timedelta(hours=1), [OPENSSL, CURL, KERNEL_SPARSE, ODD]))
    store.record_host_scan(run, HostScan("web02", "unreachable", at, error="timeout"))
    assert _check_approved(store, db_url) == {"web01": 3, "web02": 2, "web03": 2}

    # A deploy installs openssl on web02.
    entries = rs.catalog()
    ids = {e.uid: e.id for e in entries}
    rid = rs.create_rollout(T2, "tester", "policy.yml", [Wave("pilot", "web02", bake_days=0)], entries)
    deploy_run = rs.start_deploy_run(rid, "pilot", "tester", T2)
    rs.record_deploy_result(
        deploy_run, rid, "pilot", ApplyOutcome("web02", "ok", installed=[OPENSSL.uid]), T2, update_ids=ids
    )
    kept = _check_approved(store, db_url)
    assert kept == {"web01": 3, "web02": 1, "web03": 2}

    # Recomputed by refresh_summaries, and filled by the migration.
    sql(db_url, "UPDATE hosts SET missing_approved = 7")
    sql(db_url, "UPDATE updates SET approved = NOT approved")
    store.refresh_summaries()
    assert _check_approved(store, db_url) == kept
    with store.engine.connect() as conn:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0007")
        command.upgrade(cfg, "head")
        conn.commit()
    assert _check_approved(store, db_url) == kept
