"""Contract: catalogued applications found in the registry's Uninstall keys, as the scan module
returns them (tests/data/windows/registry_applications.json: every catalogued application, 64-
and 32-bit, per user, two versions side by side), through the scan role's ``choco search`` task
(its loop and condition templated by Ansible from the role's task file) and patchctl's
normalization.

Seen failing: before the registry was read, none of these copies was seen (the host looked
compliant with VLC 3.0.18 and Java 8u381 installed). Broken on purpose since: matching the
DisplayName with ``re.match`` without IGNORECASE, or a pattern without its anchor (``Microsoft
Edge`` matching WebView2), fails the detection test; taking the newest of two side-by-side copies
fails the side-by-side one; treating ``rolling`` like ``semantic`` makes Chrome 119 -> 120 major;
the ``year`` scheme left out makes Adobe Reader outdated at the version it has; the role's
condition without ``ignorecase`` disagrees with the normalization (each seen failing here).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from patchctl.rules.apps import Catalog, load_catalog
from patchctl.rules.model import Update
from patchctl.rules.normalize_windows import (
    app_version_key,
    normalize_registry,
    normalize_windows_scan,
    offered_versions,
    registry_apps,
)
from tests.contract.shapes import ROLES, loop_result, plain

DATA = Path(__file__).resolve().parents[1] / "data" / "windows"


def shapes() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / "registry_applications.json").read_text(encoding="utf-8"))
    assert data["_source"]
    return data


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def info(applications: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    base = json.loads((DATA / "patch_win_update_info.json").read_text(encoding="utf-8"))["result"]
    base["patchctl_win_info"]["applications"] = shapes()["applications"] if applications is None else applications
    return dict(base)


def choco_search(catalog: Catalog, win_info: dict[str, Any], offers: dict[str, str], rc: int = 0) -> dict[str, Any]:
    """The registered result of the role's ``choco search`` loop for this host: the loop and its
    ``when`` templated by Ansible from roles/patch_scan_windows/tasks/main.yml; each item that
    runs answers ``offers[package]`` (what choco prints) with ``rc``, shaped as win_command's
    result under ``changed_when: false`` and ``failed_when: false``."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar

    loader = DataLoader()
    tasks = loader.load_from_file(str(ROLES / "patch_scan_windows/tasks/main.yml"), trusted_as_template=True)
    task = next(t for t in tasks if "ansible.windows.win_command" in t)
    variables = {
        "__patch_scan_windows_info": win_info,
        "patch_scan_windows_catalog": catalog.as_vars(),
        "patch_scan_windows_chocolatey": "auto",
        "patch_scan_windows_choco_source": "",
    }
    items = Templar(loader=loader, variables=variables).template(task["loop"])
    results: list[dict[str, Any]] = []
    for item in plain(items):
        templar = Templar(loader=loader, variables={**variables, "item": item})
        if not all(templar.evaluate_conditional(cond) for cond in task["when"]):
            results.append(
                {"changed": False, "skipped": True, "skip_reason": "Conditional result was False", "item": item}
            )
            continue
        argv = plain(templar.template(task["ansible.windows.win_command"]["argv"]))
        assert argv[1:] == ["search", item["packages"][0], "--exact", "--limit-output"]
        out = offers.get(item["packages"][0], "") if rc == 0 else ""
        results.append(
            {
                "cmd": " ".join(argv),
                "rc": rc,
                "stdout": out + "\r\n" if out else "",
                "stdout_lines": [out] if out else [],
                "stderr": "" if rc == 0 else "Unable to load the service index for source https://feed.example/",
                "changed": False,
                "failed": False,
                "failed_when_result": False,
                "item": item,
                "ansible_loop_var": "item",
            }
        )
    return loop_result(results)


