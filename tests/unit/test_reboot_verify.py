"""The reboot plan and wave grouping, verify's delivery, and the reboots/verify store (real SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from patchctl.ansible.inventory import Inventory
from patchctl.errors import ConfigError
from patchctl.reboot import plan_host, wave_groups
from patchctl.rules.maintenance import parse_windows
from patchctl.rules.model import HostScan
from patchctl.rules.policy import Concurrency, Wave
from patchctl.store import MissingUpdateRow, Store
from patchctl.store.reboots import REBOOT_FAILED, REBOOT_OK, RebootStore, VerifyRow
from patchctl.store.rollouts import RolloutUpdate
from patchctl.verify import DeliveryFacts, below_frozen, delivery

NOW = datetime(2025, 6, 1, 2, 0, tzinfo=UTC)
WINDOWS = parse_windows([{"name": "nightly", "start": "0 1 * * *", "duration": "4h"}], "p.yml")


def inventory() -> Inventory:
    return Inventory.from_ansible_json(
        "inv.yml",
        {
            "_meta": {
                "hostvars": {
                    "srv-01": {"patch_role": "server", "patch_window": "nightly"},
                    "srv-02": {"patch_role": "server", "patch_window": "nightly"},
                    "srv-03": {"patch_role": "server", "patch_window": "weekly"},
                    "db-01": {"patch_role": "server", "patch_window": "nightly", "patch_reboot": "never"},
                    "cli-01": {"patch_role": "client"},
                    "cli-02": {"patch_role": "client", "patch_window": "nightly", "patch_reboot": "if_required"},
                    "bad": {"patch_role": "server", "patch_reboot": "sometimes"},
                }
            },
            "pilot": {"hosts": ["srv-01", "cli-01"]},
        },
    )


def test_plan_host_by_role_window_and_override() -> None:
    inv = inventory()
    plans = {h: plan_host(inv, h, WINDOWS, NOW) for h in ("srv-01", "srv-03", "db-01", "cli-01", "cli-02")}
    assert plans["srv-01"].action == "reboot"
    assert (plans["srv-03"].action, plans["srv-03"].reason) == (
        "pending",
        "maintenance window 'weekly' is not defined in the policy",
    )
    assert (plans["db-01"].mode, plans["db-01"].action) == ("never", "pending")
    assert (plans["cli-01"].mode, plans["cli-01"].action) == ("never", "pending")
    assert (plans["cli-02"].mode, plans["cli-02"].action) == ("if_required", "reboot")
    assert plan_host(inv, "srv-01", WINDOWS, NOW + timedelta(hours=10)).action == "pending"
    assert plan_host(inv, "srv-01", WINDOWS, NOW, reboot_required=False).action == "none"
    with pytest.raises(ConfigError, match="host bad: patch_reboot must be one of"):
        plan_host(inv, "bad", WINDOWS, NOW)


def test_wave_groups_use_each_waves_concurrency() -> None:
    inv = inventory()
    waves = (
        Wave("pilot", "pilot", max_concurrency=Concurrency(1)),
        Wave("fleet", "all", max_concurrency=Concurrency(50, percent=True)),
    )
    groups = wave_groups(inv, waves, ["srv-01", "srv-02", "db-01", "cli-02"])
    # fleet holds the 5 hosts the pilot does not: 50% of 5 -> 3 at a time
    assert groups == [("pilot", ["srv-01"], 1), ("fleet", ["cli-02", "db-01", "srv-02"], 3)]
    only_pilot = (Wave("pilot", "pilot", max_concurrency=Concurrency(2)), Wave("none", "nosuchgroup"))
    groups = wave_groups(inv, only_pilot, ["srv-01", "srv-02"])
    assert groups == [("pilot", ["srv-01"], 2), ("(no wave)", ["srv-02"], 1)]


def facts(**kw: object) -> DeliveryFacts:
    base: dict[str, object] = {
        "host": "h",
        "scan_ok": True,
        "frozen": frozenset({"apt:a:2", "apt:b:2"}),
        "missing": frozenset({"apt:c:9"}),
    }
    base.update(kw)
    return DeliveryFacts(**base)  # type: ignore[arg-type]  # test data built from a loose dict


def test_delivery_of_what_the_started_waves_froze() -> None:
    """Breaking it: counting every missing update instead of the frozen ones makes the first
    host undelivered; dropping the scan_ok check makes the unreachable one delivered."""
    assert delivery(facts()).state == "delivered"  # c is missing but not frozen
    d = delivery(facts(missing=frozenset({"apt:a:2", "apt:c:9"})))
    assert (d.state, d.undelivered, dict(d.deploy_failed)) == ("undelivered", ("apt:a:2",), {})
    failed = delivery(facts(missing=frozenset({"apt:a:2"}), deploy_failed={"apt:a:2": "postinst failed"}))
    assert (failed.state, dict(failed.deploy_failed)) == ("deploy_failed", {"apt:a:2": "postinst failed"})
    # a failed deploy of an update installed since then is delivered
    assert delivery(facts(deploy_failed={"apt:a:2": "postinst failed"})).state == "delivered"
    unknown = delivery(facts(scan_ok=False, missing=frozenset({"apt:b:2"})))
    assert (unknown.state, unknown.undelivered) == ("unknown", ("apt:b:2",))  # the last ok scan's word
    assert delivery(facts(frozen=frozenset())).state == "nothing_started"


def test_reboot_store_pending_attempts_and_verify(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        run = store.start_run("scan", "inv", None, 2)
        for host, role in (("srv-01", "server"), ("cli-01", "client")):
            store.record_host_scan(
                run,
                HostScan(host, "ok", NOW, reboot_required=host == "cli-01", patch_role=role, patch_window="nightly"),
            )
        rs = RebootStore(store)
        assert [(p.host, p.patch_role, p.pending_since) for p in rs.pending()] == [("cli-01", "client", NOW)]
        later = NOW + timedelta(hours=1)
        rs.mark_reboot_pending("srv-01", later)
        rs.mark_reboot_pending("cli-01", later)  # already pending: keeps its first time
        assert {p.host: p.pending_since for p in rs.pending()} == {"cli-01": NOW, "srv-01": later}

        first = rs.start_reboot("srv-01", "deploy", "nightly", later, later)
        assert rs.reboots("srv-01")[0].status == "running"
        rs.finish_reboot(first, REBOOT_FAILED, later, boot_id_before="a", error="timed out")
        (p,) = rs.pending(["srv-01"])
        assert (p.last_attempt_status, p.last_attempt_error) == ("failed", "timed out")
        second = rs.start_reboot("srv-01", "cron", "nightly", later, later)
        rs.finish_reboot(second, REBOOT_OK, later, boot_id_before="a", boot_id_after="b", elapsed_seconds=3)
        assert [p.host for p in rs.pending()] == ["cli-01"]
        assert [(r.trigger, r.status, r.boot_id_after) for r in rs.reboots("srv-01")] == [
            ("deploy", "failed", None),
            ("cron", "ok", "b"),
        ]
        with pytest.raises(ValueError, match="bad status"):
            rs.finish_reboot(second, "running", later)

        rs.record_verify([VerifyRow("srv-01", "missing", "x", NOW, missing=("apt:a:2",))])
        rs.record_verify(
            [VerifyRow("srv-01", "compliant", "ok", later), VerifyRow("cli-01", "reboot_pending", "r", later)]
        )
        states = {v.host: (v.state, v.missing) for v in rs.host_states()}
        assert states == {"srv-01": ("compliant", ()), "cli-01": ("reboot_pending", ())}


def _approved(uid: str, source: str, name: str, version: str) -> RolloutUpdate:
    return RolloutUpdate(
        update_id=1, uid=uid, source=source, name=name, version=version, classification="security",
        major=False, update_ref=None, kbs=(),
    )  # fmt: skip


def _missing(source: str, name: str, version: str, installed: str | None) -> MissingUpdateRow:
    return MissingUpdateRow(
        host="h", uid=f"{source}:{name}:{version}", source=source, name=name, version=version,
        installed_version=installed, classification="security", severity=None, major=False, reboot_hint=False,
        cves=(), first_seen_at=NOW, last_seen_at=NOW, catalog_first_seen_at=NOW,
    )  # fmt: skip


def test_an_approved_update_superseded_in_the_repository_still_counts_when_the_host_is_below_it() -> None:
    # approved: a 1.1-1 (apt), r 2.0-1 (dnf), choco 5.0 (no version order); the repositories now
    # offer a 1.2-1 and r 2.1-1, so scans report those as missing, with what is installed
    details = {
        "apt:a:1.1-1": _approved("apt:a:1.1-1", "apt", "a", "1.1-1"),
        "dnf:r:2.0-1": _approved("dnf:r:2.0-1", "dnf", "r", "2.0-1"),
        "chocolatey:c:5.0": _approved("chocolatey:c:5.0", "chocolatey", "c", "5.0"),
    }
    downgraded = [_missing("apt", "a", "1.2-1", "1.0-1"), _missing("dnf", "r", "2.1-1", "1.9-3")]
    assert below_frozen(details, details, downgraded) == {"apt:a:1.1-1", "dnf:r:2.0-1"}
    # at the approved version (or newer), or not installed at all: not below
    current = [_missing("apt", "a", "1.2-1", "1.1-1"), _missing("dnf", "r", "2.1-1", "2.0-1~1"),
               _missing("chocolatey", "c", "6.0", "4.0"), _missing("apt", "other", "2", "1")]  # fmt: skip
    assert below_frozen(details, details, current) == {"dnf:r:2.0-1"}  # 2.0-1~1 sorts before 2.0-1
    host = facts(frozen=frozenset(details), missing=frozenset({"apt:a:1.2-1"}), below_frozen={"apt:a:1.1-1"})
    d = delivery(host)
    assert (d.state, d.undelivered) == ("undelivered", ("apt:a:1.1-1",))
