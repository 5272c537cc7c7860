"""Contract: a Windows host's scan events through ``patchctl scan``'s flow into a real store.

Only the Ansible run is replaced (no Windows host): the events are the scan role's, in its task
order and shapes — patch_win_update_info with the registry's applications, win_updates, the
``choco search`` loop (its item events and then the task's own with every item under
``results``, as ansible-runner sends them), win_chocolatey_facts last. The run is given the
effective application catalog.

Seen failing: with the win_command events not routed (``CHOCO_SEARCH_ACTIONS`` left out of
``on_windows_event``) the vendor-installed VLC was not recorded; without the catalog in the
run's extra vars the role would have no patterns to search with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from patchctl.ansible import fleet
from patchctl.ansible.runner import HostEvent, RunResult
from patchctl.rules.apps import load_catalog
from patchctl.scan import ScanOptions, run_scan
from patchctl.store import Store
from tests.contract.test_windows_registry_apps import DATA, choco_search, info


def _result(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))["result"]
    return data


def test_a_windows_scan_records_applications_installed_outside_chocolatey(
    tmp_path: Path, patchctl_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all:\n  children:\n    windows:\n      hosts:\n        win01: {patch_role: client}\n")
    catalog = load_catalog()
    win_info = info()
    searched = choco_search(catalog, win_info, {"vlc": "vlc|3.0.20", "googlechrome": "googlechrome|120.0.6099.130"})
    chocolatey = {"ansible_facts": {"ansible_chocolatey": {"packages": [], "outdated": []}}}
    seen_vars: list[dict[str, Any]] = []

    def replayed_run(self: object, playbook: Path, *, on_event: Any, extravars: Any = None, **_: Any) -> RunResult:
        seen_vars.append(dict(extravars or {}))
        on_event(HostEvent("win01", "ok", "Read OS", "patch_win_update_info", win_info))
        searched_wu = _result("win_updates_searched.json")
        on_event(HostEvent("win01", "ok", "Search", "ansible.windows.win_updates", searched_wu))
        for item in searched["results"]:
            status = "skipped" if item.get("skipped") else "ok"
            on_event(HostEvent("win01", status, "Ask", "ansible.windows.win_command", item, item=True))
        on_event(HostEvent("win01", "ok", "Ask", "ansible.windows.win_command", searched))
        on_event(HostEvent("win01", "ok", "List", "chocolatey.chocolatey.win_chocolatey_facts", chocolatey))
        return RunResult(status="successful", rc=0, hosts_seen={"win01"})

    monkeypatch.setattr(fleet.PlaybookRunner, "run", replayed_run)
    db = f"sqlite:///{tmp_path / 'patchctl.db'}"
    summary = run_scan(ScanOptions(inventory=str(inventory), db_url=db))
    assert summary.hosts["win01"].status == "ok", summary.hosts["win01"].error
    assert [a["id"] for a in seen_vars[0]["patchctl_app_catalog"]] == [a.id for a in catalog.apps]
    with Store.open(db) as store:
        rows = {r.uid: r for r in store.missing_updates("win01")}
    vlc = rows["chocolatey:vlc:3.0.20:unmanaged"]
    assert (vlc.installed_version, vlc.version) == ("3.0.18", "3.0.20")
    chrome = rows["chocolatey:googlechrome:120.0.6099.130:unmanaged"]
    assert (chrome.installed_version, chrome.major) == ("119.0.6045.160", False)
    assert "chocolatey:quicktime:unsupported" in rows
    # searched but not offered by this source: no update, not a guess
    assert not any(uid.startswith("chocolatey:7zip:") for uid in rows)


def test_a_broken_user_catalog_stops_the_scan_before_anything_is_recorded(
    tmp_path: Path, patchctl_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen failing with the catalog read after the run was started: the run stayed 'running'."""
    from patchctl.errors import ConfigError

    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all:\n  children:\n    windows:\n      hosts:\n        win01: {}\n")
    bad = tmp_path / "apps.yml"
    bad.write_text("---\npatchctl_app_catalog:\n  - {id: x, name: X, packages: [x], registry: ['^X(']}\n")
    monkeypatch.setenv("PATCHCTL_CATALOG", str(bad))
    db = f"sqlite:///{tmp_path / 'patchctl.db'}"
    with pytest.raises(ConfigError, match="is not a regular expression"):
        run_scan(ScanOptions(inventory=str(inventory), db_url=db))
    assert not (tmp_path / "patchctl.db").exists()
