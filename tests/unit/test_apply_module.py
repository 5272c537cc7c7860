"""The patch_apply_linux module on apt, end to end: its main() under the real AnsibleModule, with the
commands it runs answered by output recorded on a lab host (tests/data/apt/README.md), and every
command line it runs checked, the verification options on each apt call included.

Seen failing: with ``*APT_VERIFY_OPTIONS`` taken out of the install's argument list (the install
and every-call tests), and out of ``apt-get update`` (the refresh test); with ``outcome`` counting
an update installed at its version whatever dpkg's state (``iF``, the broken postinst, became
installed); with ``last_error`` taking apt's last ``E:`` line (the lock case named "Unable to
acquire the dpkg frontend lock" instead of the holder, the full disk "Unable to fetch some
archives"); with the ``dpkg: error processing`` pair not joined (the postinst case); with
``plan`` putting a present update in the to-do list (``apt-get install`` ran for a host already at
the version); with the ``integrity:`` prefix dropped from the install's error (the tampered case).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args

from tests.unit.test_scan_module import FakeHost, data, load_plugin_module, psl, run_module

pal = load_plugin_module("patch_apply_linux")

VERIFY = [
    "-o",
    "APT::Get::AllowUnauthenticated=false",
    "-o",
    "Acquire::AllowInsecureRepositories=false",
    "-o",
    "Acquire::AllowDowngradeToInsecureRepositories=false",
]
INSTALL = [
    "apt-get",
    "install",
    "-y",
    "-q",
    "--no-install-recommends",
    "--no-remove",
    "-o",
    "Dpkg::Options::=--force-confdef",
    "-o",
    "Dpkg::Options::=--force-confold",
    *VERIFY,
]
QUERY = ["dpkg-query", "-W", "-f", "${Package}\\t${Version}\\t${db:Status-Abbrev}\\n"]
APP = {"uid": "apt:patchctl-demo-app:1.1-1", "source": "apt", "name": "patchctl-demo-app", "version": "1.1-1"}
SSL = {"uid": "apt:patchctl-demo-ssl:1.0-2", "source": "apt", "name": "patchctl-demo-ssl", "version": "1.0-2"}
KERNEL = {"uid": "apt:patchctl-demo-kernel:1.1-1", "source": "apt", "name": "patchctl-demo-kernel", "version": "1.1-1"}
BROKEN = {"uid": "apt:patchctl-demo-broken:1.1-1", "source": "apt", "name": "patchctl-demo-broken", "version": "1.1-1"}


def recorded(name: str, rc: int = 0) -> tuple[int, str, str]:
    err = Path(__file__).resolve().parents[1] / "data" / "apt" / f"{name}.stderr"
    return rc, data(f"{name}.stdout"), err.read_text(encoding="utf-8") if err.exists() else ""


class AptHost:
    """Replays a lab host's recorded answers to the apply module's commands and keeps every call
    (argument list and environment)."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.envs: list[dict[str, str]] = []
        # dpkg-query: the state before the install, then after it
        self.states = [recorded("apply_dpkg_query_before", 1), recorded("apply_dpkg_query_after", 1)]
        self.cache_show = recorded("apply_apt_cache_show_known")
        self.update = recorded("apply_apt_get_update")
        self.install = recorded("apt_get_install_ok")

    def run_command(self, args: list[str], **kwargs: Any) -> tuple[int, str, str]:
        self.calls.append(list(args))
        self.envs.append(dict(kwargs.get("environ_update") or {}))
        if args[0] == "dpkg-query":
            # the recording asked for more names: dpkg-query prints only the lines of those asked
            rc, out, err = self.states.pop(0) if len(self.states) > 1 else self.states[0]
            asked = set(args[len(QUERY) :])
            return rc, "".join(ln for ln in out.splitlines(True) if ln.split("\t")[0] in asked), err
        if args[:2] == ["apt-cache", "show"]:
            return self.cache_show
        if args[:2] == ["apt-get", "update"]:
            return self.update
        if args[:2] == ["apt-get", "install"]:
            return self.install
        raise AssertionError(f"unexpected command {args}")

    def apt_calls(self) -> list[list[str]]:
        return [c for c in self.calls if c[0] == "apt-get"]


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AptHost]:
    fake = AptHost()
    monkeypatch.setattr(pal, "REBOOT_REQUIRED", str(tmp_path / "reboot-required"))
    monkeypatch.setattr(pal.AnsibleModule, "run_command", lambda self, args, **kw: fake.run_command(args, **kw))
    yield fake


