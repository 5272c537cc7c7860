"""Contract: an approved Windows update that Windows Update no longer offers (superseded) and that
the host's install history does not hold is ``blocked``, never ``ok``.

The scans are the recorded shapes of tests/data/windows/ (win_updates ``state: searched`` and
patch_win_update_info's result) through the scan normalization into a real store; the later scan
is the same recording with the approved cumulative update KB5003171 taken out of the search (a
newer cumulative update superseded it, as Windows Update does: a superseded update is no longer
returned by the search) and, in the second case, put into the install history. The deploy is
patchctl's own deploy flow: the host has nothing left to install, so no Ansible run starts."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from patchctl.deploy import DeployOptions, deploy
from patchctl.rules.apps import load_catalog
from patchctl.rules.clock import Clock
from patchctl.rules.model import HOST_OK, HostScan
from patchctl.rules.normalize_windows import normalize_windows_scan
from patchctl.rules.policy import parse_policy
from patchctl.store import Store
from patchctl.store.rollouts import Decision, RolloutStore

DATA = Path(__file__).resolve().parents[1] / "data" / "windows"
CU = "74819184-828b-4f97-bb4b-089a0c58e366"  # the 2021-05 cumulative update of the recording
SUCCESSOR = "3d5c7b1a-6f0e-4a2b-9c8d-1e2f3a4b5c6d"  # a made-up 2021-06 cumulative update id
T0 = datetime(2021, 5, 20, tzinfo=UTC)
POLICY = "baselines:\n  windows:\n    classifications: [security]\nwaves:\n  - {name: pilot, hosts: all}\n"


def recorded(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))
    return data["result"]


def record_scan(db_url: str, at: datetime, search: dict[str, Any], details: dict[str, Any]) -> None:
    found = normalize_windows_scan(search, catalog=load_catalog(), details=details, host="ws1")
    scan = HostScan(
        host="ws1",
        status=HOST_OK,
        scanned_at=at,
        os_family=found.os_family,
        distribution=found.distribution,
        os_version=found.os_version,
        pkg_mgr=found.pkg_mgr,
        updates=list(found.updates),
        installed=dict(found.installed),
    )
    with Store.open(db_url) as store:
        run = store.start_run("scan", "inv", None, 1, now=at)
        store.record_host_scan(run, scan)
        store.finish_run(run, "ok", now=at)


def superseded(search: dict[str, Any], details: dict[str, Any], in_history: bool) -> tuple[dict[str, Any], ...]:
    """The recording a month later: KB5003171 superseded by a newer cumulative update (no longer
    searched), in the install history only when ``in_history``."""
    search, details = copy.deepcopy(search), copy.deepcopy(details)
    cu = search["updates"].pop(CU)
    info = details["patchctl_win_info"]
    cu_info = info["updates"].pop(CU)
    title = "2021-06 Cumulative Update for Windows Server 2019 (1809) for x64-based Systems (KB5003646)"
    search["updates"][SUCCESSOR] = {**cu, "id": SUCCESSOR, "title": title, "kb": ["5003646"]}
    info["updates"][SUCCESSOR] = {**cu_info, "id": SUCCESSOR, "title": title, "kb": ["KB5003646"]}
    if in_history:
        info["installed"].append({"id": CU, "revision": cu_info["revision"], "title": cu_info["title"], "date": "x"})
    return search, details


@pytest.mark.parametrize("in_history", [False, True])
def test_an_approved_update_superseded_and_not_installed_is_blocked(tmp_path: Path, in_history: bool) -> None:
    """Not in the history: ``blocked`` with the reason, in the deploy and in the report; in the
    history: ``ok`` and compliant. Breaking it: without windows_unoffered in the deploy's plan the
    host had no work and was recorded ok (the defect; run and failed here)."""
    db_url = f"sqlite:///{tmp_path / 'patchctl.db'}"
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    ws1:\n")
    search, details = recorded("win_updates_searched.json"), recorded("patch_win_update_info.json")
    record_scan(db_url, T0, search, details)
    with Store.open(db_url) as store:
        rs = RolloutStore(store)
        cu = next(e for e in rs.catalog() if e.uid == f"windows:{CU}")
        rs.record_decisions([(cu, Decision("approved", "tester", "contract test", T0), False)])
        policy = parse_policy(POLICY, "p.yml")
        rollout_id = rs.create_rollout(T0, "tester", "p.yml", policy.waves, [cu])
    later = T0 + timedelta(days=30)
    record_scan(db_url, later, *superseded(search, details, in_history))
    clock = Clock(fixed=later + timedelta(hours=1))
    report = deploy(DeployOptions(str(inventory), db_url, clock, policy, rollout_id=rollout_id))
    outcome = report.outcomes["ws1"]
    if in_history:
        assert (outcome.status, report.compliance["ws1"]) == ("ok", "compliant")
        return
    assert outcome.status == "blocked"
    assert outcome.failed == {
        f"windows:{CU}": (
            "approved 2021-05 Cumulative Update for Windows Server 2019 (1809) for x64-based Systems (KB5003171)"
            " is no longer offered by Windows Update and is not in the host's install history (superseded or"
            " hidden): approve its successor"
        )
    }
    assert report.compliance["ws1"] == "blocked"
