"""RPM package integrity without hosts: every dnf command of the scan and apply modules forces the
signature checks on (DNF_VERIFY_OPTIONS), no zypper command turns them off or trusts a new key,
a zypper configuration that turns one off is refused before zypper runs, and dnf's and zypper's
own words for an unsigned repository, an unknown key or a tampered package become a failure
starting ``integrity:``, from output recorded on the lab's hosts (tests/data/dnf, tests/data/zypper).
The same cases on real hosts: tests/integration/test_integrity_rpm_lab.py.

Seen failing with: DNF_VERIFY_OPTIONS emptied in either module (the option checks);
``--gpg-auto-import-keys`` added to the scan's zypper calls; ZypperBackend.check_config not
called and Rpm.check_config returning at once (the refusals); rpm_integrity_problems returning
nothing (every classification); the zypper download check judging by the exit code alone (zypper
exits 0 after discarding a file whose digest failed).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_scan_module import load_plugin_module, psl
from tests.unit.test_scan_module_rpm import DNF, ZYPPER, FakeRpmHost, run_module

pal = load_plugin_module("patch_apply_linux")

FORCED = [
    "--setopt=gpgcheck=1",
    "--setopt=repo_gpgcheck=1",
    "--setopt=localpkg_gpgcheck=1",
    "--setopt=*.gpgcheck=1",
    "--setopt=*.repo_gpgcheck=1",
]
NEVER = ("--nogpgcheck", "--no-gpg-checks", "--gpg-auto-import-keys", "--setopt=gpgcheck=0", "--setopt=gpgcheck=False")


def recorded(path: Path) -> str:
    return path.read_text(encoding="utf-8")


class BrokenRpmHost(FakeRpmHost):
    """The lab's recorded RPM host, with chosen commands answering as against a broken repository."""

    def __init__(self, mgr: str) -> None:
        super().__init__(mgr)
        self.answers: dict[str, tuple[int, str, str]] = {}

    def run_command(self, args: list[str], **kwargs: Any) -> tuple[int, str, str]:
        for word, answer in self.answers.items():
            if word in args[1:]:
                self.calls.append(list(args))
                return answer
        if "download" in args[1:]:
            self.calls.append(list(args))
            return 0, "", ""
        return super().run_command(args, **kwargs)


