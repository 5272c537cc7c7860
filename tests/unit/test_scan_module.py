"""The patch_scan_linux module: its pure parsers on recorded apt output, and main() end to end
with the commands it runs replaced by recorded output."""

from __future__ import annotations

import importlib.util
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "apt"
MODULE_PATH = ROOT / "plugins" / "modules" / "patch_scan_linux.py"


def load_plugin_module(name: str) -> ModuleType:
    """One of plugins/modules/ imported as Python, its ``ansible.module_utils`` imports found in
    plugins/module_utils/ as Ansible finds them there (ANSIBLE_MODULE_UTILS)."""
    import ansible.module_utils

    utils = str(ROOT / "plugins" / "module_utils")
    if utils not in ansible.module_utils.__path__:
        ansible.module_utils.__path__.append(utils)
    spec = importlib.util.spec_from_file_location(name, ROOT / "plugins" / "modules" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


psl = load_plugin_module("patch_scan_linux")


def data(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def by_name(updates: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {u["name"]: u for u in updates}


# ---- apt list --upgradable -------------------------------------------------------------------


def test_parse_recorded_apt_list() -> None:
    updates = psl.parse_apt_list_upgradable(data("apt_list_upgradable.stdout"), "amd64")
    assert len(updates) == 132  # every line but "Listing..."
    found = by_name(updates)
    assert found["curl"] == {
        "name": "curl",
        "installed_version": "7.88.1-10+deb12u14",
        "version": "7.88.1-10+deb12u15",
        "arch": "amd64",
        "origin": "oldstable",
        "classification": "bugfix",
        "major": False,
        "severity": None,
        "cves": [],
        "advisory_ids": [],
    }
    assert found["krb5-locales"]["origin"] == "oldstable,oldstable-security"
    assert found["krb5-locales"]["classification"] == "security"
    assert found["krb5-locales"]["arch"] == "all"
    assert found["jq"]["classification"] == "security"
    assert found["appstream"]["classification"] == "bugfix"  # binNMU 0.16.1-2 -> 0.16.1-2+b1
    assert found["dpkg"]["classification"] == "other"  # native 1.21.22 -> 1.21.23
    assert found["libcap2"]["version"] == "1:2.66-4+deb12u3+b1"  # epoch kept verbatim
    assert found["libcap2"]["classification"] == "bugfix"
    # calendar versions moving a year are not major; nothing else here is either
    assert found["tzdata"]["major"] is False
    assert found["ca-certificates"]["major"] is False
    assert not [u["name"] for u in updates if u["major"]]
    classes = {u["classification"] for u in updates}
    assert classes == {"security", "bugfix", "other"}


def test_parse_recorded_lab_list() -> None:
    found = by_name(psl.parse_apt_list_upgradable(data("apt_list_upgradable_lab.stdout"), "amd64"))
    assert found["bash"]["major"] is True
    assert found["bash"]["classification"] == "other"
    assert found["zip"]["classification"] == "security"
    assert found["zip"]["origin"] == "lab-security"
    assert found["tzdata"]["major"] is False


def test_parse_empty_list() -> None:
    assert psl.parse_apt_list_upgradable(data("apt_list_upgradable_empty.stdout")) == []
    # the CLI warning, when stderr is merged into stdout, is skipped too
    merged = data("apt_list_upgradable.stderr") + data("apt_list_upgradable_empty.stdout")
    assert psl.parse_apt_list_upgradable(merged) == []


def test_foreign_architecture_is_qualified() -> None:
    text = (
        "libc6/stable 2.36-9+deb12u9 amd64 [upgradable from: 2.36-9+deb12u8]\n"
        "libc6/stable 2.36-9+deb12u9 i386 [upgradable from: 2.36-9+deb12u8]\n"
        "tzdata/stable 2025b-0+deb12u1 all [upgradable from: 2025a-0+deb12u1]\n"
    )
    names = [u["name"] for u in psl.parse_apt_list_upgradable(text, "amd64")]
    assert names == ["libc6", "libc6:i386", "tzdata"]
    # without a native architecture nothing is renamed
    names = [u["name"] for u in psl.parse_apt_list_upgradable(text)]
    assert names == ["libc6", "libc6", "tzdata"]


@pytest.mark.parametrize(
    "line",
    [
        "garbage",
        "curl/oldstable 7.88.1-10+deb12u15 amd64",
        "curl 7.88.1-10+deb12u15 amd64 [upgradable from: 7.88.1-10+deb12u14]",
        "E: Could not open lock file",
    ],
)
def test_unparsable_line_raises(line: str) -> None:
    with pytest.raises(ValueError, match="unparsable line"):
        psl.parse_apt_list_upgradable("Listing...\n" + line + "\n")


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("1:2.66-4+deb12u3+b1", ("1", "2.66", "4+deb12u3+b1")),
        ("7.88.1-10+deb12u15", ("", "7.88.1", "10+deb12u15")),
        ("1.21.23", ("", "1.21.23", "")),
        ("2:3.87.1-1+deb12u4", ("2", "3.87.1", "1+deb12u4")),
        ("1.2-3-4", ("", "1.2-3", "4")),
    ],
)
def test_split_debian_version(version: str, expected: tuple[str, str, str]) -> None:
    assert psl.split_debian_version(version) == expected


@pytest.mark.parametrize(
    ("installed", "candidate", "major"),
    [
        ("5.2.15-2+b8", "6.0-1", True),
        ("1:2.66-4", "1:3.0-1", True),
        ("1:2.66-4", "2:2.67-1", False),  # an epoch bump alone is not a new major
        ("9.2p1-2", "10.0p1-1", True),
        ("7.88.1-10", "7.89.0-1", False),
        ("2.0-1", "1.9-1", False),
        ("2025b-0+deb12u2", "2026f-0+deb12u1", False),  # calendar
        ("20230311+deb12u1", "20250419~deb12u2", False),  # calendar
        ("abc", "def", False),  # no number at all
    ],
)
def test_is_major(installed: str, candidate: str, major: bool) -> None:
    assert psl.is_major(installed, candidate) is major


@pytest.mark.parametrize(
    ("suites", "installed", "candidate", "expected"),
    [
        (["bookworm-security"], "1.0-1", "2.0-1", "security"),
        (["bookworm", "bookworm-security"], "1.0-1", "1.0-2", "security"),
        (["Debian-Security"], "1.0-1", "1.0-2", "security"),
        (["bookworm-updates"], "1.0-1", "1.0-2", "bugfix"),
        (["bookworm"], "1:1.0-1", "1:1.0-1+b1", "bugfix"),
        (["bookworm"], "1.0-1", "1.1-1", "other"),
    ],
)
def test_classify(suites: list[str], installed: str, candidate: str, expected: str) -> None:
    assert psl.classify_apt(suites, installed, candidate) == expected


# ---- apt-get update --------------------------------------------------------------------------


def test_update_good_has_no_errors() -> None:
    out, err = data("apt_get_update_good.stdout"), data("apt_get_update_good.stderr")
    assert psl.apt_update_errors(0, out, err) == []


@pytest.mark.parametrize(
    ("case", "rc", "needle"),
    [
        ("unsigned", 100, "is not signed"),
        ("nokey", 100, "NO_PUBKEY BDE6B7C9B8B0F1E5"),
        ("unreach", 100, "Could not connect to 127.0.0.1:9"),
        ("stale", 100, "Failed to fetch"),
        # apt without --error-on=any: exit 0, only warnings, stale lists; still a failure
        ("stale_noerr", 0, "NO_PUBKEY"),
    ],
)
def test_update_failures_are_noticed(case: str, rc: int, needle: str) -> None:
    out = data(f"apt_get_update_{case}.stdout")
    err = data(f"apt_get_update_{case}.stderr")
    errors = psl.apt_update_errors(rc, out, err)
    assert errors
    assert any(needle in e for e in errors)
    assert not any("unsandboxed" in e for e in errors)  # a harmless warning stays out


def test_update_nonzero_without_e_lines() -> None:
    assert psl.apt_update_errors(100, "", "something broke\n") == ["something broke"]
    assert psl.apt_update_errors(100, "", "") == ["apt-get update exited with 100"]


# ---- dpkg-query, os-release, reboot ----------------------------------------------------------


def test_parse_recorded_dpkg_query() -> None:
    names = ["bash", "openssl", "curl", "libc6", "no-such-package", "tzdata"]
    installed = psl.parse_dpkg_query(data("dpkg_query_watch.stdout"), names)
    assert installed == {
        "bash": "5.2.15-2+b8",
        "openssl": "3.0.19-1~deb12u2",
        "curl": "7.88.1-10+deb12u14",
        "libc6": "2.36-9+deb12u14",
        "tzdata": "2025b-0+deb12u2",
    }


def test_dpkg_query_status_and_arch() -> None:
    text = (
        "libc6\tamd64\t2.36-9\tii \n"
        "libc6\ti386\t2.36-8\tii \n"
        "oldpkg\tamd64\t1.0-1\trc \n"
        "halfpkg\tamd64\t1.0-1\tiU \n"
        "trig\tamd64\t1.0-1\tit \n"
    )
    names = ["libc6", "libc6:i386", "libc6:arm64", "oldpkg", "halfpkg", "trig"]
    assert psl.parse_dpkg_query(text, names) == {
        "libc6": "2.36-9",
        "libc6:i386": "2.36-8",
        "trig": "1.0-1",
    }


def test_os_release_debian12() -> None:
    fields = psl.parse_os_release(data("os-release.debian12"))
    assert fields["PRETTY_NAME"] == "Debian GNU/Linux 12 (bookworm)"
    assert psl.os_info(fields) == {
        "family": "Debian",
        "distribution": "Debian",
        "version": "12",
        "codename": "bookworm",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # illustrative, not recorded: how other families map
        (
            'ID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\nVERSION_CODENAME=noble\n',
            {"family": "Debian", "distribution": "Ubuntu", "version": "24.04", "codename": "noble"},
        ),
        (
            'ID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\nNAME="Rocky Linux"\n',
            {"family": "RedHat", "distribution": "Rocky", "version": "9.4", "codename": None},
        ),
        (
            'ID="opensuse-leap"\nID_LIKE="suse opensuse"\nVERSION_ID="15.6"\n',
            {
                "family": "Suse",
                "distribution": "openSUSE Leap",
                "version": "15.6",
                "codename": None,
            },
        ),
        (
            'NAME="Odd Linux"\nID=odd\n',
            {"family": None, "distribution": "Odd Linux", "version": None, "codename": None},
        ),
        ("", {"family": None, "distribution": None, "version": None, "codename": None}),
    ],
)
def test_os_info_families(text: str, expected: dict[str, str | None]) -> None:
    assert psl.os_info(psl.parse_os_release(text)) == expected


