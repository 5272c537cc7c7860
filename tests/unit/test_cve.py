"""``patchctl cve`` and ``patchctl updates --cve`` on SQLite and PostgreSQL: hosts exposed to a
CVE from any source (apt through the real openssl changelog of bookworm-security, each host's own
range; dnf through its advisory), since when (the exposure clock), and where each fix stands."""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from patchctl.cli import cli
from patchctl.cve import cve_exposures
from patchctl.decisions import list_updates
from patchctl.errors import ConfigError
from patchctl.rules import changelog
from patchctl.rules.model import Update
from patchctl.rules.policy import parse_policy
from patchctl.store import Store
from patchctl.store.changelogs import ChangelogStore, Fetched
from patchctl.store.rollouts import RolloutStore
from tests.unit.test_store import T0, T1, ok_scan

DATA = Path(__file__).resolve().parents[1] / "data" / "apt" / "changelogs"
OPENSSL = gzip.decompress((DATA / "openssl_3.0.22-1~deb12u2.changelog.Debian.gz").read_bytes()).decode()
V = "3.0.22-1~deb12u2"
POLICY = parse_policy(
    "baselines:\n  debian:\n    classifications: [security]\n    approve_after_days: 3\n"
    "  redhat:\n    classifications: [security]\n    approve_after_days: 0\n"
    "waves:\n  - name: pilot\n    hosts: web03\n    bake_days: 2\n  - name: fleet\n    hosts: all\n",
    "p.yml",
)
NEWEST = "CVE-2026-84782"  # in 3.0.22-1~deb12u2's entry
OLDER = "CVE-2026-42767"  # in 3.0.22-1~deb12u1's entry only


def libssl(installed: str) -> Update:
    return Update(
        "apt", "libssl3", V, "security", installed_version=installed, source_package="openssl", source_version=V
    )


DNF = Update("dnf", "openssl-libs", "1:3.0.7-27.el9", "security", installed_version="1:3.0.7-24.el9", cves=(NEWEST,))


def build(db_url: str) -> None:
    with Store.open(db_url) as store:
        run = store.start_run("scan", "inv", None, 3, now=T0)
        store.record_host_scan(run, ok_scan("web01", T0, [libssl("3.0.22-1~deb12u1")]))
        store.record_host_scan(run, ok_scan("web02", T1, [libssl("3.0.20-1~deb12u2")]))
        store.record_host_scan(run, replace(ok_scan("web03", T0, [DNF]), pkg_mgr="dnf", os_family="RedHat"))
        store.finish_run(run, "ok", now=T1)
        cs = ChangelogStore(store)
        cs.link_sources([(libssl("x").uid, "openssl", V)])
        entries = tuple(changelog.parse(OPENSSL))
        cs.record([Fetched("openssl", V, changelog.PARSED, None, entries, "web01", f"libssl3={V}", 1)], T1)
        cs.apply()


def test_each_host_is_exposed_to_the_cves_of_its_own_range(db_url: str) -> None:
    """web01 (3.0.22-1~deb12u1) lacks only the newest entry's CVEs, web02 (3.0.20-1~deb12u2) those
    of both entries; the dnf host lacks the advisory's CVE. Seen failing with the host's range
    replaced by the catalog's CVEs (web01 listed exposed to the older entry's CVE)."""
    build(db_url)
    now = T1 + timedelta(days=1)
    newest, older = cve_exposures(db_url, POLICY, now, [NEWEST, OLDER.lower()])
    assert [h.host for h in newest.hosts] == ["web01", "web03", "web02"]  # longest exposed first
    assert [h.host for h in older.hosts] == ["web02"]
    assert {f.uid: f.where for f in newest.fixes} == {
        f"apt:libssl3:{V}": "waiting 1 day",
        "dnf:openssl-libs:1:3.0.7-27.el9": "approved, in no rollout yet",
    }
    assert newest.hosts[0].since == T0 and newest.as_dict(now)["hosts_exposed"] == 3
    ranked = cve_exposures(db_url, POLICY, now)
    assert ranked[0].cve == NEWEST and len(ranked[0].hosts) == 3
    # the newest entry's five other CVEs (web01, web02), then the older entry's (web02 alone)
    assert [len(c.hosts) for c in ranked[1:]] == [2] * 5 + [1] * (len(ranked) - 6)
    assert OLDER in [c.cve for c in ranked[6:]]


def test_where_a_fix_stands_in_a_rollout(db_url: str) -> None:
    """A fix frozen in a rollout: its wave and state. Seen failing with the rollout lookup
    removed (it said "approved, in no rollout yet")."""
    build(db_url)
    with Store.open(db_url) as store:
        rs = RolloutStore(store)
        dnf = [e for e in rs.catalog() if e.source == "dnf"]
        rid = rs.create_rollout(T1, "ops", "p.yml", POLICY.waves, dnf)
        rs.set_wave(rid, 0, T1, "t", "deploy", state="finished", hosts=["web03"], started_at=T1, finished_at=T1)
    (exposure,) = cve_exposures(db_url, POLICY, T1 + timedelta(days=1), [NEWEST])
    where = {f.uid: f.where for f in exposure.fixes}
    assert where["dnf:openssl-libs:1:3.0.7-27.el9"] == f"in rollout {rid}, wave pilot (baking)"


def test_an_unknown_cve_has_no_host_and_a_bad_id_is_refused(db_url: str) -> None:
    build(db_url)
    (none,) = cve_exposures(db_url, POLICY, T1, ["CVE-1999-0001"])
    assert none.hosts == () and none.fixes == ()
    with pytest.raises(ConfigError, match="not a CVE id"):
        cve_exposures(db_url, POLICY, T1, ["openssl"])


def test_updates_cve_filter_and_the_cve_command(db_url: str, tmp_path: Path) -> None:
    """``updates --cve`` keeps the updates that fix it; ``patchctl cve --json`` and a bad id (one
    line, exit 2). Seen failing with the filter comparing the id as given (lower case matched nothing)."""
    build(db_url)
    rows = list_updates(db_url, POLICY, T1, cves=[OLDER.lower()])
    assert [r.entry.uid for r in rows] == [f"apt:libssl3:{V}"]
    assert {r.entry.uid for r in list_updates(db_url, POLICY, T1, cves=[NEWEST])} == {
        f"apt:libssl3:{V}",
        "dnf:openssl-libs:1:3.0.7-27.el9",
    }
    policy = tmp_path / "p.yml"
    policy.write_text("baselines:\n  debian:\n    classifications: [security]\n")
    runner = CliRunner()
    out = runner.invoke(cli, ["--db", db_url, "--policy", str(policy), "--json", "cve", NEWEST])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["cves"][0]["hosts_exposed"] == 3
    text = runner.invoke(cli, ["--db", db_url, "--policy", str(policy), "cve"])
    assert text.exit_code == 0 and NEWEST in text.output
    bad = runner.invoke(cli, ["--db", db_url, "--policy", str(policy), "cve", "nope"])
    assert bad.exit_code == 2 and bad.output.count("\n") == 1 and "not a CVE id" in bad.output
