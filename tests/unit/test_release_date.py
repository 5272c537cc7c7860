"""A Windows update's release date (WUA's ``LastDeploymentChangeTime``) from the scan module's
result through normalization into the store, and the policy's ``approve_after_days`` counted
from it; from first seen for an update whose source gives no date. On SQLite and PostgreSQL.

Seen failing before the release date was carried: ``Update`` had no ``released_at`` (the
normalization dropped the field), and the Windows update waited 3 days from its first scan like
the Chocolatey one. Broken on purpose since: the store's insert writing NULL for ``released_at``
fails the first test (``age_from`` is ``first_seen``); the scan merge keeping the old date fails
the re-dated one; ``evaluate`` counting from ``first_seen_at`` again fails both.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from patchctl.cli import cli
from patchctl.decisions import list_updates
from patchctl.rules.model import HostScan, Update
from patchctl.rules.normalize import ScanResultError
from patchctl.rules.normalize_windows import normalize_win_updates
from patchctl.rules.policy import STATE_APPROVED, STATE_WAITING, parse_policy
from patchctl.store import Store

DATA = Path(__file__).resolve().parents[1] / "data" / "windows"
CU = "74819184-828b-4f97-bb4b-089a0c58e366"  # released 2021-05-11 in patch_win_update_info.json
RELEASED = datetime(2021, 5, 11, tzinfo=UTC)
FIRST_SCAN = datetime(2021, 5, 12, 9, 0, tzinfo=UTC)  # a day after the release
POLICY = """\
---
baselines:
  windows:
    classifications: [security, critical, bugfix, definition, other]
    approve_after_days: 3
"""


def _fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))
    return data["result"]


def windows_updates() -> list[Update]:
    details = _fixture("patch_win_update_info.json")["patchctl_win_info"]
    updates, _filtered, _reboot = normalize_win_updates(_fixture("win_updates_searched.json"), details=details)
    return updates


def windows_scan(at: datetime, updates: list[Update]) -> HostScan:
    return HostScan(
        host="win01", status="ok", scanned_at=at, os_family="Windows", pkg_mgr="windows_update", updates=updates
    )


def test_the_normalization_carries_last_deployment_change_time() -> None:
    by_id = {u.update_id: u for u in windows_updates()}
    assert by_id[CU].released_at == RELEASED
    # updates the module did not describe have no date: counted from first seen
    assert by_id["89e11227-761b-4396-bf37-37a2b641fa84"].released_at is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [(20210511, "must be an ISO 8601 time"), ("last tuesday", "is not an ISO 8601 time")],
)
def test_a_bad_release_date_names_the_field(value: object, problem: str) -> None:
    details = _fixture("patch_win_update_info.json")["patchctl_win_info"]
    details["updates"][CU]["last_deployment_change_time"] = value
    with pytest.raises(ScanResultError, match=f"updates.{CU}.last_deployment_change_time' {problem}"):
        normalize_win_updates(_fixture("win_updates_searched.json"), details=details)


def test_approve_after_days_counts_from_the_release_when_the_source_dates_it(db_url: str) -> None:
    app = Update("chocolatey", "7zip", "24.08", "other", installed_version="23.01", origin="7zip")
    with Store.open(db_url) as store:
        run = store.start_run("scan", "inv", None, 1, now=FIRST_SCAN)
        store.record_host_scan(run, windows_scan(FIRST_SCAN, [*windows_updates(), app]))
    policy = parse_policy(POLICY, "policy.yml")
    now = RELEASED + timedelta(days=3)  # 2 days after the first scan
    rows = {r.entry.uid: r for r in list_updates(db_url, policy, now)}
    cu, choco = rows[f"windows:{CU}"], rows["chocolatey:7zip:24.08"]
    assert cu.entry.released_at == RELEASED
    assert (cu.state, cu.reason) == (STATE_APPROVED, "security, 3 days since release have passed")
    assert (cu.as_dict()["age_from"], cu.as_dict()["released_at"]) == ("released", "2021-05-11T00:00:00Z")
    assert (choco.state, choco.reason) == (STATE_WAITING, "other, approved 3 days after first seen")
    assert (choco.as_dict()["age_from"], choco.as_dict()["released_at"]) == ("first_seen", None)


def test_a_re_dated_update_counts_from_its_new_date_and_an_undated_scan_keeps_it(db_url: str) -> None:
    """A revised update is re-released (a later LastDeploymentChangeTime): the latest date the
    source gives wins; a scan without details (no date) keeps the known one."""
    (cu,) = [u for u in windows_updates() if u.update_id == CU]
    revised = replace(cu, released_at=RELEASED + timedelta(days=10))
    with Store.open(db_url) as store:
        run = store.start_run("scan", "inv", None, 1, now=FIRST_SCAN)
        store.record_host_scan(run, windows_scan(FIRST_SCAN, [cu]))
        store.record_host_scan(run, windows_scan(FIRST_SCAN + timedelta(days=1), [revised]))
        store.record_host_scan(run, windows_scan(FIRST_SCAN + timedelta(days=2), [replace(cu, released_at=None)]))
    policy = parse_policy(POLICY, "policy.yml")
    (row,) = list_updates(db_url, policy, RELEASED + timedelta(days=12))
    assert row.entry.released_at == RELEASED + timedelta(days=10)
    assert (row.state, row.waiting_days) == (STATE_WAITING, 1)


def test_patchctl_updates_says_what_the_age_counts_from(db_url: str, tmp_path: Path) -> None:
    app = Update("chocolatey", "7zip", "24.08", "other", installed_version="23.01", origin="7zip")
    (cu,) = [u for u in windows_updates() if u.update_id == CU]
    with Store.open(db_url) as store:
        run = store.start_run("scan", "inv", None, 1, now=FIRST_SCAN)
        store.record_host_scan(run, windows_scan(FIRST_SCAN, [cu, app]))
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY)
    args = ["--db", db_url, "--policy", str(policy)]
    now = ["--now", "2021-05-14T00:00:00Z"]
    out = CliRunner().invoke(cli, [*now, "updates", *args, "--json"])
    assert out.exit_code == 0, out.output
    by_uid = {r["uid"]: r for r in json.loads(out.output)}
    assert by_uid[f"windows:{CU}"]["age_from"] == "released"
    assert by_uid["chocolatey:7zip:24.08"]["age_from"] == "first_seen"
    text = CliRunner().invoke(cli, [*now, "updates", *args], env={"COLUMNS": "250"})
    assert text.exit_code == 0, text.output
    lines = {line.split("│")[2].strip(): line for line in text.output.splitlines() if line.count("│") > 5}
    assert "released 2021-05-11" in lines[f"windows:{CU}"]
    assert "first seen" in lines["chocolatey:7zip:24.08"].split("│")[7]
