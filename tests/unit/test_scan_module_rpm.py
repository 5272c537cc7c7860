"""The dnf and zypper backends of patch_scan_linux: their parsers on output recorded from Debian's
dnf 4.14 and zypper 1.14 on the lab's RPM hosts (tests/data/dnf, tests/data/zypper), and main()
end to end with the commands replaced by that recorded output."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from patchctl.rules.normalize import normalize_scan

from .test_scan_module import psl

ROOT = Path(__file__).resolve().parents[2]
DNF = ROOT / "tests" / "data" / "dnf"
ZYPPER = ROOT / "tests" / "data" / "zypper"

LAB_INSTALLED = (
    "patchctl-demo-app\tnoarch\t0\t1.0\t1\n"
    "patchctl-demo-db\tnoarch\t0\t1.4\t1\n"
    "patchctl-demo-kernel\tnoarch\t0\t1.0\t1\n"
    "patchctl-demo-ssl\tnoarch\t0\t1.0\t1\n"
)

# What the lab repository's advisories say (patchctl/lab/rpm.py), as both managers report them.
EXPECTED = {
    "patchctl-demo-app": ("1.0-1", "1.1-1", "bugfix", False, None, [], ["PLAB-2024-0102"]),
    "patchctl-demo-db": ("1.4-1", "2.0-1", "enhancement", True, None, [], ["PLAB-2024-0103"]),
    "patchctl-demo-kernel": ("1.0-1", "1.1-1", "security", False, "moderate", ["CVE-2024-90104"], ["PLAB-2024-0104"]),
    "patchctl-demo-ssl": ("1.0-1", "1.0-2", "security", False, "important", ["CVE-2024-90101"], ["PLAB-2024-0101"]),
}


def dnf(name: str) -> str:
    return (DNF / name).read_text(encoding="utf-8")


def zyp(name: str) -> str:
    return (ZYPPER / name).read_text(encoding="utf-8")


def summary(updates: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    return {
        u["name"]: (
            u["installed_version"],
            u["version"],
            u["classification"],
            u["major"],
            u["severity"],
            u["cves"],
            u["advisory_ids"],
        )
        for u in updates
    }


# ---- pure parsers on recorded output -----------------------------------------------------------


def test_dnf_check_update_recorded() -> None:
    rows = psl.parse_dnf_check_update(dnf("check_update.stdout"))
    assert rows == [
        ("patchctl-demo-app", "noarch", "1.1-1", "patchctl-lab"),
        ("patchctl-demo-db", "noarch", "2.0-1", "patchctl-lab"),
        ("patchctl-demo-kernel", "noarch", "1.1-1", "patchctl-lab"),
        ("patchctl-demo-ssl", "noarch", "1.0-2", "patchctl-lab"),
    ]
    after = psl.parse_dnf_check_update(dnf("check_update_after_kernel.stdout"))
    assert [r[0] for r in after] == ["patchctl-demo-app", "patchctl-demo-db", "patchctl-demo-ssl"]


def test_dnf_check_update_wrapped_name_and_obsoletes() -> None:
    # dnf puts a name too long for its column on a line of its own; obsoletes are not updates.
    text = (
        "\n"
        "a-very-long-package-name-that-does-not-fit-in-the-column.x86_64\n"
        "                                   1:2.0-3.el9            baseos\n"
        "bash.x86_64                        5.1.8-9.el9            baseos\n"
        "Obsoleting Packages\n"
        "grub2-tools.x86_64                 1:2.06-80.el9          baseos\n"
        "    grub2-tools.x86_64             1:2.06-77.el9          @baseos\n"
    )
    assert psl.parse_dnf_check_update(text) == [
        ("a-very-long-package-name-that-does-not-fit-in-the-column", "x86_64", "1:2.0-3.el9", "baseos"),
        ("bash", "x86_64", "5.1.8-9.el9", "baseos"),
    ]


@pytest.mark.parametrize("text", ["bash.x86_64 5.1 baseos extra\n", "bash.x86_64 5.1\n", "nodot 1.0-1 repo\n"])
def test_dnf_check_update_garbage_raises(text: str) -> None:
    with pytest.raises(ValueError, match="dnf check-update"):
        psl.parse_dnf_check_update(text)


def test_dnf_updateinfo_recorded() -> None:
    listed = psl.parse_dnf_updateinfo_list(dnf("updateinfo_list.stdout"))
    assert listed == {
        "patchctl-demo-app-1.1-1.noarch": ["PLAB-2024-0102"],
        "patchctl-demo-db-2.0-1.noarch": ["PLAB-2024-0103"],
        "patchctl-demo-kernel-1.1-1.noarch": ["PLAB-2024-0104"],
        "patchctl-demo-ssl-1.0-2.noarch": ["PLAB-2024-0101"],
    }
    info = psl.parse_dnf_updateinfo_info(dnf("updateinfo_info.stdout"))
    assert info["PLAB-2024-0101"] == {
        "id": "PLAB-2024-0101",
        "type": "security",
        "severity": "Important",
        "cves": ["CVE-2024-90101"],
    }
    assert info["PLAB-2024-0103"]["type"] == "enhancement"
    assert info["PLAB-2024-0103"]["severity"] is None


def test_dnf_updateinfo_info_several_cves() -> None:
    # dnf prints further values of a field on lines that start with ':'
    text = (
        "  Update ID: RHSA-2024:0001\n"
        "       Type: security\n"
        "       CVEs: CVE-2024-0001\n"
        "           : CVE-2024-0002\n"
        "Description: line one\n"
        "           : CVE-2099-9999 is not a CVE of this advisory\n"
        "   Severity: Critical\n"
    )
    info = psl.parse_dnf_updateinfo_info(text)
    assert info["RHSA-2024:0001"]["cves"] == ["CVE-2024-0001", "CVE-2024-0002"]
    assert info["RHSA-2024:0001"]["severity"] == "Critical"


def test_dnf_updates_recorded() -> None:
    updates = psl.dnf_updates(
        dnf("check_update.stdout"),
        psl.parse_rpm_query(LAB_INSTALLED),
        dnf("updateinfo_list.stdout"),
        dnf("updateinfo_info.stdout"),
    )
    assert summary(updates) == EXPECTED
    assert {u["origin"] for u in updates} == {"patchctl-lab"}


def test_dnf_update_of_uninstalled_package_raises() -> None:
    with pytest.raises(ValueError, match="rpm has no such package installed"):
        psl.dnf_updates(dnf("check_update.stdout"), {}, "", "")


def test_rpm_query_recorded() -> None:
    # rpm -q prints "package nosuch is not installed" for a missing name
    assert psl.parse_rpm_query(dnf("rpm_query.stdout")) == {
        "patchctl-demo-app": [("noarch", "1.0-1")],
        "patchctl-demo-ssl": [("noarch", "1.0-1")],
    }
    assert psl.parse_rpm_query("bash\tx86_64\t1\t5.1\t9.el9\n") == {"bash": [("x86_64", "1:5.1-9.el9")]}


def test_dnf_needs_restarting_recorded() -> None:
    assert psl.parse_dnf_needs_restarting(1, dnf("needs_restarting_reboot.stdout")) == (
        True,
        ["patchctl-demo-kernel"],
    )
    assert psl.parse_dnf_needs_restarting(0, dnf("needs_restarting_none.stdout")) == (False, [])
    # exit 1 without that text: the plugin is missing ("No such command"), not a reboot
    assert psl.parse_dnf_needs_restarting(1, "No such command: needs-restarting.") is None


def test_zypper_recorded() -> None:
    updates = psl.zypper_updates(zyp("list_updates.xml"), zyp("list_patches.xml"), zyp("info_patches.stdout"))
    assert summary(updates) == EXPECTED
    assert {u["origin"] for u in updates} == {"patchctl-lab"}
    after = psl.parse_zypper_updates(zyp("list_updates_after_kernel.xml"))
    assert [u["name"] for u in after] == ["patchctl-demo-app", "patchctl-demo-db", "patchctl-demo-ssl"]


def test_zypper_patches_recorded() -> None:
    patches = {p["id"]: p for p in psl.parse_zypper_patches(zyp("list_patches.xml"))}
    assert patches["PLAB-2024-0101"] == {
        "id": "PLAB-2024-0101",
        "status": "needed",
        "type": "security",
        "severity": "important",
        "cves": ["CVE-2024-90101"],
    }
    assert patches["PLAB-2024-0103"]["status"] == "optional"


def test_zypper_patch_info_conflict_forms() -> None:
    text = (
        "Information for patch SUSE-2024-1:\n"
        "-------------------------------------\n"
        "Name        : SUSE-2024-1\n"
        "Conflicts   : [2]\n"
        "    libopenssl3.x86_64 < 3.1.4-9.1\n"
        "    openssl-3 < 3.1.4-9.1\n"
        "\n"
        "Information for patch SUSE-2024-2:\n"
        "Conflicts   : kernel-default.x86_64 < 5.14.21-150500.55.1\n"
    )
    assert psl.parse_zypper_patch_info(text) == {
        "SUSE-2024-1": [("libopenssl3", "3.1.4-9.1"), ("openssl-3", "3.1.4-9.1")],
        "SUSE-2024-2": [("kernel-default", "5.14.21-150500.55.1")],
    }


def test_zypper_bad_xml_raises() -> None:
    with pytest.raises(ValueError, match="unparsable XML from zypper list-updates"):
        psl.parse_zypper_updates("<?xml version='1.0'?>\n<stream><update")


@pytest.mark.parametrize(
    ("kinds", "installed", "candidate", "expected"),
    [
        (["security", "bugfix"], "1.0-1", "1.0-2", "security"),
        (["recommended"], "1.0-1", "1.0-2", "bugfix"),
        (["optional"], "1.0-1", "2.0-1", "enhancement"),
        (["feature"], "1.0-1", "1.1-1", "feature"),
        (["newpackage"], "1.0-1", "1.1-1", "other"),
        ([], "1.0-1", "1.0-2", "bugfix"),  # no advisory, same upstream: as for apt
        ([], "1.0-1", "1.1-1", "other"),
    ],
)
def test_classify_rpm(kinds: list[str], installed: str, candidate: str, expected: str) -> None:
    assert psl.classify_rpm(kinds, installed, candidate) == expected


def test_severity_words() -> None:
    assert psl.max_severity(["Moderate", None, "Important", "unspecified"]) == "important"
    assert psl.max_severity(["", None]) is None
    assert psl.rpm_evr("0", "1.0", "2") == "1.0-2"
    assert psl.rpm_evr("2", "1.0", "2") == "2:1.0-2"


# ---- main() end to end, commands replaced by recorded output ------------------------------------


class FakeRpmHost:
    """Replays the recorded dnf/zypper/rpm output and records every command the module runs."""

    def __init__(self, mgr: str) -> None:
        self.mgr = mgr
        self.calls: list[list[str]] = []
        self.binaries = {"apt-get", "rpm", mgr}
        self.reboot = False

    def get_bin_path(self, arg: str, required: bool = False, opt_dirs: Any = None) -> str | None:
        return f"/usr/bin/{arg}" if arg in self.binaries else None

    def run_command(self, args: list[str], **kwargs: Any) -> tuple[int, str, str]:
        self.calls.append(list(args))
        assert (kwargs.get("environ_update") or {}).get("LC_ALL") == "C"
        tool, rest = os.path.basename(args[0]), args[1:]
        if tool == "rpm":
            return 0, LAB_INSTALLED, ""
        if tool == "dnf":
            if "makecache" in rest:
                return 0, "", ""
            if "check-update" in rest:
                return 100, dnf("check_update.stdout"), ""
            if rest[-3:] == ["updateinfo", "list", "--updates"]:
                return 0, dnf("updateinfo_list.stdout"), ""
            if rest[-3:] == ["updateinfo", "info", "--updates"]:
                return 0, dnf("updateinfo_info.stdout"), ""
            if "needs-restarting" in rest:
                if self.reboot:
                    return 1, dnf("needs_restarting_reboot.stdout"), ""
                return 0, dnf("needs_restarting_none.stdout"), ""
        if tool == "zypper":
            if "refresh" in rest:
                return 0, "", ""
            if "list-updates" in rest:
                return 0, zyp("list_updates.xml"), ""
            if "list-patches" in rest:
                return 0, zyp("list_patches.xml"), ""
            if "info" in rest:
                return 0, zyp("info_patches.stdout"), ""
            if "needs-rebooting" in rest:
                return (102, "", "") if self.reboot else (0, "", "")
        raise AssertionError(f"unexpected command {args}")

    def tool_calls(self, tool: str) -> list[list[str]]:
        return [c for c in self.calls if os.path.basename(c[0]) == tool]


@pytest.fixture(params=["dnf", "zypper"])
def rpm_host(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRpmHost]:
    fake = FakeRpmHost(request.param)
    os_release = tmp_path / "os-release"
    os_release.write_text((DNF if request.param == "dnf" else ZYPPER).joinpath("os-release.lab").read_text())
    monkeypatch.setattr(psl, "OS_RELEASE_PATHS", (str(os_release),))
    monkeypatch.setattr(psl.ScanModule, "run_command", lambda self, a, **k: fake.run_command(a, **k))
    monkeypatch.setattr(psl.ScanModule, "get_bin_path", lambda self, a, **k: fake.get_bin_path(a))
    yield fake


def run_module(args: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    with pytest.raises(SystemExit):
        psl.main(args)
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def test_main_rpm_scan(rpm_host: FakeRpmHost, capsys: pytest.CaptureFixture[str]) -> None:
    # auto: apt-get is on these hosts too, the os-release family decides
    result = run_module({"watch": ["patchctl-demo-ssl"]}, capsys)
    assert "failed" not in result, result.get("msg")
    scan = result["patchctl_scan"]
    assert scan["pkg_mgr"] == rpm_host.mgr
    assert scan["refreshed"] is True
    assert scan["os"]["family"] == ("RedHat" if rpm_host.mgr == "dnf" else "Suse")
    assert summary(scan["updates"]) == EXPECTED
    assert scan["reboot_required"] is False
    assert scan["installed"] == {"patchctl-demo-ssl": "1.0-1"}
    assert not rpm_host.tool_calls("apt-get")
    # the result keeps the contract: patchctl's normalizer takes it as it is
    normalized = normalize_scan(result, host="h")
    by_name = {u.name: u for u in normalized.updates}
    assert by_name["patchctl-demo-ssl"].uid == f"{rpm_host.mgr}:patchctl-demo-ssl:1.0-2"
    assert by_name["patchctl-demo-ssl"].cves == ("CVE-2024-90101",)


def test_main_rpm_reboot_and_no_refresh(rpm_host: FakeRpmHost, capsys: pytest.CaptureFixture[str]) -> None:
    rpm_host.reboot = True
    scan = run_module({"refresh": False}, capsys)["patchctl_scan"]
    assert scan["refreshed"] is False
    assert scan["reboot_required"] is True
    expected_pkgs = ["patchctl-demo-kernel"] if rpm_host.mgr == "dnf" else []
    assert scan["reboot_required_pkgs"] == expected_pkgs
    assert not [c for c in rpm_host.calls if "makecache" in c or "refresh" in c]


def test_main_rpm_refresh_failure_fails(
    rpm_host: FakeRpmHost, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(args: list[str], **kwargs: Any) -> tuple[int, str, str]:
        rpm_host.calls.append(list(args))
        return 1, "", "Error: Failed to download metadata for repo 'patchctl-lab'\n"

    monkeypatch.setattr(psl.ScanModule, "run_command", lambda self, a, **k: broken(a, **k))
    result = run_module({}, capsys)
    assert result["failed"] is True
    assert "Failed to download metadata for repo 'patchctl-lab'" in result["msg"]
    assert "patchctl_scan" not in result
    assert len(rpm_host.calls) == 1  # nothing listed from stale metadata


def test_main_rpm_bad_watch_name(rpm_host: FakeRpmHost, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_module({"refresh": False, "watch": ["bash", "lib*"]}, capsys)
    assert result["msg"] == "watch: not an RPM package name: lib*"
