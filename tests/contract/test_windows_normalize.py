"""Contract: real result shapes of win_updates, win_chocolatey_facts and win_chocolatey through
patchctl/rules/normalize_windows.py, every field checked. Fixtures: tests/data/windows/ (sources named
in each file)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from patchctl.rules.apps import Catalog, CatalogApp, load_catalog
from patchctl.rules.model import HOST_FAILED, HOST_OK, Update
from patchctl.rules.normalize import ScanResultError
from patchctl.rules.normalize_windows import (
    PKG_MGR_WINDOWS,
    PKG_MGR_WINDOWS_CHOCO,
    apply_outcome,
    classify,
    is_feature_update,
    is_major_app_update,
    normalize_chocolatey,
    normalize_win_updates,
    normalize_windows_scan,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "windows"

CU = "74819184-828b-4f97-bb4b-089a0c58e366"
DEFENDER = "a89e56f1-2002-40c6-a9af-3cf8be801df7"
DEFENDER_FAILED = "5dae3a9d-4f41-445c-83f6-15fb4534e936"
FLASH = "1abb2377-20ef-43ff-aabc-0de4711ab205"
WIN10_FU = "0a1f7c9e-5b7d-4e8f-9a3c-2d6e8f0b1c23"
WIN11_FU = "b2c4d6e8-1a3c-4e5f-8a9b-0c1d2e3f4a5b"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))
    assert data["_source"], f"{name} must name its source"
    return data


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def test_searched_every_field() -> None:
    updates, filtered, reboot = normalize_win_updates(fixture("win_updates_searched.json")["result"])
    assert reboot is False
    by_id = {u.update_id: u for u in updates}
    assert set(by_id) == {
        FLASH,
        "89e11227-761b-4396-bf37-37a2b641fa84",
        CU,
        DEFENDER,
        "d4919b6d-584d-436f-b877-dc3fc352a774",
        WIN10_FU,
        WIN11_FU,
    }
    assert by_id[CU] == Update(
        source="windows",
        name="2021-05 Cumulative Update for Windows Server 2019 (1809) for x64-based Systems (KB5003171)",
        version="unknown",  # win_updates gives no revision; patch_win_update_info does
        classification="security",
        severity=None,
        kbs=("KB5003171",),
        title="2021-05 Cumulative Update for Windows Server 2019 (1809) for x64-based Systems (KB5003171)",
        origin=None,
        major=False,
        reboot_hint=True,
        update_id=CU,
    )
    assert by_id[CU].uid == f"windows:{CU}"
    expected = {
        FLASH: ("security", "Windows Server 2019", False, True),
        "89e11227-761b-4396-bf37-37a2b641fa84": ("bugfix", "Windows Server 2019", False, True),
        DEFENDER: ("definition", "Microsoft Defender Antivirus", False, False),
        "d4919b6d-584d-436f-b877-dc3fc352a774": ("rollup", "Windows Server 2016", False, True),
        WIN10_FU: ("feature", None, True, True),
        WIN11_FU: ("other", "Windows 11", True, True),
    }
    for update_id, (cls, origin, major, reboot_hint) in expected.items():
        u = by_id[update_id]
        assert (u.classification, u.origin, u.major, u.reboot_hint) == (cls, origin, major, reboot_hint), update_id
        assert u.source == "windows" and u.name == u.title
    assert by_id[DEFENDER].kbs == ("KB2267602",)
    assert by_id[WIN11_FU].kbs == ()  # win_updates returns [""] for an update without a KB
    assert [(f.update_id, f.reasons, f.kbs) for f in filtered] == [
        ("f26a0046-1e1a-4305-8743-19c92c3095a5", ("hidden",), ("KB4577586",))
    ]


def test_details_enrich(catalog: Catalog) -> None:
    scan = normalize_windows_scan(
        fixture("win_updates_searched.json")["result"],
        catalog=catalog,
        details=fixture("patch_win_update_info.json")["result"],
        host="ws1",
    )
    by_id = {u.update_id: u for u in scan.updates}
    cu = by_id[CU]
    assert (cu.version, cu.severity, cu.cves, cu.reboot_hint) == (
        "1",
        "Critical",
        ("CVE-2021-31166", "CVE-2021-31194"),
        True,
    )
    defender = by_id[DEFENDER]
    assert (defender.version, defender.severity, defender.reboot_hint) == ("200", None, False)
    assert by_id[FLASH].version == "unknown"  # no details for it
    assert scan.os_family == "Windows"
    assert scan.distribution == "Microsoft Windows Server 2019 Standard"
    assert scan.os_version == "10.0.17763"
    assert scan.pkg_mgr == PKG_MGR_WINDOWS
    assert scan.reboot_required is True  # pending file rename, though win_updates says false
    assert scan.installed == {"Security Update for Windows Server 2019 for x64-based Systems (KB4535680)": "200"}
    assert scan.details_scanned and not scan.chocolatey_scanned


def test_search_failure_raises() -> None:
    with pytest.raises(ScanResultError, match="WU_E_INVALID_CRITERIA"):
        normalize_win_updates(fixture("win_updates_search_failed.json")["result"], host="ws1")


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: r["updates"][CU].pop("title"), f"updates.{CU}.title"),
        (lambda r: r["updates"][CU].update(kb="5003171"), f"updates.{CU}.kb"),
        (lambda r: r["updates"][CU].update(categories=None), f"updates.{CU}.categories"),
        (lambda r: r["updates"][CU].update(id=FLASH), f"updates.{CU}.id"),
        (lambda r: r.update(updates=[]), "updates"),
        (lambda r: r.update(reboot_required="yes"), "reboot_required"),
    ],
)
def test_bad_shapes_name_the_field(mutate: Any, field: str) -> None:
    result = copy.deepcopy(fixture("win_updates_searched.json")["result"])
    mutate(result)
    with pytest.raises(ScanResultError) as exc:
        normalize_win_updates(result, host="ws1")
    assert f"'{field}'" in exc.value.message and "ws1" in exc.value.message


def test_chocolatey_only_catalogued(catalog: Catalog) -> None:
    updates, installed, unsupported, pinned = normalize_chocolatey(
        fixture("win_chocolatey_facts.json")["result"], catalog
    )
    by_name = {u.name: u for u in updates}
    # vscode, notepadplusplus and chocolatey itself are not catalogued: never reported
    assert set(by_name) == {"7zip", "7zip.install", "firefox", "googlechrome", "quicktime"}
    assert by_name["7zip"] == Update(
        source="chocolatey",
        name="7zip",
        version="23.1.0",
        installed_version="22.1.0",
        classification="other",
        title="7-Zip",
        origin="7zip",
        major=True,
    )
    assert by_name["7zip"].uid == "chocolatey:7zip:23.1.0"
    # Chrome 119 -> 120 is a new leading number, not a major update: its version_scheme is rolling
    assert (by_name["googlechrome"].major, by_name["googlechrome"].classification) == (False, "security")
    assert (by_name["firefox"].major, by_name["firefox"].version) == (False, "121.0.1")
    quicktime = by_name["quicktime"]
    assert (quicktime.version, quicktime.installed_version, quicktime.origin) == ("unsupported", "7.7.9", "quicktime")
    assert quicktime.title is not None and "unsupported" in quicktime.title and "end of life" in quicktime.title
    assert [(a.app_id, a.package, a.installed_version) for a in unsupported] == [("quicktime", "quicktime", "7.7.9")]
    assert pinned == ("vlc",)
    assert installed == {
        "7zip": "22.1.0",
        "7zip.install": "22.1.0",
        "firefox": "121.0",
        "googlechrome": "120.0.6099.130",
        "quicktime": "7.7.9",
        "vlc": "3.0.18",
    }


def test_chocolatey_bad_shape(catalog: Catalog) -> None:
    result = copy.deepcopy(fixture("win_chocolatey_facts.json")["result"])
    del result["ansible_facts"]["ansible_chocolatey"]["outdated"][0]["available_version"]
    with pytest.raises(ScanResultError, match=r"outdated\[0\]\.available_version"):
        normalize_chocolatey(result, catalog)


def test_one_scan_combines_both(catalog: Catalog) -> None:
    scan = normalize_windows_scan(
        fixture("win_updates_searched.json")["result"],
        catalog=catalog,
        chocolatey=fixture("win_chocolatey_facts.json")["result"],
    )
    assert scan.pkg_mgr == PKG_MGR_WINDOWS_CHOCO
    assert {u.source for u in scan.updates} == {"windows", "chocolatey"}
    assert len(scan.updates) == 7 + 5
    assert scan.installed["googlechrome"] == "120.0.6099.130"
    assert scan.distribution is None and scan.reboot_required is False


def test_classification_rules() -> None:
    assert classify(["Critical Updates", "Windows Server 2012 R2"]) == "critical"
    assert classify(["Updates", "Security Updates"]) == "security"
    assert classify(["Drivers"]) == "driver"
    assert classify(["Feature Packs"]) == "feature"
    assert classify(["Service Packs"]) == "rollup"
    assert classify(["Tools"]) == "other"
    assert classify(["Windows 10"]) == "other"
    assert is_feature_update(["Upgrades"], "Windows 11, version 24H2")
    assert is_feature_update(["Windows 10"], "Feature update to Windows 10, version 22H2")
    assert is_feature_update([], "Windows 11, version 23H2")
    cumulative = "2024-01 Cumulative Update for Windows 11 Version 23H2 (KB5034123)"
    assert not is_feature_update(["Security Updates"], cumulative)
    assert is_major_app_update("120.0.6099.130", "121.0.6167.85")
    assert not is_major_app_update("3.0.18", "3.0.20")
    assert not is_major_app_update("1.2", "latest-build")


def test_apply_outcome_installed_failed_filtered() -> None:
    approved = [
        {"uid": f"windows:{CU}", "source": "windows", "name": "CU", "version": "1", "update_id": CU},
        {
            "uid": f"windows:{DEFENDER_FAILED}",
            "source": "windows",
            "name": "Def",
            "version": "200",
            "update_id": DEFENDER_FAILED,
        },
        {"uid": f"windows:{FLASH}", "source": "windows", "name": "Flash", "version": "200", "update_id": FLASH},
        {
            "uid": "windows:00000000-0000-0000-0000-000000000001",
            "source": "windows",
            "name": "Gone",
            "version": "1",
            "update_id": "00000000-0000-0000-0000-000000000001",
        },
        {"uid": "chocolatey:7zip:23.1.0", "source": "chocolatey", "name": "7zip", "version": "23.1.0"},
        {
            "uid": "chocolatey:googlechrome:121.0.6167.85",
            "source": "chocolatey",
            "name": "googlechrome",
            "version": "121.0.6167.85",
        },
        {"uid": "chocolatey:firefox:121.0.1", "source": "chocolatey", "name": "firefox", "version": "121.0.1"},
        {"uid": "apt:curl:1", "source": "apt", "name": "curl", "version": "1"},
    ]
    outcome = apply_outcome(
        "ws1",
        approved,
        fixture("win_updates_installed_failed.json")["result"],
        fixture("win_chocolatey_items.json")["results"],
    )
    assert outcome.host == "ws1"
    assert outcome.status == HOST_FAILED
    assert outcome.installed == [f"windows:{CU}", "chocolatey:7zip:23.1.0"]
    assert outcome.failed == {
        f"windows:{DEFENDER_FAILED}": "install failed: Unknown WUA HRESULT 2147944003 (UNKNOWN 0x80070643)",
        f"windows:{FLASH}": "filtered by win_updates (accept_list)",
        "windows:00000000-0000-0000-0000-000000000001": (
            "not offered by Windows Update on this host (installed, superseded or hidden)"
        ),
        "chocolatey:googlechrome:121.0.6167.85": "install failed: Error updating package(s) 'googlechrome'",
        "chocolatey:firefox:121.0.1": "win_chocolatey did not run",
    }
    assert outcome.reboot_required is True
    assert outcome.error is None  # apt entries are another role's; nothing unapproved was installed


def test_apply_outcome_flags_unapproved_install() -> None:
    approved = [{"uid": f"windows:{CU}", "source": "windows", "name": "CU", "version": "1", "update_id": CU}]
    outcome = apply_outcome("ws1", approved, fixture("win_updates_installed_failed.json")["result"])
    assert outcome.installed == [f"windows:{CU}"]
    assert outcome.failed == {}
    assert outcome.status == HOST_FAILED
    assert outcome.error == "Failed to install all updates - see updates for more information"
    result = copy.deepcopy(fixture("win_updates_installed_failed.json")["result"])
    result["updates"][DEFENDER_FAILED].update(installed=True)
    del result["updates"][DEFENDER_FAILED]["failure_hresult_code"]
    result.update(failed=False)
    del result["msg"]  # a run that did not fail has no msg (win_updates sets one only on failure)
    outcome = apply_outcome("ws1", approved, result)
    assert outcome.error == f"installed updates that were not approved: {DEFENDER_FAILED}"
    assert outcome.status == HOST_FAILED


def test_apply_outcome_all_ok() -> None:
    approved = [{"uid": f"windows:{CU}", "source": "windows", "name": "CU", "version": "1", "update_id": CU}]
    result = copy.deepcopy(fixture("win_updates_installed_failed.json")["result"])
    del result["updates"][DEFENDER_FAILED]
    result.update(failed=False, failed_update_count=0, found_update_count=1)
    del result["msg"]
    outcome = apply_outcome("ws1", approved, result)
    assert (outcome.status, outcome.installed, outcome.failed, outcome.error) == (
        HOST_OK,
        [f"windows:{CU}"],
        {},
        None,
    )


def test_catalog_ships_the_required_apps(catalog: Catalog) -> None:
    names = {app.name for app in catalog.apps}
    for wanted in (
        "7-Zip",
        "Adobe Acrobat Reader",
        "Adobe AIR",
        "Apple iTunes",
        "Apple QuickTime",
        "CCleaner",
        "Malwarebytes",
        "Google Chrome",
        "VLC media player",
        "Mozilla Firefox",
    ):
        assert wanted in names
    assert any(app.name.startswith("Java runtime") for app in catalog.apps)
    quicktime = catalog.get("quicktime")
    assert quicktime is not None and quicktime.supported is False and quicktime.reason
    assert all(app.supported for app in catalog.apps if app.id != "quicktime")
    assert catalog.by_package("7ZIP.install") == catalog.get("7zip")


def test_catalog_user_extension(tmp_path: Path) -> None:
    extra = tmp_path / "apps.yml"
    extra.write_text(
        "---\npatchctl_app_catalog:\n"
        "  - {id: notepadplusplus, name: Notepad++, packages: [notepadplusplus]}\n"
        "  - {id: vlc, name: VLC, packages: [vlc], supported: false, reason: banned here}\n",
        encoding="utf-8",
    )
    cat = load_catalog(extra)
    assert cat.get("notepadplusplus") == CatalogApp("notepadplusplus", "Notepad++", ("notepadplusplus",))
    vlc = cat.get("vlc")
    assert vlc is not None and not vlc.supported
    assert cat.get("7zip") is not None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("---\nother: 1\n", "no top-level key patchctl_app_catalog"),
        ("---\npatchctl_app_catalog:\n  - {id: x, name: X, packages: []}\n", "packages must be a non-empty list"),
        ("---\npatchctl_app_catalog:\n  - {id: x, name: X, packages: [x], supported: false}\n", "needs a reason"),
        (
            "---\npatchctl_app_catalog:\n  - {id: x, name: X, packages: [x], classification: urgent}\n",
            "classification must be one of",
        ),
        ("---\npatchctl_app_catalog:\n  - {id: x, name: X, packages: [7zip]}\n", "belongs to both"),
        (
            "---\npatchctl_app_catalog:\n  - {id: x, name: X, packages: [x], registry: '^X('}\n",
            "registry must be a list of regular expressions",
        ),
        (
            "---\npatchctl_app_catalog:\n  - {id: x, name: X, packages: [x], registry: ['^X(']}\n",
            "is not a regular expression",
        ),
        (
            "---\npatchctl_app_catalog:\n  - {id: x, name: X, packages: [x], version_scheme: calver}\n",
            "version_scheme must be one of semantic, rolling, year, java",
        ),
        (
            "---\npatchctl_app_catalog:\n  - {id: x, name: X, packages: [x], take_over: yes}\n",
            "take_over must be one of safe, unsafe",
        ),
        ("---\npatchctl_app_catalog: [\n", "not valid YAML"),
    ],
)
def test_catalog_rejects(tmp_path: Path, text: str, message: str) -> None:
    from patchctl.errors import ConfigError

    bad = tmp_path / "apps.yml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as exc:
        load_catalog(bad)
    assert str(bad) in exc.value.message or "belongs to both" in exc.value.message


COLLECTION = Path(__file__).resolve().parents[2] / ".collections" / "ansible_collections"


def _choco_item(name: str, version: str, **result: Any) -> dict[str, Any]:
    """A win_chocolatey loop item as the role registers it (``failed_when: false``)."""
    return {
        "changed": False,
        **result,
        "failed": False,
        "failed_when_result": False,
        "item": {"key": name, "value": version},
        "ansible_loop_var": "item",
    }


def _choco_entry(name: str, version: str) -> dict[str, Any]:
    return {"uid": f"chocolatey:{name}:{version}", "source": "chocolatey", "name": name, "version": version}


def _role_failed_apps(items: list[dict[str, Any]]) -> list[str]:
    """The packages that roles/patch_apply_windows/tasks/check.yml counts failed, templated by
    Ansible from the role's own files (its vars/main.yml, the check task's vars)."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar

    loader = DataLoader()
    role = Path(__file__).resolve().parents[2] / "roles" / "patch_apply_windows"
    task = loader.load_from_file(str(role / "tasks" / "check.yml"), trusted_as_template=True)[0]
    variables = dict(loader.load_from_file(str(role / "vars" / "main.yml"), trusted_as_template=True))
    variables["__patch_apply_windows_choco"] = {"results": items}
    failed = Templar(loader=loader, variables=variables).template(task["vars"]["__failed_apps"])
    return sorted(str(name) for name in failed)