def test_reboot_pkgs() -> None:
    assert psl.parse_reboot_pkgs("linux-image-amd64\nlibc6\n\nlibc6\n") == [
        "linux-image-amd64",
        "libc6",
    ]


# ---- main() end to end, commands replaced by recorded output ---------------------------------

Call = list[str]


class FakeHost:
    """Replays recorded command output and records every command the module runs."""

    def __init__(self, tmp_path: Path) -> None:
        self.calls: list[Call] = []
        self.envs: list[dict[str, str]] = []
        self.binaries = {"apt-get", "apt", "apt-mark", "dpkg", "dpkg-query"}
        self.showhold = ""  # `apt-mark showhold`: one held package a line
        self.update: list[tuple[int, str, str]] = [
            (0, data("apt_get_update_good.stdout"), data("apt_get_update_good.stderr"))
        ]
        self.list_out = data("apt_list_upgradable.stdout")
        self.download: tuple[int, str, str] = (0, "", "")  # `apt-get download` (the integrity check)
        self.tmp = tmp_path

    def get_bin_path(self, arg: str, required: bool = False, opt_dirs: Any = None) -> str | None:
        return f"/usr/bin/{arg}" if arg in self.binaries else None

    def run_command(self, args: Call, **kwargs: Any) -> tuple[int, str, str]:
        self.calls.append(list(args))
        self.envs.append(dict(kwargs.get("environ_update") or {}))
        tool = os.path.basename(args[0])
        if tool == "apt-get" and args[1] == "download":
            assert kwargs.get("cwd"), "the download check must run in its throwaway directory"
            return self.download
        if tool == "apt-get":
            return self.update.pop(0)
        if tool == "apt":
            return 0, self.list_out, data("apt_list_upgradable.stderr")
        if tool == "dpkg":
            return 0, "amd64\n", ""
        if tool == "apt-mark":
            assert args[1:] == ["showhold"]
            return 0, self.showhold, ""
        if tool == "dpkg-query":
            return 1, data("dpkg_query_watch.stdout"), data("dpkg_query_watch.stderr")
        raise AssertionError(f"unexpected command {args}")

    def tool_calls(self, tool: str) -> list[Call]:
        return [c for c in self.calls if os.path.basename(c[0]) == tool]

    def update_calls(self) -> list[Call]:
        return [c for c in self.tool_calls("apt-get") if c[1] == "update"]


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHost]:
    fake = FakeHost(tmp_path)
    os_release = tmp_path / "os-release"
    os_release.write_text(data("os-release.debian12"), encoding="utf-8")
    monkeypatch.setattr(psl, "OS_RELEASE_PATHS", (str(os_release),))
    monkeypatch.setattr(psl, "REBOOT_REQUIRED", str(tmp_path / "reboot-required"))
    monkeypatch.setattr(psl, "APT_STAMP", str(tmp_path / "periodic" / "update-success-stamp"))
    monkeypatch.setattr(psl, "APT_ETC", str(tmp_path / "etc-apt"))  # this machine's apt config is not the host's
    monkeypatch.setattr(psl.ScanModule, "run_command", lambda self, a, **k: fake.run_command(a, **k))
    monkeypatch.setattr(psl.ScanModule, "get_bin_path", lambda self, a, **k: fake.get_bin_path(a))
    yield fake


