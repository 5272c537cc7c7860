"""The lab itself: hosts come up as real, separate machines and `lab down` leaves nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from patchctl.lab.fleet import Lab, listening_on

from .conftest import stop_stale_labs

pytestmark = [pytest.mark.integration, pytest.mark.lab]

SUBNET = os.environ.get("PATCHCTL_TEST_SUBNET2", "127.79")


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "patchctl", *args], capture_output=True, text=True, env=env, timeout=600, check=False
    )


def test_lab_up_status_reboot_down_leaves_nothing(tmp_path: Path) -> None:
    lab_dir = tmp_path / "lab"
    env = dict(os.environ, PATCHCTL_HOME=str(tmp_path), PATCHCTL_LAB_DIR=str(lab_dir))
    lab = Lab(lab_dir=lab_dir)
    stop_stale_labs(SUBNET)
    try:
        up = run_cli(env, "lab", "up", "--hosts", "2", "--subnet", SUBNET)
        assert up.returncode == 0, up.stderr
        assert str(lab.inventory_path) in up.stdout
        status = run_cli(env, "lab", "status", "--json")
        assert status.returncode == 0, status.stderr
        import json

        rows = json.loads(status.stdout)["hosts"]
        assert [r["reachable"] for r in rows] == [True, True]
        boot_ids = {r["name"]: r["boot_id"] for r in rows}
        assert len(set(boot_ids.values())) == 2, "each host has its own boot id"

        host = lab.hosts()[0]
        ssh = [
            "ssh",
            "-i",
            str(lab.key_path),
            "-o",
            f"UserKnownHostsFile={lab.known_hosts_path}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ControlPath=none",
            "-p",
            str(host.port),
            f"root@{host.address}",
        ]
        out = subprocess.run(
            [*ssh, "hostname; cat /proc/sys/kernel/random/boot_id; echo $$"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.split()
        assert out[0] == host.name
        assert out[1] == boot_ids[host.name]
        # the host sees its own PID namespace: its shell is not the machine's process
        assert int(out[2]) < 1000
        # the reboot stub restarts this host only, with a new boot id
        subprocess.run([*ssh, "reboot"], capture_output=True, text=True, timeout=60, check=False)
        deadline = time.monotonic() + 30
        while lab.boot_id(host.name) in (boot_ids[host.name], None) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert lab.boot_id(host.name) not in (boot_ids[host.name], None)
        assert lab.boot_id(lab.hosts()[1].name) == boot_ids[lab.hosts()[1].name], "the other host did not reboot"
        # the stub refuses to act outside a lab host
        stub = lab_dir / "base" / "usr/sbin/reboot"
        refused = subprocess.run(["/bin/sh", str(stub)], capture_output=True, text=True, check=False)
        assert refused.returncode == 1 and "refusing" in refused.stderr
    finally:
        down = run_cli(env, "lab", "down")
    assert down.returncode == 0, down.stderr
    assert lab.leftovers() == []
    assert listening_on(SUBNET) == []
    assert not any(str(lab_dir) in line for line in Path("/proc/self/mountinfo").read_text().splitlines())