def test_chocolatey_exit_codes_follow_the_collection() -> None:
    """An item without ``rc`` (an unhandled module exception, ``failed: false`` under the role's
    ``failed_when: false``) failed; 1605, 1614, 1641 and 3010 are success as chocolatey.chocolatey
    1.5.3's SuccessExitCodes, 1641 and 3010 with a reboot required; patchctl and the role's check
    agree item by item. Breaking it: the old rule (rc in 0, 3010, 1641 or missing) counted the
    item without rc installed and 1605/1614 failed; the role's old list [0, 1641, 3010] failed
    1605 and 1614."""
    unhandled = 'Unhandled exception while executing module: Exception calling "Invoke" with "0" argument(s)'
    items = [
        _choco_item("7zip", "23.1.0", msg=unhandled),
        _choco_item("vlc", "3.0.20", rc=1605),
        _choco_item("firefox", "121.0.1", rc=1614),
        _choco_item("googlechrome", "121.0.6167.85", rc=1641, changed=True),
        _choco_item("notepadplusplus", "8.6.2", rc=3010, changed=True),
        _choco_item("ccleaner", "6.19", rc=1, msg="Error updating package(s) 'ccleaner'"),
    ]
    approved = [_choco_entry(i["item"]["key"], i["item"]["value"]) for i in items]
    outcome = apply_outcome("ws1", approved, None, items)
    assert outcome.failed == {
        "chocolatey:7zip:23.1.0": f"install failed: {unhandled}",
        "chocolatey:ccleaner:6.19": "install failed: Error updating package(s) 'ccleaner'",
    }
    assert outcome.installed == [
        "chocolatey:vlc:3.0.20",
        "chocolatey:firefox:121.0.1",
        "chocolatey:googlechrome:121.0.6167.85",
        "chocolatey:notepadplusplus:8.6.2",
    ]
    assert outcome.status == HOST_FAILED
    assert _role_failed_apps(items) == ["7zip", "ccleaner"]
    for rc, reboot in ((1605, False), (1614, False), (1641, True), (3010, True), (0, False)):
        one = apply_outcome("ws1", [_choco_entry("vlc", "3.0.20")], None, [_choco_item("vlc", "3.0.20", rc=rc)])
        assert (one.status, one.reboot_required) == (HOST_OK, reboot), rc


def test_chocolatey_success_codes_are_the_pinned_collections() -> None:
    """patchctl's and the role's success codes are the ones the pinned chocolatey.chocolatey
    declares. Breaking it: dropping 1614 from CHOCO_SUCCESS_EXIT_CODES fails here."""
    from patchctl.rules.normalize_windows import CHOCO_SUCCESS_EXIT_CODES

    psm1 = (COLLECTION / "chocolatey" / "chocolatey" / "plugins" / "module_utils" / "Packages.psm1").read_text(
        encoding="utf-8"
    )
    found = re.search(r"^\$script:SuccessExitCodes = \(([\d, ]+)\)", psm1, re.MULTILINE)
    assert found is not None
    declared = {int(code) for code in found.group(1).split(",")}
    assert set(CHOCO_SUCCESS_EXIT_CODES) == declared
    role_vars = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "roles" / "patch_apply_windows" / "vars" / "main.yml").read_text(
            encoding="utf-8"
        )
    )
    assert set(role_vars["__patch_apply_windows_choco_success_rcs"]) == declared
