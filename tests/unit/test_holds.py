"""Package holds: the scan module reads apt-mark holds, dnf versionlock and zypper locks and names
the hold of each update it keeps back; the scan then reports it ``held`` (never missing) and the
store and ``patchctl report`` show it with its hold, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from click.testing import CliRunner

from patchctl.cli import cli
from patchctl.rules.normalize import host_scan
from patchctl.store import Store
from tests.unit.test_scan_module import psl
from tests.unit.test_store import T0

# /etc/dnf/plugins/versionlock.list as `dnf versionlock add` writes it
VERSIONLOCK = """\
# Added lock on Fri Dec  4 10:00:00 2026
openssl-1:3.0.7-27.el9.*
kernel-core-0:5.14.0-427.el9.*
!curl-0:7.76.1-29.el9.*
"""
# /etc/zypp/locks as `zypper addlock` writes it
ZYPP_LOCKS = """\

type: package
match_type: glob
case_sensitive: on
solvable_name: openssl*

type: pattern
solvable_name: devel_basis
"""


def test_hold_parsers() -> None:
    assert psl.parse_apt_showhold("openssl\nlibc6:i386\n\n") == ["libc6:i386", "openssl"]
    assert psl.parse_dnf_versionlock(VERSIONLOCK) == ["kernel-core", "openssl"]  # '!' excludes are no lock
    assert psl.parse_zypper_locks(ZYPP_LOCKS) == ["openssl*"]  # the pattern lock is no package


def test_held_updates_are_marked_with_their_hold() -> None:
    """Seen failing with mark_held matching names exactly (the zypper glob 'openssl*' missed)."""
    updates = [{"name": "openssl"}, {"name": "libssl3"}, {"name": "libc6:i386"}, {"name": "openssl-libs"}]
    psl.mark_held(updates[:3], ["openssl", "libc6"], psl.HOLD_APT)
    assert [u.get("held") for u in updates[:3]] == ["apt-mark hold", None, "apt-mark hold"]
    psl.mark_held(updates[3:], ["openssl*"], psl.HOLD_ZYPPER)
    assert updates[3]["held"] == "zypper lock"


def result(held: bool = True) -> dict[str, Any]:
    app = {
        "name": "patchctl-demo-app",
        "installed_version": "1.0-1",
        "version": "1.1-1",
        "arch": "all",
        "origin": "lab",
        "classification": "security",
        "major": False,
    }
    tool = {**app, "name": "patchctl-demo-tool", "version": "2.1-1", "installed_version": "2.0-1"}
    if held:
        app["held"] = "apt-mark hold"
    return {
        "patchctl_scan": {
            "schema": 1,
            "pkg_mgr": "apt",
            "os": {"family": "Debian", "distribution": "Debian", "version": "12", "codename": "bookworm"},
            "refreshed": True,
            "updates": [app, tool],
            "reboot_required": False,
            "holds": [{"name": "patchctl-demo-app", "by": "apt-mark hold"}] if held else [],
        }
    }


def test_a_held_update_is_not_missing() -> None:
    """Seen failing with normalize_scan keeping held updates among the updates (missing)."""
    scan = host_scan("web01", T0, result())
    assert [u.uid for u in scan.updates] == ["apt:patchctl-demo-tool:2.1-1"]
    assert [(u.uid, u.held) for u in scan.held] == [("apt:patchctl-demo-app:1.1-1", "apt-mark hold")]
    assert scan.holds == (("patchctl-demo-app", "apt-mark hold"),)


def test_report_shows_held_updates_with_their_hold(db_url: str) -> None:
    """The store keeps the last successful scan's holds; report --json lists the held update with
    state held and its hold, and counts only the other update missing. A later scan without the
    hold makes it missing again."""
    with Store.open(db_url) as store:
        run = store.start_run("scan", "inv", None, 1, now=T0)
        store.record_host_scan(run, host_scan("web01", T0, result()))
        store.finish_run(run, "ok", now=T0)
    now = (T0 + timedelta(hours=1)).isoformat()
    out = CliRunner().invoke(cli, ["--db", db_url, "--now", now, "report", "--json"])
    assert out.exit_code == 0, out.output
    (host,) = json.loads(out.output)["hosts"]
    assert host["held"] == [{"uid": "apt:patchctl-demo-app:1.1-1", "state": "held", "hold": "apt-mark hold"}]
    assert host["holds"] == [{"name": "patchctl-demo-app", "by": "apt-mark hold"}]
    assert host["missing"]["total"] == 1 and host["state"] == "missing"
    csv_out = CliRunner().invoke(cli, ["--db", db_url, "--now", now, "report", "--format", "csv", "--section", "held"])
    assert (
        csv_out.output.splitlines()[1]
        == "web01,apt:patchctl-demo-app:1.1-1,patchctl-demo-app,1.1-1,1.0-1,apt-mark hold"
    )

    later = T0 + timedelta(hours=2)
    with Store.open(db_url) as store:
        run = store.start_run("scan", "inv", None, 1, now=later)
        store.record_host_scan(run, host_scan("web01", later, result(held=False)))
        store.finish_run(run, "ok", now=later)
    out = CliRunner().invoke(
        cli, ["--db", db_url, "--now", (later + timedelta(hours=1)).isoformat(), "report", "--json"]
    )
    (host,) = json.loads(out.output)["hosts"]
    assert host["held"] == [] and host["missing"]["total"] == 2