def apply(args: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """main() under the real AnsibleModule with ``args``; its JSON result."""
    with patch_module_args({"pkg_mgr": "apt", **args}), pytest.raises(SystemExit):
        pal.main()
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def test_install_runs_one_pinned_verified_apt_get_install(
    host: AptHost, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two updates apt knows: dpkg's state read, apt-cache asked, one ``apt-get install`` of the
    pinned versions with every verification option, dpkg's state read again; both installed."""
    result = apply({"updates": [APP, SSL]}, capsys, monkeypatch)
    names = ["patchctl-demo-app", "patchctl-demo-ssl"]
    assert host.calls == [
        [*QUERY, *names],
        ["apt-cache", "show", "--no-all-versions", "patchctl-demo-app=1.1-1", "patchctl-demo-ssl=1.0-2"],
        [*INSTALL, "patchctl-demo-app=1.1-1", "patchctl-demo-ssl=1.0-2"],
        [*QUERY, *names],
    ]
    assert all(env == pal.APT_ENV for env in host.envs)
    assert host.envs[0]["LANG"] == "C" and host.envs[0]["DEBIAN_FRONTEND"] == "noninteractive"
    assert "failed" not in result and result["changed"] is True
    assert result["patchctl_apply"] == {
        "schema": 1,
        "pkg_mgr": "apt",
        "installed": [APP["uid"], SSL["uid"]],
        "present": [],
        "failed": {},
        "versions": {"patchctl-demo-app": "1.1-1", "patchctl-demo-ssl": "1.0-2"},
        "reboot_required": False,
        # no hooks, no health checks, no process mapping a replaced file
        "hooks": [],
        "health": [],
        "restart_pending": [],
    }


def test_a_version_apt_does_not_know_refreshes_first_with_verification(
    host: AptHost, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """apt-cache shows nothing for a requested version (it exits 0 all the same): ``apt-get update``
    runs first, with ``--error-on=any`` and every verification option."""
    host.cache_show = (0, "", "")
    result = apply({"updates": [APP, SSL]}, capsys, monkeypatch)
    assert host.apt_calls() == [
        ["apt-get", "update", "-q", "--error-on=any", *VERIFY],
        [*INSTALL, "patchctl-demo-app=1.1-1", "patchctl-demo-ssl=1.0-2"],
    ]
    assert result["patchctl_apply"]["installed"] == [APP["uid"], SSL["uid"]]


@pytest.mark.parametrize("refresh", ["always", "auto", "never"])
def test_every_apt_call_forces_verification(
    host: AptHost, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, refresh: str
) -> None:
    """Whatever the refresh, each apt-get call the module makes carries the three options as
    ``-o NAME=false`` pairs (an option without its ``-o`` would be a package name to apt)."""
    host.cache_show = (0, "", "")
    apply({"updates": [APP], "refresh": refresh}, capsys, monkeypatch)
    calls = host.apt_calls()
    assert [c[1] for c in calls] == (["install"] if refresh == "never" else ["update", "install"])
    for call in calls:
        pairs = {(call[i], call[i + 1]) for i in range(len(call) - 1)}
        assert {("-o", VERIFY[i]) for i in (1, 3, 5)} <= pairs, call
        assert not [a for a in call if "allow-unauthenticated" in a or "=true" in a], call


def test_an_update_already_at_its_version_installs_nothing(
    host: AptHost, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """dpkg shows the version ``ii`` already: present, no apt call at all, not changed."""
    host.states = [recorded("apply_dpkg_query_after", 1)]
    result = apply({"updates": [APP, SSL]}, capsys, monkeypatch)
    assert host.apt_calls() == [] and [c[0] for c in host.calls] == ["dpkg-query"]
    assert result["changed"] is False and "failed" not in result
    assert result["patchctl_apply"]["present"] == [APP["uid"], SSL["uid"]]
    assert result["patchctl_apply"]["installed"] == []


def test_a_failing_postinst_fails_the_update_with_dpkgs_error(
    host: AptHost, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recorded install of patchctl-demo-broken (rc 100, its postinst exits 1; dpkg then shows
    ``iF``): failed with dpkg's state and the two lines of dpkg's error, never installed."""
    host.install = recorded("apt_get_install_broken", 100)
    result = apply({"updates": [BROKEN]}, capsys, monkeypatch)
    why = (
        "dpkg state iF after install: dpkg: error processing package patchctl-demo-broken (--configure): "
        "installed patchctl-demo-broken package post-installation script subprocess returned error exit status 1"
    )
    assert result["failed"] is True
    assert result["patchctl_apply"]["failed"] == {BROKEN["uid"]: why}
    assert result["patchctl_apply"]["installed"] == []
    assert result["patchctl_apply"]["versions"] == {}  # half-configured is not installed
    assert result["msg"] == f"1 update(s) failed: {BROKEN['uid']}: {why}"


def test_the_dpkg_lock_held_names_its_holder(
    host: AptHost, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holds dpkg's frontend lock (recorded: a python3 holding it with fcntl): the
    reason is apt's line naming the holder, not its follow-up "Unable to acquire" line."""
    host.install = recorded("apt_get_install_locked", 100)
    host.states = [recorded("apply_dpkg_query_before", 1)]
    result = apply({"updates": [KERNEL]}, capsys, monkeypatch)
    assert result["failed"] is True
    assert result["patchctl_apply"]["failed"] == {
        KERNEL["uid"]: "still at 1.0-1: E: Could not get lock /var/lib/dpkg/lock-frontend. "
        "It is held by process 244 (python3)"
    }


def test_a_full_disk_names_no_space_left(
    host: AptHost, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 4 KiB tmpfs over apt's archives (recorded): every update still at its old version, the
    reason apt's first fetch error with "No space left on device"."""
    host.install = recorded("apt_get_install_nospace", 100)
    host.states = [recorded("apply_dpkg_query_before", 1), recorded("apply_dpkg_query_nospace")]
    result = apply({"updates": [APP, SSL]}, capsys, monkeypatch)
    failed = result["patchctl_apply"]["failed"]
    assert set(failed) == {APP["uid"], SSL["uid"]}
    first = (
        "E: Failed to fetch http://patchctl-repo:8080/debian/pool/bookworm/patchctl-demo-db_2.0-1_all.deb  "
        "Error writing to file - write (28: No space left on device) [IP: 127.81.0.1 8080]"
    )
    assert failed[APP["uid"]] == f"still at 1.0-1: {first}"
    assert failed[SSL["uid"]] == f"still at 1.0-1: {first}"
    assert result["patchctl_apply"]["installed"] == []


def test_a_tampered_package_is_an_integrity_failure_installing_nothing(
    host: AptHost, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host pointed at the lab's tampered copy (recorded: Hash Sum mismatch on both files): the
    message starts ``integrity:`` with apt's line, nothing installed."""
    host.install = recorded("apt_get_install_tampered", 100)
    host.states = [recorded("apply_dpkg_query_before", 1), recorded("apply_dpkg_query_tampered")]
    result = apply({"updates": [APP, KERNEL]}, capsys, monkeypatch)
    line = (
        "E: Failed to fetch http://patchctl-repo:8080/variants/tampered/debian/pool/bookworm/"
        "patchctl-demo-app_1.1-1_all.deb  Hash Sum mismatch"
    )
    assert result["msg"].startswith(f"integrity: {line}; 2 update(s) not installed: ")
    assert result["patchctl_apply"]["installed"] == []
    assert result["patchctl_apply"]["failed"][APP["uid"]] == f"still at 1.0-1: integrity: {line}"


def test_a_package_that_is_not_installed_is_refused_not_installed(
    host: AptHost, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An update of a package the host does not have (no line from dpkg-query): failed with the
    reason, and apt never asked to install it."""
    absent = {"uid": "apt:no-such-package:1-1", "source": "apt", "name": "no-such-package", "version": "1-1"}
    result = apply({"updates": [APP, absent]}, capsys, monkeypatch)
    assert result["patchctl_apply"]["failed"] == {
        absent["uid"]: "not installed on this host (patchctl only upgrades installed packages)"
    }
    install = [c for c in host.apt_calls() if c[1] == "install"]
    assert install == [[*INSTALL, "patchctl-demo-app=1.1-1"]]
    assert result["patchctl_apply"]["installed"] == [APP["uid"]]


def test_check_mode_and_checked_only_entries_run_no_apt(
    host: AptHost, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Check mode only reads dpkg's state; an entry with ``install: false`` is only read back."""
    result = apply({"updates": [APP], "_ansible_check_mode": True}, capsys, monkeypatch)
    assert host.apt_calls() == [] and result["patchctl_apply"]["installed"] == [APP["uid"]]
    host.calls.clear()
    host.states = [recorded("apply_dpkg_query_before", 1)]
    result = apply({"updates": [{**SSL, "install": False}]}, capsys, monkeypatch)
    assert host.apt_calls() == []
    assert result["patchctl_apply"]["versions"] == {"patchctl-demo-ssl": "1.0-1"}
    assert result["changed"] is False


def test_a_reboot_flag_left_by_a_package_is_reported(
    host: AptHost, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "reboot-required").write_text("*** System restart required ***\n")
    assert apply({"updates": [APP]}, capsys, monkeypatch)["patchctl_apply"]["reboot_required"] is True


def test_every_apt_call_of_the_scan_forces_verification(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The scan module's ``apt-get update`` and ``apt-get download`` (the download check) carry all
    three options as ``-o`` pairs too."""
    fake = FakeHost(tmp_path)
    os_release = tmp_path / "os-release"
    os_release.write_text(data("os-release.debian12"), encoding="utf-8")
    monkeypatch.setattr(psl, "OS_RELEASE_PATHS", (str(os_release),))
    monkeypatch.setattr(psl, "REBOOT_REQUIRED", str(tmp_path / "reboot-required"))
    monkeypatch.setattr(psl, "APT_STAMP", str(tmp_path / "stamp"))
    monkeypatch.setattr(psl, "APT_ETC", str(tmp_path / "etc-apt"))
    monkeypatch.setattr(psl.ScanModule, "run_command", lambda self, a, **k: fake.run_command(a, **k))
    monkeypatch.setattr(psl.ScanModule, "get_bin_path", lambda self, a, **k: fake.get_bin_path(a))
    run_module({"verify_downloads": True}, capsys)
    calls = fake.tool_calls("apt-get")
    assert [c[1] for c in calls] == ["update", "download"]
    for call in calls:
        pairs = {(call[i], call[i + 1]) for i in range(len(call) - 1)}
        assert {("-o", VERIFY[i]) for i in (1, 3, 5)} <= pairs, call
    assert os.path.basename(calls[0][0]) == "apt-get"
