"""Package integrity without hosts: the scan and apply modules tell an integrity problem (unsigned
repository, unknown key, checksum mismatch, verification turned off on the host) from an outage,
from recorded apt output; the policy has no way to turn verification off; the lab builds its
broken repository copies. The same cases on real hosts: tests/integration/test_integrity_lab.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_scan_module import FakeHost, data, load_plugin_module, psl, run_module

ROOT = Path(__file__).resolve().parents[2]


pal = load_plugin_module("patch_apply_linux")


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeHost:
    fake = FakeHost(tmp_path)
    os_release = tmp_path / "os-release"
    os_release.write_text(data("os-release.debian12"), encoding="utf-8")
    (tmp_path / "etc-apt" / "sources.list.d").mkdir(parents=True)
    (tmp_path / "etc-apt" / "apt.conf.d").mkdir()
    monkeypatch.setattr(psl, "OS_RELEASE_PATHS", (str(os_release),))
    monkeypatch.setattr(psl, "REBOOT_REQUIRED", str(tmp_path / "reboot-required"))
    monkeypatch.setattr(psl, "APT_STAMP", str(tmp_path / "periodic" / "update-success-stamp"))
    monkeypatch.setattr(psl, "APT_ETC", str(tmp_path / "etc-apt"))
    monkeypatch.setattr(psl.ScanModule, "run_command", lambda self, a, **k: fake.run_command(a, **k))
    monkeypatch.setattr(psl.ScanModule, "get_bin_path", lambda self, a, **k: fake.get_bin_path(a))
    return fake


def test_unsigned_repository_is_an_integrity_failure(host: FakeHost, capsys: pytest.CaptureFixture[str]) -> None:
    host.update = [(100, data("apt_get_update_unsigned.stdout"), data("apt_get_update_unsigned.stderr"))]
    result = run_module({}, capsys)
    assert result["failed"] is True
    assert result["msg"].startswith("integrity: apt-get update: ")
    assert "is not signed" in result["msg"]
    assert not host.tool_calls("apt")  # nothing listed from lists that did not verify


def test_unreachable_repository_is_not_an_integrity_failure(host: FakeHost, capsys: pytest.CaptureFixture[str]) -> None:
    host.update = [(100, data("apt_get_update_unreach.stdout"), data("apt_get_update_unreach.stderr"))]
    result = run_module({}, capsys)
    assert result["failed"] is True
    assert result["msg"].startswith("apt-get update failed (rc=100): ")


def test_tampered_package_fails_the_scan_with_each_file_named(
    host: FakeHost, capsys: pytest.CaptureFixture[str]
) -> None:
    host.download = (100, "", data("apt_get_download_tampered.stderr"))
    result = run_module({"verify_downloads": True}, capsys)
    assert result["failed"] is True
    msg = result["msg"]
    assert msg.startswith("integrity: package download check: ")
    assert "Hash Sum mismatch: patchctl-demo-app_1.1-1_all.deb" in msg
    assert "File has unexpected size (855 != 816). Mirror sync in progress?: patchctl-demo-ssl_1.0-2_all.deb" in msg
    assert "unsandboxed" not in msg  # apt's harmless warning is not a problem
    assert "patchctl_scan" not in result


def test_download_check_can_be_skipped_and_is_skipped_in_check_mode(
    host: FakeHost, capsys: pytest.CaptureFixture[str]
) -> None:
    host.download = (100, "", data("apt_get_download_tampered.stderr"))
    assert "patchctl_scan" in run_module({"verify_downloads": False}, capsys)
    assert "patchctl_scan" in run_module({"_ansible_check_mode": True}, capsys)
    assert not [c for c in host.tool_calls("apt-get") if c[1] == "download"]


@pytest.mark.parametrize(
    ("path", "text", "found"),
    [
        ("sources.list", "deb [trusted=yes] http://mirror/debian bookworm main\n", "trusted=yes"),
        ("sources.list.d/x.list", "deb [arch=amd64 allow-insecure=yes] http://m/ d main\n", "allow-insecure=yes"),
        ("sources.list.d/x.sources", "Types: deb\nURIs: http://m/\nSuites: d\nTrusted: yes\n", "Trusted: yes"),
        ("apt.conf.d/99insecure", 'APT::Get::AllowUnauthenticated "true";\n', "AllowUnauthenticated"),
        ("apt.conf", 'Acquire::AllowInsecureRepositories "1";\n', "AllowInsecureRepositories"),
    ],
)
def test_verification_turned_off_on_the_host_fails_the_scan(
    host: FakeHost, capsys: pytest.CaptureFixture[str], path: str, text: str, found: str
) -> None:
    (Path(psl.APT_ETC) / path).write_text(text)
    result = run_module({}, capsys)
    assert result["failed"] is True
    assert result["msg"].startswith("integrity: signature checks are turned off on this host: ")
    assert found in result["msg"] and path in result["msg"]
    assert not host.calls  # refused before apt ran at all


@pytest.mark.parametrize(
    "text",
    [
        "deb http://mirror/debian bookworm main\n# deb [trusted=yes] http://old/ bookworm main\n",
        "deb [trusted=no signed-by=/usr/share/keyrings/k.gpg] http://m/ d main\n",
        "Types: deb\nURIs: http://m/\nSuites: d\nSigned-By: /usr/share/keyrings/k.gpg\n",
    ],
)
def test_ordinary_sources_pass(text: str) -> None:
    assert psl.insecure_sources("x", text) == []


def test_apt_conf_turning_checks_on_passes() -> None:
    assert psl.insecure_apt_conf("x", 'APT::Get::AllowUnauthenticated "false";\n// "true"\n') == []


def test_every_apt_command_forces_the_checks_on() -> None:
    for module in (psl, pal):
        opts = list(module.APT_VERIFY_OPTIONS)
        assert opts[1::2] == [
            "APT::Get::AllowUnauthenticated=false",
            "Acquire::AllowInsecureRepositories=false",
            "Acquire::AllowDowngradeToInsecureRepositories=false",
        ]
    source = (ROOT / "plugins" / "modules" / "patch_apply_linux.py").read_text()
    assert "--allow-unauthenticated" not in source and "trusted=yes" not in source


def test_apply_module_names_an_integrity_problem() -> None:
    tampered = data("apt_get_download_tampered.stderr")
    assert pal.integrity_problem(tampered).endswith("Hash Sum mismatch")
    assert "is not signed" in pal.integrity_problem(data("apt_get_update_unsigned.stderr"))
    assert "NO_PUBKEY" in pal.integrity_problem(data("apt_get_update_nokey.stderr"))
    assert pal.integrity_problem(data("apt_get_update_unreach.stderr")) is None
    assert pal.integrity_problem("E: Sub-process /usr/bin/dpkg returned an error code (1)") is None


@pytest.mark.parametrize(
    "field",
    ["verify_signatures: false", "allow_unauthenticated: true", "verify_packages: false"],
)
def test_policy_cannot_turn_verification_off(tmp_path: Path, field: str) -> None:
    policy = tmp_path / "policy.yml"
    policy.write_text(
        "---\nbaselines:\n  debian:\n    classifications: [security]\n"
        f"{field}\n"
        "waves:\n  - {name: fleet, hosts: all}\n"
    )
    db = f"sqlite:///{tmp_path / 's.db'}"
    proc = subprocess.run(
        [sys.executable, "-m", "patchctl", "--policy", str(policy), "--db", db, "updates"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 2, proc
    assert "unknown field" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