def scan(catalog: Catalog, *, chocolatey: dict[str, Any] | None = None, rc: int = 0, apps: Any = None) -> Any:
    win_info = info(apps)
    searched = choco_search(catalog, win_info, shapes()["choco_offers"], rc)
    updates = json.loads((DATA / "win_updates_searched.json").read_text(encoding="utf-8"))["result"]
    return normalize_windows_scan(
        updates,
        catalog=catalog,
        details=win_info,
        chocolatey=chocolatey
        if chocolatey is not None
        else {"ansible_facts": {"ansible_chocolatey": {"packages": [], "outdated": []}}},
        choco_search=searched,
        host="win01",
    )


def test_every_catalogued_application_is_found_where_it_is_installed(catalog: Catalog) -> None:
    found = registry_apps(info()["patchctl_win_info"], catalog)
    where = {(f.app_id, f.display_name, f.version, f.where) for f in found}
    assert where == {
        ("7zip", "7-Zip 23.01 (x64)", "23.01", "HKLM 64-bit"),
        ("7zip", "7-Zip 19.00", "19.00", "HKLM 32-bit"),
        ("adobereader", "Adobe Acrobat Reader DC", "23.008.20470", "HKLM 32-bit"),
        ("adobeair", "Adobe AIR", "33.1.1.935", "HKLM 32-bit"),
        ("itunes", "iTunes", "12.12.10.1", "HKLM 64-bit"),
        ("quicktime", "QuickTime 7", "7.79.80.95", "HKLM 32-bit"),
        ("ccleaner", "CCleaner", "6.19", "HKLM 64-bit"),
        ("malwarebytes", "Malwarebytes version 4.6.8.311", "4.6.8.311", "HKLM 64-bit"),
        ("java", "Java 8 Update 391 (64-bit)", "8.0.3910.13", "HKLM 64-bit"),
        ("java", "Java 8 Update 381", "8.0.3810.9", "HKLM 32-bit"),
        ("googlechrome", "Google Chrome", "119.0.6045.160", "HKCU (per user)"),
        ("microsoft-edge", "Microsoft Edge", "120.0.2210.91", "HKLM 32-bit"),
        ("vlc", "VLC media player", "3.0.18", "HKLM 64-bit"),
        ("firefox", "Mozilla Firefox (x64 en-US)", "121.0", "HKLM 64-bit"),
    }
    # every catalogued application with registry patterns has a shape here
    assert {a.id for a in catalog.apps if a.registry} == {f.app_id for f in found}
    # names are matched case-insensitively (an installer that writes "GOOGLE CHROME")
    shouting = [{**shapes()["applications"][12], "display_name": "GOOGLE CHROME"}]
    assert [f.app_id for f in registry_apps(info(shouting)["patchctl_win_info"], catalog)] == ["googlechrome"]


def test_unmanaged_applications_are_updates_with_both_versions(catalog: Catalog) -> None:
    found = scan(catalog)
    apps = {u.name: u for u in found.updates if u.source == "chocolatey"}
    assert set(apps) == {
        "7zip",
        "adobeair",
        "itunes",
        "quicktime",
        "ccleaner",
        "malwarebytes",
        "jre8",
        "googlechrome",
        "vlc",
        "firefox",
    }  # not Adobe Reader and Edge: the source offers the version they have
    assert apps["vlc"] == Update(
        source="chocolatey",
        name="vlc",
        version="3.0.20",
        installed_version="3.0.18",
        classification="other",
        title="VLC media player: unmanaged (installed outside Chocolatey: "
        "3.0.18 (HKLM 64-bit, C:\\Program Files\\VideoLAN\\VLC)); the source offers 3.0.20",
        origin="vlc",
        unmanaged=True,
    )
    assert apps["vlc"].uid == "chocolatey:vlc:3.0.20:unmanaged"
    # two copies side by side: the oldest is what the host is exposed by
    assert (apps["7zip"].installed_version, apps["7zip"].version, apps["7zip"].major) == ("19.00", "23.1.0", True)
    assert (
        apps["7zip"].title is not None
        and "19.00 (HKLM 32-bit, C:\\Program Files (x86)\\7-Zip\\); 23.01 (HKLM 64-bit" in apps["7zip"].title
    )
    assert (apps["jre8"].installed_version, apps["jre8"].version, apps["jre8"].major) == (
        "8.0.3810.9",
        "8.0.401",
        False,
    )
    # per user, and rolling: 119 -> 120 is no major update
    assert (apps["googlechrome"].installed_version, apps["googlechrome"].major) == ("119.0.6045.160", False)
    assert apps["googlechrome"].classification == "security"
    assert (apps["adobeair"].major, apps["firefox"].major) == (True, False)
    # end of life however installed: unsupported, not an update to a version
    assert (apps["quicktime"].version, apps["quicktime"].installed_version) == ("unsupported", "7.79.80.95")
    assert [(u.app_id, u.installed_version) for u in found.unsupported] == [("quicktime", "7.79.80.95")]
    findings = {u.app_id: u for u in found.unmanaged}
    assert (findings["adobereader"].offered, findings["adobereader"].outdated) == ("2023.008.20470", False)
    assert (findings["microsoft-edge"].offered, findings["microsoft-edge"].outdated) == ("120.0.2210.91", False)
    assert (findings["7zip"].installed_version, findings["7zip"].outdated) == ("19.00", True)


