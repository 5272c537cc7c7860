"""The changelog rows and the catalog facts they give (store/changelogs.py) on SQLite and
PostgreSQL, with the real openssl changelog of bookworm-security; the scan flow's plan of who
fetches what (changelogs.plan_fetches) and what a host's result becomes (fetched_of)."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from patchctl.changelogs import fetched_of, plan_fetches
from patchctl.decisions import cves_reason
from patchctl.rules import changelog
from patchctl.rules.model import Update
from patchctl.store import Store
from patchctl.store import schema as t
from patchctl.store.changelogs import MAX_ATTEMPTS, ChangelogStore, Fetched
from patchctl.store.rollouts import RolloutStore
from tests.unit.test_store import T0, T1, ok_scan

DATA = Path(__file__).resolve().parents[1] / "data" / "apt" / "changelogs"
OPENSSL_TEXT = gzip.decompress((DATA / "openssl_3.0.22-1~deb12u2.changelog.Debian.gz").read_bytes()).decode()
KEY = ("openssl", "3.0.22-1~deb12u2")


def libssl(installed: str) -> Update:
    return Update(
        "apt",
        "libssl3",
        "3.0.22-1~deb12u2",
        "security",
        installed_version=installed,
        source_package="openssl",
        source_version="3.0.22-1~deb12u2",
    )


def openssl_bin(installed: str) -> Update:
    return replace(libssl(installed), name="openssl")


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store.open(db_url) as s:
        run = s.start_run("scan", "inv", None, 2, now=T0)
        s.record_host_scan(run, ok_scan("web01", T0, [libssl("3.0.22-1~deb12u1")]))
        s.record_host_scan(run, ok_scan("web02", T0, [libssl("3.0.20-1~deb12u2"), openssl_bin("3.0.20-1~deb12u2")]))
        s.finish_run(run, "ok", now=T0)
        yield s


def parsed(host: str = "web01") -> Fetched:
    return Fetched(
        *KEY, changelog.PARSED, None, tuple(changelog.parse(OPENSSL_TEXT)), host, "libssl3=3.0.22-1~deb12u2", 1
    )


def test_facts_come_from_the_oldest_installed_version_and_reach_every_binary(store: Store) -> None:
    """web02 has 3.0.20-1~deb12u2: the catalog's CVEs are those of both newer entries (six and
    nine), urgency high, for libssl3 and openssl alike (one changelog for the source). Seen
    failing with ``max`` in place of ``min`` in changelog.oldest (six CVEs: web01's range)."""
    cs = ChangelogStore(store)
    cs.link_sources([(u.uid, "openssl", KEY[1]) for u in (libssl("x"), openssl_bin("x"))])
    assert cs.wanted([KEY]) == [KEY]
    cs.record([parsed()], T1)
    assert cs.wanted([KEY]) == []
    assert cs.apply() == 2
    assert cs.apply() == 0  # nothing changes twice
    entries = {e.name: e for e in RolloutStore(store).catalog()}
    both = changelog.parse(OPENSSL_TEXT)[:2]
    want = tuple(sorted(set(both[0].cves) | set(both[1].cves)))
    for name in ("libssl3", "openssl"):
        e = entries[name]
        assert e.cves == want and e.urgency == "high" and e.changelog_status == changelog.PARSED
        assert cves_reason(e) is None
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(t.v_update_changelogs).order_by(t.v_update_changelogs.c.name)).all()
    assert [(r.name, r.changelog_status, r.changelog_host, r.urgency) for r in rows] == [
        ("libssl3", "parsed", "web01", "high"),
        ("openssl", "parsed", "web01", "high"),
    ]
    assert cs.downloads() == {KEY: 1}


def test_failed_fetches_are_tried_again_then_given_up_unreadable_is_final(store: Store) -> None:
    """A fetch_failed pair is wanted again until MAX_ATTEMPTS; an unreadable one never; the
    update's reason says which. Seen failing with the attempts check removed (wanted forever)."""
    cs = ChangelogStore(store)
    cs.link_sources([(libssl("x").uid, *KEY)])
    entry = {e.name: e for e in RolloutStore(store).catalog()}["libssl3"]
    assert "not fetched yet" in (cves_reason(entry) or "")
    failed = Fetched(*KEY, changelog.FETCH_FAILED, "web01: unreachable", (), "web01", None, 0)
    for attempt in range(MAX_ATTEMPTS):
        assert cs.wanted([KEY]) == [KEY], attempt
        cs.record([failed], T1)
    assert cs.wanted([KEY]) == []
    entry = {e.name: e for e in RolloutStore(store).catalog()}["libssl3"]
    assert entry.cves == () and "could not be fetched: web01: unreachable" in (cves_reason(entry) or "")
    cs.record([replace(failed, status=changelog.UNREADABLE, reason="no changelog.Debian.gz")], T1)
    entry = {e.name: e for e in RolloutStore(store).catalog()}["libssl3"]
    assert "unreadable: no changelog.Debian.gz" in (cves_reason(entry) or "")


def test_one_host_fetches_each_source_and_version() -> None:
    """Two hosts report binaries of openssl 3.0.22-1~deb12u2: only the first fetches, with its
    binaries, the one named like the source first. Seen failing with the ``taken`` check removed
    (both hosts asked: two downloads)."""
    a = ok_scan("web01", T0, [libssl("3.0.22-1~deb12u1"), openssl_bin("3.0.22-1~deb12u1")])
    b = ok_scan("web02", T0, [libssl("3.0.20-1~deb12u2")])
    a, b = replace(a, pkg_mgr="apt"), replace(b, pkg_mgr="apt")
    plan = plan_fetches([a, b], {KEY})
    assert plan == {
        "web01": [
            {
                "source": "openssl",
                "source_version": KEY[1],
                "binaries": [
                    {"name": "openssl", "version": KEY[1]},
                    {"name": "libssl3", "version": KEY[1]},
                ],
            }
        ]
    }
    assert plan_fetches([a, b], set()) == {}


def test_a_hosts_result_becomes_parsed_or_unreadable() -> None:
    ok = fetched_of(
        "web01", {"source": "openssl", "source_version": KEY[1], "status": "ok", "text": OPENSSL_TEXT, "downloads": 1}
    )
    assert ok.status == changelog.PARSED and ok.entries[0].version == KEY[1]
    bad = fetched_of(
        "web01",
        {"source": "x", "source_version": "1", "status": "ok", "text": "junk", "package": "x=1", "downloads": 1},
    )
    assert bad.status == changelog.UNREADABLE and bad.reason and bad.reason.startswith("x=1: not a Debian changelog")
    gone = fetched_of("web01", {"source": "x", "source_version": "1", "status": "fetch_failed", "reason": "E: 404"})
    assert (gone.status, gone.reason, gone.downloads) == (changelog.FETCH_FAILED, "E: 404", 0)