@pytest.fixture(params=["dnf", "zypper"])
def host(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> BrokenRpmHost:
    fake = BrokenRpmHost(request.param)
    os_release = tmp_path / "os-release"
    os_release.write_text((DNF if request.param == "dnf" else ZYPPER).joinpath("os-release.lab").read_text())
    (tmp_path / "zypp" / "repos.d").mkdir(parents=True)
    (tmp_path / "zypp" / "repos.d" / "lab.repo").write_text(
        "[patchctl-lab]\nbaseurl=http://patchctl-repo:8080/rpm/\ngpgcheck=1\nrepo_gpgcheck=1\n"
    )
    monkeypatch.setattr(psl, "OS_RELEASE_PATHS", (str(os_release),))
    monkeypatch.setattr(psl, "ZYPP_ETC", str(tmp_path / "zypp"))
    monkeypatch.setattr(psl.ScanModule, "run_command", lambda self, a, **k: fake.run_command(a, **k))
    monkeypatch.setattr(psl.ScanModule, "get_bin_path", lambda self, a, **k: fake.get_bin_path(a))
    return fake


def test_every_scan_command_forces_the_checks_on(host: BrokenRpmHost, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_module({"verify_downloads": True}, capsys)
    assert "patchctl_scan" in result, result
    calls = host.tool_calls(host.mgr)
    assert {c[1] for c in calls}  # dnf: makecache, check-update, updateinfo, download, needs-restarting
    assert any("download" in c for c in calls), calls  # the download check ran
    for call in calls:
        assert not set(NEVER) & set(call), call
        if host.mgr == "dnf":
            assert call[1 : 1 + len(FORCED)] == FORCED, call
    assert list(psl.DNF_VERIFY_OPTIONS) == FORCED


@pytest.mark.parametrize(
    ("host", "answer", "reason"),
    [
        (
            "dnf",
            (1, "", recorded(DNF / "makecache_unsigned.stderr")),
            "integrity: dnf makecache: Error: Failed to download metadata for repo 'patchctl-lab': "
            "GPG verification is enabled, but GPG signature is not available.",
        ),
        (
            "dnf",
            (1, "", recorded(DNF / "makecache_unknown_key.stderr")),
            "integrity: dnf makecache: Error: Failed to download metadata for repo 'patchctl-lab': "
            "repomd.xml GPG signature verification error: Bad GPG signature",
        ),
        (
            "zypper",
            (4, recorded(ZYPPER / "refresh_unsigned.stdout"), recorded(ZYPPER / "refresh_unsigned.stderr")),
            "integrity: zypper refresh: - Signature verification failed for repomd.xml | "
            "File 'repomd.xml' from repository 'patchctl lab repository' is unsigned",
        ),
        (
            "zypper",
            (4, recorded(ZYPPER / "refresh_unknown_key.stdout"), recorded(ZYPPER / "refresh_unknown_key.stderr")),
            "integrity: zypper refresh: - Signature verification failed for repomd.xml | "
            "File 'repomd.xml' from repository 'patchctl lab repository' is signed with an unknown key "
            "'78283073B5AA0152'",
        ),
    ],
    indirect=["host"],  # each case runs on the fake host of its own package manager
)
def test_a_refresh_that_does_not_verify_is_an_integrity_failure(
    host: BrokenRpmHost, capsys: pytest.CaptureFixture[str], answer: tuple[int, str, str], reason: str
) -> None:
    host.answers["makecache" if host.mgr == "dnf" else "refresh"] = answer
    result = run_module({}, capsys)
    assert result["failed"] is True
    assert result["msg"].startswith(reason), result["msg"]
    assert "continue?" not in result["msg"].lower()  # zypper's question and answer left out
    # nothing listed from metadata that did not verify
    assert not [c for c in host.calls if "check-update" in c or "list-updates" in c]


def test_a_tampered_package_fails_the_download_check(host: BrokenRpmHost, capsys: pytest.CaptureFixture[str]) -> None:
    if host.mgr == "dnf":
        host.answers["download"] = (1, "", recorded(DNF / "install_tampered.stderr"))
        expected = "[MIRROR] patchctl-demo-app-1.1-1.noarch.rpm: Downloading successful, but checksum doesn't match."
    else:  # zypper exits 0 having discarded the file
        host.answers["download"] = (
            0,
            recorded(ZYPPER / "download_tampered.stdout"),
            recorded(ZYPPER / "download_tampered.stderr"),
        )
        expected = "Warning: Digest verification failed for file 'patchctl-demo-ssl-1.0-2.noarch.rpm'"
    result = run_module({"verify_downloads": True}, capsys)
    assert result["failed"] is True
    assert result["msg"].startswith("integrity: package download check: " + expected), result["msg"]
    if host.mgr == "zypper":  # into a throwaway package cache, not zypper's own
        (download,) = [c for c in host.calls if "download" in c]
        assert download[download.index("--pkg-cache-dir") + 1].startswith("/")
        assert "--pkg-cache-dir" in download and "/var/cache/zypp" not in " ".join(download)


@pytest.mark.parametrize(
    ("path", "text", "found"),
    [
        ("repos.d/other.repo", "[other]\nbaseurl=http://m/\ngpgcheck=0\n", "repos.d/other.repo: gpgcheck=0"),
        ("repos.d/other.repo", "[other]\nrepo_gpgcheck = off\n", "repos.d/other.repo: repo_gpgcheck=off"),
        ("zypp.conf", "[main]\npkg_gpgcheck = no\n", "zypp.conf: pkg_gpgcheck=no"),
    ],
)
@pytest.mark.parametrize("host", ["zypper"], indirect=True)  # dnf's checks are forced on its command line
def test_zypper_configuration_turning_a_check_off_is_refused(
    host: BrokenRpmHost, capsys: pytest.CaptureFixture[str], path: str, text: str, found: str
) -> None:
    assert host.mgr == "zypper"
    (Path(psl.ZYPP_ETC) / path).write_text(text)
    result = run_module({}, capsys)
    assert result["failed"] is True
    assert result["msg"].startswith("integrity: signature checks are turned off on this host: ")
    assert found in result["msg"]
    assert not host.calls  # refused before zypper ran at all


def test_zypper_configuration_left_as_shipped_passes() -> None:
    assert psl.insecure_zypp_conf("x", "# gpgcheck = off\n[main]\ngpgcheck = on\nrepo_gpgcheck=1\n") == []


# ---- the apply module ---------------------------------------------------------------------------


class FakeApplyModule:
    """What pal.Rpm needs of an AnsibleModule: commands answered from a table, failures raised."""

    def __init__(self, answers: dict[str, tuple[int, str, str]] | None = None) -> None:
        self.calls: list[list[str]] = []
        self.answers = answers or {}

    def run_command(self, args: list[str], **_kw: Any) -> tuple[int, str, str]:
        self.calls.append(list(args))
        for word, answer in self.answers.items():
            if word in args:
                return answer
        return 0, "", ""

    def fail_json(self, **kwargs: Any) -> None:
        raise Failed(kwargs)


class Failed(Exception):
    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result["msg"])
        self.result = result


UPDATES = [{"uid": "x:patchctl-demo-app:1.1-1", "name": "patchctl-demo-app", "version": "1.1-1"}]


@pytest.mark.parametrize("mgr", ["dnf", "zypper"])
def test_every_apply_command_forces_the_checks_on(mgr: str) -> None:
    module = FakeApplyModule()
    rpm = pal.Rpm(module, mgr)
    rpm.refresh()
    assert rpm.install(UPDATES) == (0, "")
    rpm.reboot_required()
    tools = [c for c in module.calls if os.path.basename(c[0]) == mgr]
    assert len(tools) == 3, module.calls
    for call in tools:
        assert not set(NEVER) & set(call), call
        if mgr == "dnf":
            assert call[1 : 1 + len(FORCED)] == FORCED, call
    assert list(pal.DNF_VERIFY_OPTIONS) == FORCED


def test_apply_names_a_tampered_package_as_integrity() -> None:
    module = FakeApplyModule({"install": (1, "", recorded(DNF / "install_tampered.stderr"))})
    rc, error = pal.Rpm(module, "dnf").install(UPDATES)
    assert rc == 1
    assert error.startswith("integrity: [MIRROR] patchctl-demo-app-1.1-1.noarch.rpm: Downloading successful, but")
    zypper = FakeApplyModule(
        {"install": (8, recorded(ZYPPER / "download_tampered.stdout"), recorded(ZYPPER / "download_tampered.stderr"))}
    )
    rc, error = pal.Rpm(zypper, "zypper").install(UPDATES)
    assert error == "integrity: Warning: Digest verification failed for file 'patchctl-demo-ssl-1.0-2.noarch.rpm'"


def test_apply_refresh_that_does_not_verify_installs_nothing() -> None:
    module = FakeApplyModule({"makecache": (1, "", recorded(DNF / "makecache_unsigned.stderr"))})
    with pytest.raises(Failed) as failed:
        pal.Rpm(module, "dnf").refresh()
    msg = failed.value.result["msg"]
    assert msg.startswith("integrity: dnf refresh: Error: Failed to download metadata"), msg
    assert msg.endswith("; nothing installed")
    assert failed.value.result["patchctl_apply"]["installed"] == []


def test_apply_refuses_a_zypper_configuration_turning_a_check_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "repos.d").mkdir()
    (tmp_path / "repos.d" / "lab.repo").write_text("[lab]\nbaseurl=http://m/\npkg_gpgcheck=0\n")
    monkeypatch.setattr(pal, "zypper_config_problems", lambda: pal_problems(tmp_path))
    module = FakeApplyModule()
    with pytest.raises(Failed) as failed:
        pal.Rpm(module, "zypper").check_config()
    assert failed.value.result["msg"] == (
        f"integrity: signature checks are turned off on this host: {tmp_path}/repos.d/lab.repo: pkg_gpgcheck=0; "
        "nothing installed"
    )
    assert not module.calls
    pal.Rpm(module, "dnf").check_config()  # dnf: forced on the command line, nothing to refuse


def pal_problems(etc: Path) -> list[str]:
    from ansible.module_utils.patchctl_linux import zypper_config_problems

    return list(zypper_config_problems(str(etc)))
