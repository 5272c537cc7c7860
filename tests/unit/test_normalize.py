"""patchctl.rules.normalize: the scan module's recorded JSON result into the model, and garbage out."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from patchctl.errors import EXIT_HOST_FAILURES, PatchctlError
from patchctl.rules.model import HOST_OK, Update
from patchctl.rules.normalize import (
    LinuxScan,
    ScanResultError,
    host_scan,
    normalize_scan,
    normalize_updates,
    scan_payload,
)

RESULT_PATH = Path(__file__).resolve().parents[1] / "data" / "apt" / "module_result.json"


@pytest.fixture
def result() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(RESULT_PATH.read_text(encoding="utf-8"))
    return loaded


def test_recorded_result(result: dict[str, Any]) -> None:
    scan = normalize_scan(result)
    assert isinstance(scan, LinuxScan)
    assert scan.pkg_mgr == "apt"
    assert (scan.os_family, scan.distribution, scan.os_version, scan.codename) == (
        "Debian",
        "Debian",
        "12",
        "bookworm",
    )
    assert scan.refreshed is False
    assert scan.reboot_required is False
    assert scan.reboot_required_pkgs == ()
    assert scan.installed == {
        "bash": "5.2.15-2+b8",
        "libc6": "2.36-9+deb12u14",
        "openssl": "3.0.19-1~deb12u2",
    }
    assert len(scan.updates) == 132
    curl = next(u for u in scan.updates if u.name == "curl")
    assert curl == Update(
        source="apt",
        name="curl",
        version="7.88.1-10+deb12u15",
        installed_version="7.88.1-10+deb12u14",
        arch="amd64",
        origin="oldstable",
        classification="bugfix",
        major=False,
    )
    assert curl.uid == "apt:curl:7.88.1-10+deb12u15"
    krb5 = next(u for u in scan.updates if u.name == "krb5-locales")
    assert krb5.classification == "security"
    assert krb5.origin == "oldstable,oldstable-security"
    assert {u.source for u in scan.updates} == {"apt"}


def test_payload_json_text_and_updates_only(result: dict[str, Any]) -> None:
    inner = result["patchctl_scan"]
    assert scan_payload(result) is inner
    assert scan_payload(inner) is inner
    assert normalize_scan(inner) == normalize_scan(result)
    assert normalize_scan(json.dumps(result)) == normalize_scan(result)
    assert normalize_scan(json.dumps(result).encode()) == normalize_scan(result)
    assert normalize_updates(result) == normalize_scan(result).updates


def test_host_scan(result: dict[str, Any]) -> None:
    when = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    hs = host_scan("web1", when, result)
    assert hs.host == "web1"
    assert hs.status == HOST_OK
    assert hs.scanned_at == when
    assert (hs.os_family, hs.distribution, hs.os_version, hs.pkg_mgr) == (
        "Debian",
        "Debian",
        "12",
        "apt",
    )
    assert hs.reboot_required is False
    assert len(hs.updates) == 132
    assert hs.installed["bash"] == "5.2.15-2+b8"


def test_optional_fields_default(result: dict[str, Any]) -> None:
    inner = copy.deepcopy(result["patchctl_scan"])
    del inner["installed"], inner["reboot_required_pkgs"]
    for update in inner["updates"]:
        del update["severity"], update["cves"], update["advisory_ids"]
    inner["os"] = {}
    inner["reboot_required"] = True
    scan = normalize_scan(inner)
    assert scan.installed == {}
    assert scan.reboot_required_pkgs == ()
    assert scan.reboot_required is True
    assert scan.os_family is None
    assert scan.updates[0].cves == ()


def test_severity_cves_advisories_kept(result: dict[str, Any]) -> None:
    inner = copy.deepcopy(result["patchctl_scan"])
    inner["updates"][0].update(severity="Important", cves=["CVE-2025-0001"], advisory_ids=["DSA-5900-1"])
    update = normalize_scan(inner).updates[0]
    assert update.severity == "Important"
    assert update.cves == ("CVE-2025-0001",)
    assert update.advisory_ids == ("DSA-5900-1",)


Mutation = Callable[[dict[str, Any]], Any]


def _set(path: list[str | int], value: Any) -> Mutation:
    def mutate(res: dict[str, Any]) -> dict[str, Any]:
        target: Any = res["patchctl_scan"]
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return res

    return mutate


def _delete(path: list[str | int]) -> Mutation:
    def mutate(res: dict[str, Any]) -> dict[str, Any]:
        target: Any = res["patchctl_scan"]
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
        return res

    return mutate


def _duplicate_first_update(res: dict[str, Any]) -> dict[str, Any]:
    res["patchctl_scan"]["updates"].append(copy.deepcopy(res["patchctl_scan"]["updates"][0]))
    return res


GARBAGE: list[tuple[str, Mutation, str]] = [
    ("not an object", lambda res: ["a", "list"], "'patchctl_scan' must be an object, got list"),
    ("no payload", lambda res: {"changed": False}, "'patchctl_scan' is missing"),
    ("payload null", lambda res: {"patchctl_scan": None}, "'patchctl_scan' must be an object, got null"),
    ("not json", lambda res: "<html>502 Bad Gateway</html>", "not JSON"),
    (
        "failed result",
        lambda res: {"failed": True, "msg": "apt-get update failed (rc=100):\nE: x"},
        "the scan failed: apt-get update failed (rc=100): E: x",
    ),
    ("schema 2", _set(["schema"], 2), "'schema' must be 1, got 2"),
    ("schema true", _set(["schema"], True), "'schema' must be 1"),
    ("schema missing", _delete(["schema"]), "'schema' is missing"),
    ("pkg_mgr", _set(["pkg_mgr"], "pacman"), "'pkg_mgr' must be one of apt, dnf, zypper"),
    ("os", _set(["os"], "Debian"), "'os' must be an object, got string"),
    ("os.version", _set(["os", "version"], 12), "'os.version' must be a non-empty string"),
    ("refreshed", _set(["refreshed"], "yes"), "'refreshed' must be true or false, got 'yes'"),
    ("reboot", _delete(["reboot_required"]), "'reboot_required' is missing"),
    ("reboot pkgs", _set(["reboot_required_pkgs"], "libc6"), "'reboot_required_pkgs' must be a list"),
    ("updates", _set(["updates"], {"curl": "1"}), "'updates' must be a list, got object"),
    ("update item", _set(["updates", 3], "curl"), "'updates[3]' must be an object"),
    ("update name", _set(["updates", 0, "name"], ""), "'updates[0].name' must be a non-empty"),
    ("update version", _set(["updates", 5, "version"], 7), "'updates[5].version' must be"),
    ("update no version", _delete(["updates", 5, "version"]), "'updates[5].version' is missing"),
    (
        "classification",
        _set(["updates", 1, "classification"], "urgent"),
        "'updates[1].classification' must be one of security, critical",
    ),
    ("major", _set(["updates", 2, "major"], 1), "'updates[2].major' must be true or false"),
    ("cves", _set(["updates", 2, "cves"], "CVE-1"), "'updates[2].cves' must be a list"),
    ("cve item", _set(["updates", 2, "cves"], [None]), "'updates[2].cves[0]' must be"),
    ("installed", _set(["installed"], ["bash"]), "'installed' must be an object"),
    ("installed version", _set(["installed", "bash"], None), "'installed.bash' must be"),
    ("duplicate", _duplicate_first_update, "'updates[132].name' repeats update apt:appstream:"),
    (
        "long value",
        _set(["pkg_mgr"], "x" * 500 + "\nline two"),
        "got 'xxxxxxxx",
    ),
]


@pytest.mark.parametrize(("mutate", "needle"), [(m, n) for _, m, n in GARBAGE], ids=[i for i, _, _ in GARBAGE])
def test_garbage_raises(result: dict[str, Any], mutate: Mutation, needle: str) -> None:
    bad = mutate(copy.deepcopy(result))
    with pytest.raises(ScanResultError) as info:
        normalize_scan(bad, host="web1")
    err = info.value
    assert isinstance(err, PatchctlError)
    assert err.code == EXIT_HOST_FAILURES == 1
    message = str(err)
    assert "\n" not in message
    assert len(message) < 300
    assert message.startswith("scan result from web1: ")
    assert needle in message


def test_message_without_host(result: dict[str, Any]) -> None:
    result["patchctl_scan"]["schema"] = 9
    with pytest.raises(ScanResultError, match=r"^scan result: field 'schema' must be 1, got 9$"):
        normalize_scan(result)