def test_a_chocolatey_managed_application_is_left_to_chocolatey(catalog: Catalog) -> None:
    choco = {
        "ansible_facts": {
            "ansible_chocolatey": {
                "packages": [{"package": "firefox", "version": "121.0"}, {"package": "quicktime", "version": "7.7.9"}],
                "outdated": [],
            }
        }
    }
    found = scan(catalog, chocolatey=choco)
    names = {u.name for u in found.updates if u.unmanaged}
    assert "firefox" not in names and "vlc" in names
    assert "firefox" not in {u.app_id for u in found.unmanaged}
    # QuickTime is reported once, unsupported, though both Chocolatey and the registry show it
    assert [u.uid for u in found.updates if u.name == "quicktime"] == ["chocolatey:quicktime:unsupported"]
    assert [u.app_id for u in found.unsupported] == ["quicktime"]


def test_without_chocolatey_or_with_a_failing_search_the_copies_are_named_without_an_update(catalog: Catalog) -> None:
    win_info = info()
    found = registry_apps(win_info["patchctl_win_info"], catalog)
    updates, unmanaged, unsupported = normalize_registry(found, catalog, offered=None)
    assert [u.uid for u in updates] == ["chocolatey:quicktime:unsupported"]  # QuickTime all the same
    assert {u.note for u in unmanaged} == {"Chocolatey was not asked (not on the host, or not scanned)"}
    assert [u.app_id for u in unsupported] == ["quicktime"]

    failing = scan(catalog, rc=1)
    assert [u.uid for u in failing.updates if u.source == "chocolatey"] == ["chocolatey:quicktime:unsupported"]
    notes = {u.app_id: u.note for u in failing.unmanaged}
    assert notes["vlc"] == (
        "choco search vlc exited 1: Unable to load the service index for source https://feed.example/"
    )


def test_the_roles_search_condition_is_the_normalizations_match(catalog: Catalog) -> None:
    """The role asks the source only about applications the registry shows: exactly those the
    normalization matches (one package each), for every shape and for none."""
    searched = choco_search(catalog, info(), {})
    asked = {r["item"]["id"] for r in searched["results"] if not r.get("skipped")}
    assert asked == {f.app_id for f in registry_apps(info()["patchctl_win_info"], catalog)}
    shouting = [{**shapes()["applications"][12], "display_name": "GOOGLE CHROME"}]
    loud = choco_search(catalog, info(shouting), {})
    assert [r["item"]["id"] for r in loud["results"] if not r.get("skipped")] == ["googlechrome"]
    nothing = choco_search(catalog, info([]), {})
    assert all(r.get("skipped") for r in nothing["results"])
    assert offered_versions(nothing) == {}


