"""Every compliance state on real lab hosts, and ``verify`` and ``report`` agreeing host by host.

One store, two looks. First after a deploy in the servers' window (lab-nightly): a server
rebooted (compliant), a client that never reboots by itself (reboot pending), a server
downgraded by hand (missing) and a client powered off during verify's rescan (unreachable).
Then a scan of the two servers, one with a role variable that fails its scan (failed), while
the client scanned earlier ages past ``stale_days`` under ``--now`` (stale), and an inventory
host no scan ever reached (never scanned: ``verify --no-scan`` knows it from the inventory, the
report only lists hosts the store knows).

Breaking the one rule shows here: with verify's old order (stale first, on the last successful
scan) put back into verify, the second look fails with "cli-02: verify stale, report unreachable".
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from patchctl.lab import faults

from .conftest import LabEnv
from .test_reboot_lab import INSIDE, deployed, ok

pytestmark = [pytest.mark.integration, pytest.mark.lab]

GHOST = "new-01"  # in the inventory, never scanned


def states(verify: Any, report: Any) -> tuple[dict[str, str], dict[str, str]]:
    """Each host's state by verify and by the report; asserts they agree on every shared host."""
    assert isinstance(verify, dict) and isinstance(report, dict)
    by_verify = {h["host"]: h["state"] for h in verify["hosts"]}
    by_report = {h["name"]: h["state"] for h in report["hosts"]}
    for host in by_verify.keys() & by_report.keys():
        assert by_verify[host] == by_report[host], f"{host}: verify {by_verify[host]}, report {by_report[host]}"
    # the counts over the hosts both know agree too
    shared = by_verify.keys() & by_report.keys()
    assert Counter(by_verify[h] for h in shared) == Counter(by_report[h] for h in shared)
    return by_verify, by_report


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_each_compliance_state_the_same_in_verify_and_report(lab_env: LabEnv, tmp_path: Path) -> None:
    pc, data = deployed(lab_env, tmp_path, INSIDE)
    assert data["_code"] == 0, data
    lab_env.ssh(
        "srv-02",
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --allow-downgrades patchctl-demo-app=1.0-1",
    )
    faults.power_off(lab_env.lab, "cli-02")
    try:
        first_verify = ok(pc("verify", "--json", now=INSIDE), code=1).json()
    finally:
        faults.power_on(lab_env.lab, "cli-02")
    first_report = ok(pc("report", "--json", now=INSIDE)).json()
    by_verify, by_report = states(first_verify, first_report)
    expected = {"srv-01": "compliant", "cli-01": "reboot_pending", "srv-02": "missing", "cli-02": "unreachable"}
    assert by_verify == expected
    assert by_report == expected
    assert isinstance(first_verify, dict)
    delivery = {h["host"]: h for h in first_verify["hosts"]}
    assert delivery["srv-02"]["delivery"] == "undelivered"
    assert delivery["srv-02"]["undelivered"] == ["apt:patchctl-demo-app:1.1-1"]
    assert delivery["srv-01"]["delivery"] == "delivered"

    # second look: srv-02's scan fails on a wrong role variable, a host nobody scanned is listed
    inventory = yaml.safe_load(lab_env.inventory.read_text())
    hosts = inventory["all"]["hosts"]
    hosts["srv-02"]["patch_scan_linux_refresh"] = "maybe"
    hosts[GHOST] = {**hosts["srv-01"], "ansible_host": "127.0.0.1", "ansible_port": 9}
    bad = tmp_path / "inventory.yml"
    bad.write_text(yaml.safe_dump(inventory))
    pc.inventory = bad
    scanned = pc("scan", "--limit", "srv-01,srv-02", "--json")
    assert scanned.code == 1, scanned.stderr
    # --now between cli-01's last scan (verify's rescan) + stale_days and the servers' scan + stale_days
    seen = ok(pc("report", "--json")).json()
    assert isinstance(seen, dict)
    last = {h["name"]: _at(h["last_scan_at"]) for h in seen["hosts"]}
    # (times are kept to the microsecond: a second apart leaves room on both sides of the midpoint)
    assert min(last["srv-01"], last["srv-02"]) - last["cli-01"] > timedelta(seconds=1)
    now = last["cli-01"] + (min(last["srv-01"], last["srv-02"]) - last["cli-01"]) / 2 + timedelta(days=7)
    second_verify = ok(pc("verify", "--no-scan", "--json", now=now), code=1).json()
    second_report = ok(pc("report", "--json", now=now)).json()
    by_verify, by_report = states(second_verify, second_report)
    expected = {"srv-01": "compliant", "srv-02": "failed", "cli-01": "stale", "cli-02": "unreachable"}
    assert by_report == expected
    assert by_verify == {**expected, GHOST: "never_scanned"}
