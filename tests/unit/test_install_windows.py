"""Install windows: which window a host installs in (host variable > wave > role), open or closed
by the maintenance windows' own DST rules, the policy's ``install_window:`` fields, ``windows``
listing them, and a deploy outside every host's window recording nothing (real store, SQLite and
PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from patchctl.cli import cli
from patchctl.deploy import DeployOptions, deploy
from patchctl.errors import ConfigError, PolicyBlocked
from patchctl.rules import waves as rollout
from patchctl.rules.clock import Clock
from patchctl.rules.install_windows import FROM_HOST, FROM_ROLE, FROM_WAVE, InstallWindow, install_window_for, waiting
from patchctl.rules.model import HOST_OK
from patchctl.rules.policy import Policy, Wave, parse_policy
from patchctl.store import Store
from patchctl.store.rollouts import Decision, RolloutStore
from tests.unit.test_store import OPENSSL, ok_scan

BERLIN = ZoneInfo("Europe/Berlin")

POLICY = """\
baselines:
  debian: {classifications: [security]}
windows:
  - name: nightly
    start: "0 1 * * *"
    duration: 2h
    timezone: Europe/Berlin
  - name: sun-02
    start: "0 2 * * 0"
    duration: 3h
roles:
  server: {install_window: sun-02}
waves:
  - {name: pilot, hosts: all, bake_days: 0, install_window: nightly}
  - {name: fleet, hosts: all, bake_days: 0}