@pytest.mark.parametrize(
    ("version", "scheme", "key"),
    [
        ("23.01", "semantic", (23, 1)),
        ("23.1.0", "semantic", (23, 1)),
        ("24.002.20759", "year", (2024, 2, 20759)),
        ("2024.002.20759", "year", (2024, 2, 20759)),
        ("8.0.3910.13", "java", (8, 0, 391)),
        ("8.0.391", "java", (8, 0, 391)),
        ("unknown", "semantic", None),
    ],
)
def test_version_schemes(version: str, scheme: str, key: tuple[int, ...] | None) -> None:
    assert app_version_key(version, scheme) == key


def test_bad_registry_shapes_name_the_field(catalog: Catalog) -> None:
    from patchctl.rules.normalize import ScanResultError

    bad = copy.deepcopy(shapes()["applications"][:1])
    bad[0]["hive"] = "HKU"
    with pytest.raises(ScanResultError, match=r"applications\[0\]\.hive"):
        registry_apps(info(bad)["patchctl_win_info"], catalog)
    with pytest.raises(ScanResultError, match="applications' must be a list"):
        registry_apps({"applications": {"x": 1}}, catalog)


def _shape_of(app_id: str, catalog: Catalog) -> dict[str, Any]:
    app = catalog.get(app_id)
    assert app is not None
    return next(dict(s) for s in shapes()["applications"] if app.matches(s["display_name"]))


@pytest.mark.parametrize("app_id", [a.id for a in load_catalog().apps if a.registry])
@pytest.mark.parametrize(
    ("hive", "view", "where"),
    [("HKLM", "64", "HKLM 64-bit"), ("HKLM", "32", "HKLM 32-bit"), ("HKCU", "user", "HKCU (per user)")],
)
def test_each_application_in_each_hive_and_side_by_side(
    catalog: Catalog, app_id: str, hive: str, view: str, where: str
) -> None:
    """Every catalogued application's shape, put in each hive, is found there; two copies of it
    side by side (an older one beside it in the same hive) count by the older copy."""
    shape = {**_shape_of(app_id, catalog), "hive": hive, "view": view}
    (found,) = registry_apps({"applications": [shape]}, catalog)
    assert (found.app_id, found.where) == (app_id, where)
    app = catalog.get(app_id)
    assert app is not None
    older = {**shape, "display_version": "1.0", "key": "older copy"}
    both = registry_apps({"applications": [shape, older]}, catalog)
    offered = {app.choco_package.lower(): shape["display_version"]}
    updates, unmanaged, unsupported = normalize_registry(both, catalog, offered=offered)
    if not app.supported:
        assert [u.installed_version for u in unsupported] == ["1.0"]
        return
    (copy_of,) = unmanaged
    assert (copy_of.installed_version, copy_of.outdated) == ("1.0", True)
    (update,) = updates
    assert (update.uid, update.installed_version) == (
        f"chocolatey:{app.choco_package}:{shape['display_version']}:unmanaged",
        "1.0",
    )


def test_a_copy_without_a_version_does_not_hide_an_older_one(catalog: Catalog) -> None:
    """Seen failing with unknown versions sorted first: the VLC 3.0.18 beside a copy without a
    DisplayVersion was no update."""
    vlc = _shape_of("vlc", catalog)
    both = registry_apps({"applications": [{**vlc, "display_version": None, "key": "x"}, vlc]}, catalog)
    updates, unmanaged, _ = normalize_registry(both, catalog, offered={"vlc": "3.0.20"})
    assert [u.uid for u in updates] == ["chocolatey:vlc:3.0.20:unmanaged"]
    assert [c.version for c in unmanaged[0].copies] == ["3.0.18", None]


def test_a_hive_that_is_not_a_word_is_a_field_error(catalog: Catalog) -> None:
    from patchctl.rules.normalize import ScanResultError

    vlc = {**_shape_of("vlc", catalog), "hive": ["HKLM"]}
    with pytest.raises(ScanResultError, match=r"applications\[0\]\.hive' must be HKLM"):
        registry_apps({"applications": [vlc]}, catalog)
