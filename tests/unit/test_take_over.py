"""``patchctl approve ID --take-over``: an application installed outside Chocolatey (an
``:unmanaged`` update of the registry scan) is never approved by the policy, only by an operator
with --take-over, and only where the catalog marks the application ``take_over: safe``; refused
otherwise with one line and exit 3. Its deploy entry says ``take_over``. On SQLite and PostgreSQL.

Seen failing: with the ``unmanaged`` check removed from ``policy.evaluate`` the VLC take-over is
approved by the policy; with ``check_take_over`` not called, Java (take_over: unsafe) is
approved; with ``take_over`` left out of ``deploy._contract_entry`` the role would never see it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from patchctl.cli import cli
from patchctl.decisions import decide, list_updates
from patchctl.deploy import _contract_entry
from patchctl.errors import PolicyBlocked
from patchctl.rules.model import HostScan, Update
from patchctl.rules.policy import STATE_APPROVED, STATE_MANUAL, parse_policy
from patchctl.store import Store
from patchctl.store.rollouts import RolloutUpdate

AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
POLICY = """\
---
baselines:
  windows:
    classifications: [security, other]
    approve_after_days: 0
"""
VLC = Update(
    "chocolatey", "vlc", "3.0.20", "other", installed_version="3.0.18", origin="vlc", unmanaged=True
)  # catalog: take_over: safe
JAVA = Update(
    "chocolatey", "jre8", "8.0.401", "security", installed_version="8.0.3810.9", origin="java", unmanaged=True
)  # catalog: unsafe


@pytest.fixture
def db(db_url: str) -> str:
    with Store.open(db_url) as store:
        run = store.start_run("scan", "inv", None, 1, now=AT)
        store.record_host_scan(
            run, HostScan("win01", "ok", AT, os_family="Windows", pkg_mgr="windows_update", updates=[VLC, JAVA])
        )
    return db_url


def test_the_policy_leaves_a_take_over_to_an_operator(db: str) -> None:
    rows = {r.entry.uid: r for r in list_updates(db, parse_policy(POLICY, "p.yml"), AT)}
    assert set(rows) == {"chocolatey:vlc:3.0.20:unmanaged", "chocolatey:jre8:8.0.401:unmanaged"}
    vlc = rows["chocolatey:vlc:3.0.20:unmanaged"]
    assert vlc.state == STATE_MANUAL and "--take-over" in vlc.reason


def test_approve_needs_take_over_and_the_catalogs_word(db: str) -> None:
    with pytest.raises(PolicyBlocked, match=r"installed outside Chocolatey; .* only --take-over does"):
        decide(db, ["chocolatey:vlc:3.0.20:unmanaged"], approve=True, now=AT)
    with pytest.raises(PolicyBlocked, match=r"does not mark Java runtime \(Oracle JRE 8\) take_over: safe"):
        decide(db, ["chocolatey:jre8:8.0.401:unmanaged"], approve=True, now=AT, take_over=True)
    (chosen,) = decide(db, ["chocolatey:vlc:3.0.20:unmanaged"], approve=True, now=AT, take_over=True)
    rows = {r.entry.uid: r for r in list_updates(db, parse_policy(POLICY, "p.yml"), AT)}
    vlc = rows[chosen.uid]
    assert (vlc.state, vlc.decided_by != "policy") == (STATE_APPROVED, True)
    assert "--take-over" in vlc.reason
    assert rows["chocolatey:jre8:8.0.401:unmanaged"].state == STATE_MANUAL  # nothing half-written


def test_the_command_refuses_in_one_line_with_exit_3(db: str, tmp_path: Path) -> None:
    out = CliRunner().invoke(cli, ["approve", "--db", db, "--take-over", "chocolatey:jre8:8.0.401:unmanaged"])
    assert out.exit_code == 3
    lines = out.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("patchctl: ") and "take_over: safe" in lines[0], out.output
    ok = CliRunner().invoke(cli, ["approve", "--db", db, "--take-over", "chocolatey:vlc:3.0.20:unmanaged"])
    assert (ok.exit_code, ok.output.strip()) == (0, "approved chocolatey:vlc:3.0.20:unmanaged")


def test_the_deploy_entry_says_take_over() -> None:
    def entry(uid: str) -> RolloutUpdate:
        return RolloutUpdate(
            update_id=1,
            uid=uid,
            source="chocolatey",
            name="vlc",
            version="3.0.20",
            classification="other",
            major=False,
            update_ref=None,
            kbs=(),
        )

    assert _contract_entry(entry("chocolatey:vlc:3.0.20:unmanaged"))["take_over"] is True
    assert _contract_entry(entry("chocolatey:vlc:3.0.20"))["take_over"] is False