def run_module(args: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    with pytest.raises(SystemExit):
        psl.main(args)
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def test_main_scans_and_refreshes(host: FakeHost, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_module({"watch": ["bash", "no-such-package"], "refresh_retries": 2, "verify_downloads": True}, capsys)
    assert result["changed"] is False
    assert "failed" not in result
    scan = result["patchctl_scan"]
    assert set(scan) == {
        "schema",
        "pkg_mgr",
        "os",
        "refreshed",
        "updates",
        "reboot_required",
        "reboot_required_pkgs",
        "installed",
        "holds",
    }
    assert scan["holds"] == []
    assert scan["schema"] == 1
    assert scan["pkg_mgr"] == "apt"
    assert scan["os"] == {
        "family": "Debian",
        "distribution": "Debian",
        "version": "12",
        "codename": "bookworm",
    }
    assert scan["refreshed"] is True
    assert len(scan["updates"]) == 132
    assert scan["reboot_required"] is False
    assert scan["reboot_required_pkgs"] == []
    assert scan["installed"] == {"bash": "5.2.15-2+b8"}
    update_call = host.tool_calls("apt-get")[0]
    assert update_call[1:] == ["update", "-q", *psl.APT_VERIFY_OPTIONS, "--error-on=any", "-o", "Acquire::Retries=2"]
    download_call = host.tool_calls("apt-get")[1]
    assert download_call[1:3] == ["download", "-q"] and "APT::Get::AllowUnauthenticated=false" in download_call
    assert len([a for a in download_call if "=" in a and not a.startswith(("APT::", "Acquire::"))]) == 132
    assert all(env.get("LANG") == "C" and env.get("LC_ALL") == "C" for env in host.envs)
    assert host.tool_calls("apt") == [["/usr/bin/apt", "list", "--upgradable"]]
    assert host.tool_calls("dpkg-query")[0][-3:] == ["--", "bash", "no-such-package"]
    assert Path(psl.APT_STAMP).exists()  # the stamp of the last good refresh


def test_main_refresh_failure_fails(host: FakeHost, capsys: pytest.CaptureFixture[str]) -> None:
    host.update = [(100, data("apt_get_update_nokey.stdout"), data("apt_get_update_nokey.stderr"))]
    result = run_module({}, capsys)
    assert result["failed"] is True
    assert result["msg"].startswith("integrity: apt-get update: ")  # a missing key is an integrity problem
    assert "NO_PUBKEY BDE6B7C9B8B0F1E5" in result["msg"]
    assert "\n" not in result["msg"]
    assert "patchctl_scan" not in result
    assert not host.tool_calls("apt")  # no listing from stale lists
    assert not Path(psl.APT_STAMP).exists()


def test_main_old_apt_judges_warnings(host: FakeHost, capsys: pytest.CaptureFixture[str]) -> None:
    not_understood = "E: Command line option --error-on=any is not understood\n"
    host.update = [
        (100, "", not_understood),
        (0, data("apt_get_update_stale_noerr.stdout"), data("apt_get_update_stale_noerr.stderr")),
    ]
    result = run_module({}, capsys)
    assert result["failed"] is True
    assert "NO_PUBKEY" in result["msg"]
    calls = host.tool_calls("apt-get")
    assert "--error-on=any" in calls[0]
    assert "--error-on=any" not in calls[1]


def test_main_cache_valid_time_skips_refresh(host: FakeHost, capsys: pytest.CaptureFixture[str]) -> None:
    stamp = Path(psl.APT_STAMP)
    stamp.parent.mkdir(parents=True)
    stamp.touch()
    scan = run_module({"cache_valid_time": 3600}, capsys)["patchctl_scan"]
    assert scan["refreshed"] is False
    assert not host.update_calls()
    # an old stamp refreshes
    old = time.time() - 7200
    os.utime(stamp, (old, old))
    scan = run_module({"cache_valid_time": 3600}, capsys)["patchctl_scan"]
    assert scan["refreshed"] is True


def test_main_no_refresh_and_check_mode(host: FakeHost, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_module({"refresh": False}, capsys)["patchctl_scan"]["refreshed"] is False
    result = run_module({"_ansible_check_mode": True}, capsys)
    assert result["patchctl_scan"]["refreshed"] is False
    assert result["changed"] is False
    assert not host.update_calls()


def test_main_reboot_required(host: FakeHost, capsys: pytest.CaptureFixture[str]) -> None:
    Path(psl.REBOOT_REQUIRED).write_text("*** System restart required ***\n", encoding="utf-8")
    Path(psl.REBOOT_REQUIRED + ".pkgs").write_text("libc6\nlinux-base\nlibc6\n", encoding="utf-8")
    scan = run_module({"refresh": False}, capsys)["patchctl_scan"]
    assert scan["reboot_required"] is True
    assert scan["reboot_required_pkgs"] == ["libc6", "linux-base"]


def test_main_auto_follows_os_family(host: FakeHost, capsys: pytest.CaptureFixture[str]) -> None:
    # dnf on a Debian host: auto still scans with apt (the dnf side: tests/unit/test_scan_module_rpm.py)
    host.binaries.add("dnf")
    assert run_module({"refresh": False}, capsys)["patchctl_scan"]["pkg_mgr"] == "apt"
    assert not [c for c in host.calls if os.path.basename(c[0]) == "dnf"]


def test_main_missing_binary(host: FakeHost, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_module({"pkg_mgr": "zypper"}, capsys)
    assert result["msg"] == "pkg_mgr=zypper but zypper is not on this host"
    host.binaries.clear()
    result = run_module({}, capsys)
    assert result["msg"] == "no supported package manager found (apt-get, dnf, zypper)"


def test_main_rejects_bad_watch_name(host: FakeHost, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_module({"refresh": False, "watch": ["bash", "lib*"]}, capsys)
    assert result["msg"] == "watch: not a Debian package name: lib*"


def test_main_garbage_listing_fails(host: FakeHost, capsys: pytest.CaptureFixture[str]) -> None:
    host.list_out = "Listing...\nthis is not apt\n"
    result = run_module({"refresh": False}, capsys)
    assert result["failed"] is True
    assert "unparsable line" in result["msg"]


# ---- the module runtime (ScanModule): no Ansible import on the host -----------------------------


def test_module_is_a_json_args_module() -> None:
    """Ansible sends it as a pipelined "JSON args" module, not as an AnsiballZ payload."""
    from ansible.executor import module_common

    source = MODULE_PATH.read_bytes()
    assert not module_common.NEW_STYLE_PYTHON_MODULE_RE.search(source)
    assert source.count(module_common.REPLACER_JSONARGS) == 1
    args = {"watch": ["a'b\\c", 'd"e'], "_ansible_check_mode": False}
    filled = source.replace(module_common.REPLACER_JSONARGS, json.dumps(args).encode())
    namespace: dict[str, Any] = {}
    exec(compile(filled, str(MODULE_PATH), "exec"), namespace)  # noqa: S102 - the module's own source
    assert json.loads(namespace["_ARGS_JSON"]) == args


@pytest.mark.parametrize(
    ("args", "params"),
    [
        ({}, {"pkg_mgr": "auto", "refresh": True, "cache_valid_time": 0, "watch": [], "refresh_retries": 0,
              "verify_downloads": False}),
        ({"refresh": "no", "cache_valid_time": "3600", "watch": "a, b", "_ansible_verbosity": 2,
          "verify_downloads": "no"},
         {"pkg_mgr": "auto", "refresh": False, "cache_valid_time": 3600, "watch": ["a", "b"], "refresh_retries": 0,
          "verify_downloads": False}),
        ({"pkg_mgr": "dnf", "refresh": 1, "refresh_retries": 2.0, "watch": None},
         {"pkg_mgr": "dnf", "refresh": True, "cache_valid_time": 0, "watch": [], "refresh_retries": 2,
          "verify_downloads": False}),
    ],
)  # fmt: skip
def test_module_params_like_ansible(args: dict[str, Any], params: dict[str, Any]) -> None:
    assert psl.ScanModule(args).params == params


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"bogus": 1}, "Unsupported parameters for (patch_scan_linux) module: bogus"),
        (
            {"pkg_mgr": "yum"},
            "value of pkg_mgr must be one of: auto, apt, dnf, zypper, got: yum "
            "(role variable patch_scan_linux_pkg_mgr)",
        ),
        ({"refresh": "maybe"}, "argument refresh: 'maybe' is not a boolean (role variable patch_scan_linux_refresh)"),
        (
            {"cache_valid_time": "soon"},
            "argument cache_valid_time: 'soon' is not an integer (role variable patch_scan_linux_cache_valid_time)",
        ),
        ({"cache_valid_time": True}, "argument cache_valid_time: True is not an integer"),
    ],
)
def test_module_rejects_bad_params(args: dict[str, Any], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        psl.main(args)
    assert exited.value.code == 1
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] is True
    assert message in result["msg"]


def test_module_runs_commands_and_finds_binaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = psl.ScanModule({})
    script = 'echo "$LC_ALL"; echo oops >&2; exit 3'
    rc, out, err = module.run_command(["sh", "-c", script], environ_update={"LC_ALL": "C"})
    assert (rc, out, err) == (3, "C\n", "oops\n")
    tool = tmp_path / "tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert module.get_bin_path("tool") == str(tool)
    assert module.get_bin_path("no-such-tool") is None


def test_main_names_the_hold_of_a_held_update(host: FakeHost, capsys: pytest.CaptureFixture[str]) -> None:
    """``apt-mark showhold`` lists openssl: its update carries ``held`` and the hold is listed.
    Seen failing with scan() not calling mark_held (no ``held`` on the update)."""
    host.showhold = "openssl\n"
    scan = run_module({}, capsys)["patchctl_scan"]
    updates = by_name(scan["updates"])
    assert updates["openssl"]["held"] == "apt-mark hold"
    assert [n for n, u in updates.items() if u.get("held")] == ["openssl"]
    assert scan["holds"] == [{"name": "openssl", "by": "apt-mark hold"}]

