"""The full report (patchctl report) on a real SQLite store: sections, both read paths, formats."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from patchctl.cli import cli
from patchctl.render.report_csv import CSV_SECTIONS, report_csv
from patchctl.render.report_html import render_html
from patchctl.render.report_json import full_report_json
from patchctl.render.text import full_report_lines, report_lines
from patchctl.report import full_report
from patchctl.rules.model import HostScan, Update
from patchctl.rules.report import Report
from patchctl.store import Store
from patchctl.store import schema as t

T0 = datetime(2024, 6, 1, 10, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=2, hours=2)


def _scan(host: str, at: datetime, status: str = "ok", **kw: object) -> HostScan:
    base: dict[str, Any] = {"distribution": "Debian", "os_version": "12", "pkg_mgr": "apt"}
    base.update(kw)
    return HostScan(host, status, at, **base)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Path]:
    """Three nightly runs over four hosts, then a rollout whose pilot deploy failed on one host."""
    path = tmp_path / "patchctl.db"
    ssl = Update("apt", "openssl", "3.0.13", "security")
    curl = Update("apt", "curl", "7.88.1", "bugfix")
    nginx = Update("apt", "nginx", "1.26.0", "feature", major=True)
    with Store.open(f"sqlite:///{path}") as s:
        for day in range(3):
            at = T0 + timedelta(days=day)
            run = s.start_run("scan", "inv", None, 4, now=at)
            web_updates = [ssl, curl] if day < 2 else []
            s.record_host_scan(
                run,
                _scan(
                    "web01",
                    at,
                    patch_role="server",
                    patch_window="sun-02",
                    reboot_required=day == 2,
                    updates=web_updates,
                ),
            )
            s.record_host_scan(run, _scan("app02", at, patch_role="client", updates=[ssl, nginx]))
            s.record_host_scan(run, _scan("app03", at, patch_role="client", updates=[ssl] if day == 0 else []))
            if day < 2:
                s.record_host_scan(run, _scan("db01", at, patch_role="server"))
            else:
                s.record_host_scan(run, HostScan("db01", "unreachable", at, error="ssh: connection timed out"))
            s.finish_run(run, "done", now=at + timedelta(minutes=5))
        with s.engine.begin() as conn:
            conn.execute(
                t.rollouts.insert().values(
                    id=1, created_at=T0, created_by="alice", policy_source="built-in", waves=[{"name": "pilot"}]
                )
            )
            conn.execute(
                t.rollout_waves.insert(),
                [
                    {
                        "rollout_id": 1,
                        "position": 0,
                        "name": "pilot",
                        "state": "halted",
                        "hosts": ["app02", "web01"],
                        "hosts_total": 2,
                        "bake_days": 7,
                        "started_at": T0,
                        "finished_at": None,
                        "halted_reason": "1 of 2 hosts failed",
                    },
                    {
                        "rollout_id": 1,
                        "position": 1,
                        "name": "fleet",
                        "state": "pending",
                        "hosts": None,
                        "hosts_total": 0,
                        "bake_days": 0,
                        "started_at": None,
                        "finished_at": None,
                        "halted_reason": None,
                    },
                ],
            )
            conn.execute(
                t.deploy_runs.insert().values(
                    id=1, rollout_id=1, wave="pilot", actor="alice", started_at=T0, status="halted"
                )
            )
            conn.execute(
                t.deploy_results.insert(),
                [
                    {
                        "run_id": 1,
                        "rollout_id": 1,
                        "wave": "pilot",
                        "host": "web01",
                        "status": "ok",
                        "failed": None,
                        "finished_at": T0,
                    },
                    {
                        "run_id": 1,
                        "rollout_id": 1,
                        "wave": "pilot",
                        "host": "app02",
                        "status": "failed",
                        "failed": {"apt:openssl:3.0.13": "postinst failed"},
                        "finished_at": T0,
                    },
                ],
            )
    yield path


@pytest.fixture
def rep(db: Path) -> Report:
    return full_report(f"sqlite:///{db}", None, NOW, stale_days=7, top=10)


def test_compliance_by_state_role_and_wave(rep: Report) -> None:
    assert dict(rep.states) == {
        "app02": "failed",  # its pilot deploy failed, though its scan is fine
        "app03": "compliant",
        "db01": "unreachable",
        "web01": "reboot_pending",
    }
    assert rep.by_state["compliant"] == 1 and sum(rep.by_state.values()) == 4
    assert rep.compliant_percent == 25.0
    assert {r: {s: n for s, n in c.items() if n} for r, c in rep.by_role.items()} == {
        "client": {"compliant": 1, "failed": 1},
        "server": {"reboot_pending": 1, "unreachable": 1},
    }
    assert rep.rollout_id == 1
    pilot, fleet = rep.waves
    assert (pilot.row.wave, pilot.row.state, pilot.row.hosts_ok, pilot.row.hosts_failed) == ("pilot", "halted", 1, 1)
    assert pilot.row.halted_reason == "1 of 2 hosts failed"
    assert {s: n for s, n in pilot.by_state.items() if n} == {"failed": 1, "reboot_pending": 1}
    assert (fleet.row.wave, fleet.row.hosts) == ("fleet", ())
    assert dict(rep.waves_of) == {"app02": "pilot", "web01": "pilot"}


def test_sections(rep: Report) -> None:
    # app02 still misses openssl and nginx; app03 and web01 no longer miss anything.
    assert [(m.name, m.hosts) for m in rep.top_missing] == [("openssl", 1), ("nginx", 1)]
    (reboot,) = rep.pending_reboots
    assert (reboot.host, reboot.patch_window, reboot.since) == ("web01", "sun-02", T0 + timedelta(days=2))
    assert reboot.age == timedelta(hours=2)
    assert [(f.host, f.stage, f.status, f.reason) for f in rep.failures] == [
        ("db01", "scan", "unreachable", "ssh: connection timed out"),
        ("app02", "deploy", "failed", "apt:openssl:3.0.13: postinst failed"),
    ]
    assert [(p.run_id, p.hosts, p.compliant_percent, p.missing_total) for p in rep.history] == [
        (1, 4, 25.0, 5),  # db01 compliant; web01 2, app02 2, app03 1 missing
        (2, 4, 50.0, 4),
        (3, 4, 25.0, 2),  # app03 compliant; web01 reboot pending; db01 unreachable
    ]
    assert rep.history[-1].at == T0 + timedelta(days=2, minutes=5)
    assert {s: n for s, n in rep.history[-1].by_state.items() if n} == {
        "compliant": 1,
        "missing": 1,
        "reboot_pending": 1,
        "unreachable": 1,
    }


def test_stale_hosts(db: Path) -> None:
    later = full_report(f"sqlite:///{db}", None, NOW + timedelta(days=10), stale_days=7)
    assert later.states["app03"] == "stale"
    assert later.states["db01"] == "unreachable"  # unreachable says more than stale


def test_fast_and_sqlalchemy_paths_agree(db: Path) -> None:
    fast = full_report_json(full_report(f"sqlite:///{db}", None, NOW))
    # A URL with a query string is not taken by the fast path: it goes through the Store.
    slow = full_report_json(full_report(f"sqlite:///{db}?timeout=5", None, NOW))
    assert fast == slow


def test_limit_applies_to_every_section(db: Path) -> None:
    rep = full_report(f"sqlite:///{db}", "app*", NOW)
    assert [h.name for h in rep.hosts] == ["app02", "app03"]
    assert [p.hosts for p in rep.history] == [2, 2, 2]
    assert [m.name for m in rep.top_missing] == ["openssl", "nginx"]
    assert [f.host for f in rep.failures] == ["app02"]


def test_json_keeps_the_report_1_keys_and_adds_sections(rep: Report) -> None:
    from patchctl.render.report_json import report_json

    data = full_report_json(rep)
    base = report_json(rep)
    assert data["schema"] == "patchctl.report/1"
    for key in base:
        if key != "hosts":
            assert data[key] == base[key]
    for full_host, base_host in zip(data["hosts"], base["hosts"], strict=True):
        assert {k: full_host[k] for k in base_host} == base_host
        assert set(full_host) - set(base_host) == {
            "state",
            "wave",
            "missing_approved",
            "exposure",
            "excepted",
            "held",
            "holds",
        }
    assert list(data)[4:] == [
        "stale_days",
        "compliance",
        "rollout_id",
        "top_missing",
        "starved",
        "exceptions",
        "freezes",
        "pending_reboots",
        "failures",
        "history",
        "nodes",
        "sla",
        "health",
        "restart_pending",
    ]
    assert json.loads(json.dumps(data)) == data
    assert data["compliance"]["by_wave"][0]["hosts"] == ["app02", "web01"]
    assert data["pending_reboots"] == [
        {
            "host": "web01",
            "patch_role": "server",
            "patch_window": "sun-02",
            "since": "2024-06-03T10:00:00Z",
            "age_hours": 2.0,
        }
    ]


def test_csv_sections_parse(rep: Report) -> None:
    for section in CSV_SECTIONS:
        rows = list(csv.reader(io.StringIO(report_csv(rep, section))))
        assert rows, section
        assert all(len(r) == len(rows[0]) for r in rows), section
    hosts = list(csv.DictReader(io.StringIO(report_csv(rep, "hosts"))))
    assert [(h["host"], h["state"], h["missing"]) for h in hosts] == [
        ("app02", "failed", "2"),
        ("app03", "compliant", "0"),
        ("db01", "unreachable", "0"),
        ("web01", "reboot_pending", "0"),
    ]


def test_plain_lines_start_with_the_host_lines(rep: Report) -> None:
    lines = full_report_lines(rep)
    hosts = report_lines(rep)
    assert lines[: len(hosts)] == hosts
    assert "# history" in lines and "# failures" in lines
    assert all("\t" in line for line in lines if line and not line.startswith("#"))


class _Scrape(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.kpi: dict[str, str] = {}
        self.refs: list[str] = []
        self.tags: set[str] = set()
        self._metric: str | None = None
        self._in_value = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.add(tag)
        for key in ("src", "href"):
            if a.get(key):
                self.refs.append(str(a[key]))
        if a.get("data-metric"):
            self._metric = a["data-metric"]
        self._in_value = tag == "span" and a.get("class") == "v" and self._metric is not None

    def handle_data(self, data: str) -> None:
        if self._in_value and self._metric:
            self.kpi[self._metric] = data
            self._in_value = False
            self._metric = None


def test_html_is_self_contained_and_shows_the_figures(rep: Report) -> None:
    page = render_html(rep)
    scrape = _Scrape()
    scrape.feed(page)
    assert scrape.refs == []  # no link, script or image fetched from anywhere
    assert "http://" not in page and "https://" not in page and "@import" not in page
    assert {"svg", "style", "script", "table"} <= scrape.tags
    assert scrape.kpi == {
        "hosts": "4",
        "compliant_percent": "25%",
        "hosts_with_missing": "1",
        "missing_total": "2",
        "missing_security": "1",
        "reboot_pending": "1",
        "failures": "2",
    }
    assert page.count('<tr data-host="') == 4
    assert page.count('class="pt"') == 3  # one trend point per scan run
    assert 'data-wave="pilot"' in page


def test_html_escapes_what_hosts_report(db: Path, tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{db}") as s:
        run = s.start_run("scan", "inv", None, 1, now=NOW)
        s.record_host_scan(run, HostScan("evil", "failed", NOW, error="<script>alert(1)</script>"))
    page = render_html(full_report(f"sqlite:///{db}", None, NOW))
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)" in page


def test_cli_formats(db: Path, tmp_path: Path, patchctl_home: Path) -> None:
    runner = CliRunner()
    url = f"sqlite:///{db}"
    env = {"PATCHCTL_NOW": NOW.isoformat()}
    as_json = runner.invoke(cli, ["--db", url, "report", "--json"], env=env)
    as_format = runner.invoke(cli, ["--db", url, "report", "--format", "json"], env=env)
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output) == json.loads(as_format.output)
    assert json.loads(as_json.output)["generated_at"] == "2024-06-03T12:00:00Z"  # the simulated clock
    out = tmp_path / "out" / "report.html"
    written = runner.invoke(cli, ["--db", url, "report", "-f", "html", "-o", str(out)], env=env)
    assert written.exit_code == 0 and out.read_text().startswith("<!DOCTYPE html>")
    csv_out = runner.invoke(cli, ["--db", url, "report", "-f", "csv", "--section", "failures"], env=env)
    assert next(iter(csv.DictReader(io.StringIO(csv_out.output))))["host"] == "db01"
    table = runner.invoke(cli, ["--db", url, "report", "-f", "table", "-o", str(tmp_path / "r.txt")], env=env)
    assert table.exit_code == 0 and "Most widespread missing updates" in (tmp_path / "r.txt").read_text()
    clash = runner.invoke(cli, ["--db", url, "report", "--json", "--format", "csv"], env=env)
    assert clash.exit_code == 2 and "disagree" in clash.output
    none = runner.invoke(cli, ["--db", url, "report", "--limit", "nope*"], env=env)
    assert none.exit_code == 2


def test_update_catalog_view(db: Path) -> None:
    with Store.open(f"sqlite:///{db}") as s, s.engine.connect() as conn:
        rows = {r.uid: r for r in conn.execute(sa.select(t.v_update_catalog))}
    assert set(rows) == {"apt:openssl:3.0.13", "apt:curl:7.88.1", "apt:nginx:1.26.0"}
    assert rows["apt:openssl:3.0.13"].hosts_missing == 1
    assert rows["apt:nginx:1.26.0"].major is True
    assert rows["apt:openssl:3.0.13"].decision is None  # nothing decided in this store
    assert rows["apt:openssl:3.0.13"].first_seen_at == T0


def test_every_described_view_matches_the_database(db: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        for name, table in t.views.tables.items():
            columns = [r[1] for r in conn.execute(f"PRAGMA table_info({name})")]
            assert columns == [c.name for c in table.columns], name
    finally:
        conn.close()


def test_docs_describe_every_view() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "schema.md").read_text(encoding="utf-8")
    for name, table in t.views.tables.items():
        assert f"### `{name}`" in doc, f"docs/schema.md has no section for {name}"
        section = doc.split(f"### `{name}`", 1)[1].split("\n#", 1)[0]
        for column in table.columns:
            if (
                column.name in {f"missing_{c}" for c in t.VIEW_CLASSIFICATIONS}
                and "`missing_<classification>`" in section
            ):
                continue
            assert f"`{column.name}`" in section, f"{name}.{column.name} is not documented"
