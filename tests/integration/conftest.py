"""Integration fixtures: a real lab of Debian hosts reached over real SSH."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from patchctl.lab.fleet import Lab

LAB_SUBNET = os.environ.get("PATCHCTL_TEST_SUBNET", "127.78")
# The subnet of the labs a test module makes for itself, one after the other: never the session
# lab's, which making one would stop (own_lab stops whatever still runs on its subnet).
OWN_LAB_SUBNET = os.environ.get("PATCHCTL_TEST_SUBNET2", "127.79")
LAB_HOSTS = int(os.environ.get("PATCHCTL_TEST_LAB_HOSTS", "4"))


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> object:
        return json.loads(self.stdout)


@dataclass
class LabEnv:
    lab: Lab
    home: Path
    env: dict[str, str]

    @property
    def inventory(self) -> Path:
        return self.lab.inventory_path

    def cli(self, *args: str, db: Path | None = None, timeout: int = 600) -> CliResult:
        cmd = [sys.executable, "-m", "patchctl"]
        if db is not None:
            cmd += ["--db", f"sqlite:///{db}"]
        cmd += list(args)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=timeout, check=False)
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    def ssh(self, host: str, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command on a lab host over plain ssh, independently of patchctl."""
        h = self.lab.host(host)
        proc = subprocess.run(
            [
                "ssh",
                "-i",
                str(self.lab.key_path),
                "-o",
                f"UserKnownHostsFile={self.lab.known_hosts_path}",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "ControlMaster=no",
                "-o",
                "ControlPath=none",
                "-p",
                str(h.port),
                f"root@{h.address}",
                command,
            ],
            # not the test run's stdin: ssh makes its stdin non-blocking while it runs, and that
            # flag belongs to the open file, shared with every process started beside it
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"ssh {host} {command!r} failed: {proc.stderr}")
        return proc


@contextlib.contextmanager
def own_lab(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    subnet: str,
    hosts: int,
    *,
    dnf_hosts: int = 0,
    zypper_hosts: int = 0,
    clear: tuple[str, ...] = ("PATCHCTL_DB", "PATCHCTL_POLICY", "PATCHCTL_NOW"),
) -> Iterator[LabEnv]:
    """A lab of its own on ``subnet`` with a home of its own (``name``), the environment's
    ``clear`` settings removed; taken down afterwards, and checked to leave nothing behind."""
    if os.geteuid() != 0:
        pytest.fail("the lab tests need root (they build namespaced hosts)")
    if subnet == LAB_SUBNET and name != SESSION_LAB:
        pytest.fail(f"lab {name}: subnet {subnet} is the session lab's (use OWN_LAB_SUBNET)")
    home = tmp_path_factory.mktemp(name)
    lab = Lab(lab_dir=home / "lab")
    env = dict(os.environ)
    env.update(
        {"PATCHCTL_HOME": str(home), "PATCHCTL_LAB_DIR": str(lab.dir), "PATCHCTL_INVENTORY": str(lab.inventory_path)}
    )
    for key in clear:
        env.pop(key, None)
    stop_stale_labs(subnet)
    try:
        lab.up(hosts, subnet=subnet, dnf_hosts=dnf_hosts, zypper_hosts=zypper_hosts)
        yield LabEnv(lab=lab, home=home, env=env)
    finally:
        lab.down()
        left = lab.leftovers()
        assert not left, f"lab down left things behind: {left}"


SESSION_LAB = "patchctl-home"


@pytest.fixture(scope="session")
def lab_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabEnv]:
    with own_lab(tmp_path_factory, SESSION_LAB, LAB_SUBNET, LAB_HOSTS, clear=("PATCHCTL_DB",)) as env:
        yield env


def stop_stale_labs(*subnets: str) -> None:
    """A test run that was killed can leave its lab up: stop labs on the test subnets first."""
    from patchctl.lab.fleet import running_labs

    for other in running_labs():
        if other.subnet() in subnets:
            other.down()
