"""The report built from real store rows, and its three renderings."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console

from patchctl.render.report_json import report_json
from patchctl.render.text import report_lines, report_table
from patchctl.rules.model import CLASSIFICATIONS, HostScan, Update
from patchctl.rules.report import Report, build_report
from patchctl.store import Store

T0 = datetime(2024, 6, 1, 10, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=2)


@dataclass(frozen=True)
class InventoryOnlyRow:
    """A host the inventory lists but no scan has reached yet (the store has no such row)."""

    host: str = "new01"
    os: str = ""
    pkg_mgr: str | None = None
    patch_role: str | None = "client"
    last_scan_at: datetime | None = None
    reachability: str = "never_scanned"
    last_error: str | None = None
    missing_total: int = 0
    missing_by_class: Mapping[str, int] = field(default_factory=dict)
    missing_major: int = 0
    reboot_required: bool = False


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'patchctl.db'}") as s:
        run = s.start_run("scan", "inventories/lab", None, 3, now=T0)
        s.record_host_scan(
            run,
            HostScan(
                "web01",
                "ok",
                T0,
                distribution="Debian",
                os_version="12",
                pkg_mgr="apt",
                patch_role="server",
                reboot_required=True,
                updates=[
                    Update("apt", "openssl", "3.0.13", "security"),
                    Update("apt", "libssl3", "3.0.13", "security"),
                    Update("apt", "curl", "7.88.1", "bugfix"),
                    Update("apt", "nginx", "1.26.0", "feature", major=True),
                    Update("apt", "tzdata", "2024a", "enhancement"),
                ],
            ),
        )
        s.record_host_scan(
            run,
            HostScan(
                "app02",
                "ok",
                T0,
                distribution="Debian",
                os_version="12",
                pkg_mgr="apt",
                updates=[Update("apt", "openssl", "3.0.13", "security")],
            ),
        )
        s.record_host_scan(run, HostScan("db01", "unreachable", T0, error="timed out"))
        s.finish_run(run, "failed", now=T0)
        yield s


@pytest.fixture
def report(store: Store) -> Report:
    return build_report([*store.host_compliance(), InventoryOnlyRow()], NOW)


def test_report_per_host(report: Report) -> None:
    assert [h.name for h in report.hosts] == ["app02", "db01", "new01", "web01"]
    web = report.hosts[3]
    assert web.os == "Debian 12"
    assert web.last_scan_at == T0
    assert web.reachability == "ok"
    assert web.error is None
    assert web.reboot_pending is True
    assert web.missing.total == 5
    assert (web.missing.security, web.missing.critical, web.missing.others) == (2, 0, 3)
    assert web.missing.major == 1
    assert list(web.missing.by_class) == list(CLASSIFICATIONS)
    db = report.hosts[1]
    assert (db.reachability, db.error, db.missing.total) == ("unreachable", "timed out", 0)
    new = report.hosts[2]
    assert (new.reachability, new.scanned, new.last_scan_at) == ("never_scanned", False, None)


def test_report_totals(report: Report) -> None:
    t = report.totals
    assert t.hosts == 4
    assert dict(t.by_reachability) == {
        "ok": 2,
        "failed": 0,
        "unreachable": 1,
        "never_scanned": 1,
    }
    assert t.hosts_with_missing == 2
    assert t.missing.total == 6
    assert t.missing.security == 3
    assert t.missing.major == 1
    assert t.reboot_pending == 1


def test_unknown_classification_counts_as_other() -> None:
    row = InventoryOnlyRow(
        host="x",
        last_scan_at=T0,
        reachability="ok",
        missing_total=3,
        missing_by_class={"security": 1, "other": 1, "servicepack": 1},
    )
    (h,) = build_report([row], NOW).hosts
    assert h.missing.by_class["other"] == 2
    assert "servicepack" not in h.missing.by_class


def test_report_json_shape(report: Report) -> None:
    data = report_json(report)
    assert json.loads(json.dumps(data)) == data
    assert list(data) == ["schema", "generated_at", "hosts", "totals"]
    assert data["schema"] == "patchctl.report/1"
    assert data["generated_at"] == "2024-06-01T12:00:00Z"
    web = data["hosts"][3]
    assert web == {
        "name": "web01",
        "os": "Debian 12",
        "pkg_mgr": "apt",
        "patch_role": "server",
        "last_scan_at": "2024-06-01T10:00:00Z",
        "reachability": "ok",
        "error": None,
        "reboot_pending": True,
        "missing": {
            "total": 5,
            "major": 1,
            "by_classification": {
                "security": 2,
                "critical": 0,
                "bugfix": 1,
                "enhancement": 1,
                "feature": 1,
                "rollup": 0,
                "definition": 0,
                "driver": 0,
                "other": 0,
            },
        },
    }
    new = data["hosts"][2]
    assert (new["os"], new["last_scan_at"], new["reachability"]) == (None, None, "never_scanned")
    assert data["totals"] == {
        "hosts": 4,
        "reachability": {"ok": 2, "failed": 0, "unreachable": 1, "never_scanned": 1},
        "hosts_with_missing": 2,
        "reboot_pending": 1,
        "missing": {
            "total": 6,
            "major": 1,
            "by_classification": {
                "security": 3,
                "critical": 0,
                "bugfix": 1,
                "enhancement": 1,
                "feature": 1,
                "rollup": 0,
                "definition": 0,
                "driver": 0,
                "other": 0,
            },
        },
    }


def test_report_table_renders(report: Report) -> None:
    out = io.StringIO()
    Console(file=out, width=160, color_system=None).print(report_table(report))
    text = out.getvalue()
    for word in ("web01", "db01", "Debian 12", "unreachable", "never scanned", "pending"):
        assert word in text
    assert "2024-06-01 10:00 UTC" in text
    assert "4 hosts" in text


def test_report_table_of_an_empty_fleet() -> None:
    out = io.StringIO()
    Console(file=out, width=120, color_system=None).print(report_table(build_report([], NOW)))
    assert "Patch compliance" in out.getvalue()


def test_report_lines(report: Report) -> None:
    lines = report_lines(report)
    assert lines[0].split("\t") == [
        "host",
        "os",
        "last_scan",
        "reachability",
        "missing",
        "security",
        "critical",
        "other",
        "major",
        "reboot",
    ]
    assert len(lines) == 6
    assert all(len(line.split("\t")) == 10 for line in lines)
    assert lines[4].split("\t") == [
        "web01",
        "Debian 12",
        "2024-06-01T10:00:00Z",
        "ok",
        "5",
        "2",
        "0",
        "3",
        "1",
        "pending",
    ]
    assert lines[3].split("\t")[:4] == ["new01", "-", "-", "never_scanned"]
    assert lines[-1].startswith("TOTAL 4 hosts\t")


def test_compliance_counts_approved_missing_updates_only() -> None:
    from datetime import UTC, datetime, timedelta

    from patchctl.rules.compliance import COMPLIANT, MISSING, REBOOT_PENDING, compliance_state
    from patchctl.rules.report import HostReport, MissingCounts, host_facts

    def state(h: HostReport, approved_missing: int | None = None) -> str:
        return compliance_state(host_facts(h, False, approved_missing), now, week)

    now = datetime(2026, 1, 10, tzinfo=UTC)
    host = HostReport(
        name="web01",
        os="Debian 12",
        pkg_mgr="apt",
        patch_role="server",
        last_scan_at=now - timedelta(hours=1),
        reachability="ok",
        error=None,
        missing=MissingCounts(total=2, by_class={"other": 2}, major=1),
        reboot_pending=False,
    )
    week = timedelta(days=7)
    # nothing was ever decided: every missing update counts
    assert state(host) == MISSING
    # two updates missing, neither approved (a major one and a rejected one): compliant
    assert state(host, approved_missing=0) == COMPLIANT
    assert state(host, approved_missing=1) == MISSING
    pending = HostReport(**{**host.__dict__, "reboot_pending": True})
    assert state(pending, approved_missing=0) == REBOOT_PENDING