"""


def policy(text: str = POLICY) -> Policy:
    return parse_policy(text, "p.yml")


def berlin(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=BERLIN)


def test_the_host_variable_wins_over_the_wave_and_the_wave_over_the_role() -> None:
    """Seen failing with the wave checked before the host variable (source ``wave``, not ``host``)."""
    roles = {"server": "sun-02"}
    assert install_window_for("w-host", "w-wave", "server", roles) == InstallWindow("w-host", FROM_HOST)
    assert install_window_for(None, "w-wave", "server", roles) == InstallWindow("w-wave", FROM_WAVE)
    assert install_window_for(None, None, "server", roles) == InstallWindow("sun-02", FROM_ROLE)
    assert install_window_for(None, None, "client", roles) is None  # installs at any time
    assert install_window_for("", None, None, roles) is None


def test_inside_and_outside_the_window_across_the_dst_change() -> None:
    """01:00-03:00 Berlin: open at 01:30 local on both sides of the spring change; outside, it
    waits with the next opening, 23:00 UTC in summer time (00:00 UTC in winter time).
    Seen failing with waiting() returning None unconditionally (``assert None is not None``)."""
    nightly = policy().windows["nightly"]
    assert waiting(nightly, berlin(2026, 3, 28, 1, 30)) is None
    assert waiting(nightly, berlin(2026, 3, 29, 1, 30)) is None  # the night of the change
    before = waiting(nightly, berlin(2026, 3, 28, 12))
    assert before is not None and before.next_open == datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
    after = waiting(nightly, berlin(2026, 3, 29, 12))
    assert after is not None and after.next_open == datetime(2026, 3, 29, 23, 0, tzinfo=UTC)
    assert after.reason == "waiting for install window nightly (opens 2026-03-29T23:00:00Z)"
    # the window lasts 2 hours of real time: on the night of the change it ends at 04:00 CEST
    assert waiting(nightly, berlin(2026, 3, 29, 3, 30)) is None
    assert waiting(nightly, berlin(2026, 3, 29, 4, 0)) is not None  # the end is outside
    assert waiting(nightly, berlin(2026, 3, 30, 3, 0)) is not None


def test_the_policy_reads_wave_and_role_install_windows() -> None:
    pol = policy()
    assert pol.wave_install_window("pilot") == "nightly"
    assert pol.wave_install_window("fleet") is None
    assert pol.role_install_windows == {"server": "sun-02"}
    # frozen into a rollout and back
    assert Wave.from_dict(pol.waves[0].as_dict()) == pol.waves[0]
    assert "install_window" not in pol.waves[1].as_dict()


@pytest.mark.parametrize(
    ("replace", "with_", "expected"),
    [
        (
            "install_window: nightly}",
            "install_window: nope}",
            "policy file p.yml, line 14: waves[0] (pilot).install_window: window 'nope' is not defined in windows:",
        ),
        (
            "{install_window: sun-02}",
            "{install_window: nope}",
            "policy file p.yml, line 12: roles.server.install_window: window 'nope' is not defined in windows:",
        ),
        ("{install_window: sun-02}", "{window: sun-02}", "roles.server.window: unknown field"),
        ("{install_window: sun-02}", "{}", "roles.server.install_window: missing"),
    ],
)
def test_install_window_errors_name_file_line_and_field(replace: str, with_: str, expected: str) -> None:
    """Seen failing with the undefined-window check removed (``DID NOT RAISE ConfigError``)."""
    with pytest.raises(ConfigError) as exc:
        policy(POLICY.replace(replace, with_))
    assert expected in str(exc.value)


@pytest.mark.parametrize(("results", "allowed"), [({"web01": "ok"}, True), ({"web01": "ok", "web02": "failed"}, False)])
def test_a_wave_halted_by_waiting_hosts_alone_may_be_deployed_again(results: dict[str, str], allowed: bool) -> None:
    """So that cron's ``rollout promote --deploy`` resumes it once the window opens; a failed
    host still halts it. Seen failing without the waiting case in can_promote (``(False, False) == (True, True)``)."""
    rec = rollout.WaveRecord(
        0, Wave("pilot", "all"), state=rollout.HALTED, hosts=("web01", "web02", "web03"), results=results
    )
    p = rollout.can_promote([rec], 0, datetime(2026, 3, 1, tzinfo=UTC))
    assert (p.allowed, p.already) == (allowed, allowed)


def _store(db_url: str, hosts: tuple[str, ...], waves: list[Wave]) -> int:
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    with Store.open(db_url) as store:
        run = store.start_run("scan", "inv", None, len(hosts), now=t0)
        for host in hosts:
            store.record_host_scan(run, ok_scan(host, t0, [OPENSSL]))
        store.finish_run(run, "ok", now=t0)
        rs = RolloutStore(store)
        entries = rs.catalog()
        rs.record_decisions([(e, Decision("approved", "tester", "test", t0), False) for e in entries])
        return rs.create_rollout(t0, "tester", "p.yml", waves, entries)


def test_a_deploy_outside_every_hosts_window_waits_and_records_nothing(db_url: str, tmp_path: Path) -> None:
    """web01 by its role (sun-02), web02 by its host variable (nightly) over the wave's: both
    closed, so nothing runs: exit 3 naming the window and its next opening, the wave still
    pending, no deploy run. Seen failing with the install-window step left out of the deploy
    (``DID NOT RAISE PolicyBlocked``: it went on to run the playbook)."""
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "all:\n  hosts:\n"
        "    web01: {patch_role: server}\n"
        "    web02: {patch_role: server, patch_install_window: nightly}\n"
    )
    pol = policy(POLICY.replace(", install_window: nightly", ""))
    rid = _store(db_url, ("web01", "web02"), list(pol.waves))
    now = berlin(2026, 3, 4, 12)  # a Wednesday noon: neither window is open
    opts = DeployOptions(inventory=str(inventory), db_url=db_url, clock=Clock(now), policy=pol)
    with pytest.raises(PolicyBlocked) as exc:
        deploy(opts)
    head = f"rollout {rid}: wave pilot: nothing deployed: 2 host(s) waiting for install window "
    assert str(exc.value).startswith(head)
    with Store.open(db_url) as store:
        r = RolloutStore(store).rollout(rid)
        assert r.waves[0].state == rollout.PENDING and not r.results
        assert not any(res.status == HOST_OK for res in r.results.values())


def test_a_host_window_the_policy_does_not_define_is_a_config_error(db_url: str, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all:\n  hosts:\n    web01: {patch_install_window: nope}\n")
    pol = policy()
    _store(db_url, ("web01",), list(pol.waves))
    opts = DeployOptions(inventory=str(inventory), db_url=db_url, clock=Clock(berlin(2026, 3, 4, 12)), policy=pol)
    with pytest.raises(ConfigError) as exc:
        deploy(opts)
    assert str(exc.value) == f"{inventory}: web01: patch_install_window: window 'nope' is not defined in p.yml"


def test_windows_lists_the_install_windows_in_use(tmp_path: Path, patchctl_home: Path) -> None:
    """Seen failing with the install_hosts rows left out (no 'install window of' line)."""
    inventory, pol = tmp_path / "inventory.yml", tmp_path / "policy.yml"
    inventory.write_text(
        "all:\n  hosts:\n"
        "    srv-01: {patch_role: server, patch_window: nightly}\n"
        "    cli-01: {patch_role: client, patch_install_window: nightly}\n"
    )
    pol.write_text(POLICY)
    args = ["--policy", str(pol), "-i", str(inventory), "--now", "2026-03-04T12:00:00Z", "windows"]
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert "  install window of: wave pilot, cli-01 (host)" in lines
    assert "  install window of: srv-01 (role)" in lines
    data = json.loads(CliRunner().invoke(cli, [*args, "--json"]).output)
    assert {w["name"]: w["install_hosts"] for w in data["windows"]} == {
        "nightly": ["cli-01 (host)"],
        "sun-02": ["srv-01 (role)"],
    }
    inventory.write_text("all:\n  hosts:\n    srv-01: {patch_install_window: nope}\n")
    bad = CliRunner().invoke(cli, args)
    assert bad.exit_code == 2
