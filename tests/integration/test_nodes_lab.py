"""Execution nodes on real lab hosts: two lab hosts bootstrapped as nodes (offline, from this
controller's wheels), each reaching its own subset of the lab; a scan through them stores the same
results as a local scan; a node powered off mid-run leaves its hosts unreachable, the rest complete.

Its own small lab on PATCHCTL_TEST_SUBNET2 (default 127.79), so the session lab stays as it is.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from patchctl.lab import faults
from patchctl.lab.fleet import Lab
from patchctl.lab.repo import SLOW_MARKER, SLOW_SECONDS_FILE
from patchctl.store import Store
from patchctl.store.rollouts import RolloutStore
from tests.integration.conftest import stop_stale_labs
from tests.integration.test_crash_lab import APT
from tests.integration.test_rollout_lab import APPROVED, BASE, write_policy
from tests.pg import pg_base_url, pg_url  # noqa: F401 - fixtures, used by name

pytestmark = [pytest.mark.integration, pytest.mark.lab]

SUBNET = os.environ.get("PATCHCTL_TEST_SUBNET2", "127.79")


@dataclass
class NodeLab:
    lab: Lab
    env: dict[str, str]
    inventory: Path
    nodes: tuple[str, str]
    sites: dict[str, list[str]]  # node -> the hosts it runs for

    def cli(self, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "patchctl", *args],
            capture_output=True, text=True, env=self.env, timeout=timeout, check=False,
        )  # fmt: skip


@pytest.fixture(scope="module")
def node_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeLab]:
    if os.geteuid() != 0:
        pytest.fail("the lab tests need root (they build namespaced hosts)")
    home = tmp_path_factory.mktemp("patchctl-nodes")
    lab = Lab(lab_dir=home / "lab")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATCHCTL_")}
    env.update({"PATCHCTL_HOME": str(home), "PATCHCTL_LAB_DIR": str(lab.dir)})
    stop_stale_labs(SUBNET)
    try:
        lab.up(5, subnet=SUBNET)
        names = [h.name for h in lab.hosts()]
        node_a, node_b = names[0], names[1]
        sites = {node_a: names[2:4], node_b: names[4:]}
        data = yaml.safe_load(lab.inventory_path.read_text())
        hosts = data["all"]["hosts"]
        for node, members in sites.items():
            for host in members:
                hosts[host]["patchctl_execution_node"] = node
        inventory = home / "nodes.yml"
        inventory.write_text(yaml.safe_dump(data, sort_keys=False))
        env["PATCHCTL_INVENTORY"] = str(inventory)
        yield NodeLab(lab, env, inventory, (node_a, node_b), sites)
    finally:
        lab.down()
        assert not lab.leftovers()


def _compliance(url: str, hosts: list[str]) -> dict[str, tuple[str, tuple[str, ...], bool]]:
    with Store.open(url) as store:
        missing: dict[str, list[str]] = {}
        for m in store.missing_updates():
            missing.setdefault(m.host, []).append(m.uid)
        return {
            r.host: (r.reachability, tuple(sorted(missing.get(r.host, []))), r.reboot_required)
            for r in store.host_compliance(hosts)
        }


def test_bootstrap_then_scan_through_nodes_equals_a_local_scan(
    node_lab: NodeLab, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    shared_db = str(request.getfixturevalue("pg_url"))
    started = time.monotonic()
    boot = node_lab.cli("node", "bootstrap", *node_lab.nodes, "--json")
    assert boot.returncode == 0, boot.stderr
    done = json.loads(boot.stdout)
    assert [d["node"] for d in done] == list(node_lab.nodes)
    for d in done:
        assert d["forks"] >= 1 and d["cores"] >= 1
    print(f"bootstrap of 2 nodes: {time.monotonic() - started:.1f} s")
    node_host = node_lab.lab.host(node_lab.nodes[0])
    listed = node_lab.cli("node", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    parts = {p["node"]: p["hosts"] for p in json.loads(listed.stdout)}
    assert sorted(parts[node_lab.nodes[0]]) == sorted(node_lab.sites[node_lab.nodes[0]])
    assert node_host.name in parts["(control node)"]

    targets = [h for members in node_lab.sites.values() for h in members]
    local_db = f"sqlite:///{tmp_path / 'local.db'}"
    local_inv = node_lab.lab.inventory_path  # the same hosts, no execution nodes
    local = node_lab.cli("--db", local_db, "-i", str(local_inv), "scan", "--limit", ",".join(targets), "--json")
    assert local.returncode == 0, local.stderr
    # Through the nodes, into PostgreSQL: the store several control nodes would share.
    remote = node_lab.cli("--db", shared_db, "scan", "--limit", ",".join(targets), "--json")
    assert remote.returncode == 0, remote.stderr
    summary = json.loads(remote.stdout)
    by_node = {p["node"]: p for p in summary["nodes"]}
    assert set(by_node) == set(node_lab.nodes)
    for node in node_lab.nodes:
        assert by_node[node]["hosts"] == len(node_lab.sites[node]) and by_node[node]["error"] is None
    print("per node:", json.dumps(summary["nodes"]), "controller CPU", summary["controller_cpu_seconds"])
    want = _compliance(local_db, targets)
    got = _compliance(shared_db, targets)
    assert set(want) == set(targets)
    assert all(v[0] == "ok" for v in want.values()), want
    assert got == want


def test_a_node_powered_off_mid_run_leaves_its_hosts_unreachable(node_lab: NodeLab, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'p.db'}"
    node_a, node_b = node_lab.nodes
    boot = node_lab.cli("node", "bootstrap", node_a, node_b)
    assert boot.returncode == 0, boot.stderr
    targets = [h for members in node_lab.sites.values() for h in members]
    proc = subprocess.Popen(
        [sys.executable, "-m", "patchctl", "--db", db, "scan", "--limit", ",".join(targets), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=node_lab.env,
    )  # fmt: skip
    try:
        time.sleep(1.5)  # the jobs are on their way to the nodes
        faults.power_off(node_lab.lab, node_b)
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        faults.power_on(node_lab.lab, node_b)
    assert proc.returncode == 1, err
    hosts = {h["name"]: h for h in json.loads(out)["hosts"]}
    for host in node_lab.sites[node_a]:
        assert hosts[host]["status"] == "ok", hosts[host]
    for host in node_lab.sites[node_b]:
        assert hosts[host]["status"] == "unreachable", hosts[host]
        assert f"execution node {node_b}" in (hosts[host]["error"] or ""), hosts[host]
        assert "outcome unknown" in hosts[host]["error"]


def _versions(lab: Lab, host: str) -> dict[str, str]:
    """The demo packages' installed versions, straight from dpkg on the host (not through patchctl)."""
    h = lab.host(host)
    proc = subprocess.run(
        [
            "ssh", "-i", str(lab.key_path), "-o", f"UserKnownHostsFile={lab.known_hosts_path}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ControlPath=none",
            "-p", str(h.port), f"root@{h.address}",
            "dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\\n' 'patchctl-demo-*'",
        ],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    found = {}
    for line in proc.stdout.splitlines():
        name, version, status = line.split(maxsplit=2)
        found[name] = version if status.strip() == "ii" else f"{version} ({status.strip()})"
    return found


def _deploy_results(url: str) -> dict[str, tuple[str, tuple[str, ...], tuple[str, ...], str | None]]:
    """Each host's stored deploy result in the latest rollout: status, installed, present, error."""
    with Store.open(url) as store:
        rs = RolloutStore(store)
        latest = rs.latest_rollout_id()
        assert latest is not None
        return {
            h: (r.status, tuple(sorted(r.installed)), tuple(sorted(r.present)), r.error)
            for h, r in rs.rollout(latest).results.items()
        }


def test_a_deploy_through_nodes_stores_and_installs_what_a_local_deploy_does(
    node_lab: NodeLab, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    targets = [h for members in node_lab.sites.values() for h in members]
    # One wave of exactly the targets, two hosts per batch: a batch spans both nodes, and the
    # batches run one after the other through them.
    policy = write_policy(
        tmp_path / "policy.yml",
        waves=f"""
          - {{name: all, hosts: "{",".join(targets)}", bake_days: 0, max_concurrency: 2, max_fail_percent: 0,
              min_success_percent: 100}}
        """,
    )
    lab = node_lab.lab

    def deploy(db: str, inventory: Path) -> dict[str, Any]:
        glob = ["--db", db, "-i", str(inventory), "--policy", str(policy)]
        scan = node_lab.cli(*glob, "scan", "--limit", ",".join(targets))
        assert scan.returncode == 0, scan.stderr
        created = node_lab.cli(*glob, "rollout", "create")
        assert created.returncode == 0, created.stderr
        done = node_lab.cli(*glob, "deploy", "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        out: dict[str, Any] = json.loads(done.stdout)
        rescan = node_lab.cli(*glob, "scan", "--limit", ",".join(targets))
        assert rescan.returncode == 0, rescan.stderr
        return out

    # Locally, from pristine hosts, into SQLite.
    lab.reset()
    local_db = f"sqlite:///{tmp_path / 'local.db'}"
    local = deploy(local_db, lab.inventory_path)
    assert [p["node"] for p in local["nodes"]] == ["(control node)"]
    local_versions = {h: _versions(lab, h) for h in targets}
    for host in targets:
        assert local_versions[host] == {**BASE, **APPROVED}, host

    # Through the nodes, from pristine hosts again (nodes bootstrapped afresh), into PostgreSQL.
    lab.reset()
    boot = node_lab.cli("node", "bootstrap", *node_lab.nodes)
    assert boot.returncode == 0, boot.stderr
    for host in targets:
        assert _versions(lab, host) == BASE, host
    shared_db = str(request.getfixturevalue("pg_url"))
    remote = deploy(shared_db, node_lab.inventory)
    by_node = {p["node"]: p for p in remote["nodes"]}
    assert set(by_node) == set(node_lab.nodes), remote["nodes"]  # no host ran from the control node
    for node in node_lab.nodes:
        assert by_node[node]["hosts"] == len(node_lab.sites[node]) and by_node[node]["error"] is None
        assert by_node[node]["forks"] >= 1  # from the node's capacity.json
    print("deploy per node:", json.dumps(remote["nodes"]), "controller CPU", remote["controller_cpu_seconds"])
    for host in targets:
        assert _versions(lab, host) == local_versions[host], host
    assert _deploy_results(shared_db) == _deploy_results(local_db)
    assert set(_deploy_results(shared_db)) == set(targets)
    assert _compliance(shared_db, targets) == _compliance(local_db, targets)

    # The report shows each node's deploy (and scan) throughput.
    report = node_lab.cli("--db", shared_db, "report", "--json")
    assert report.returncode in (0, 1), report.stderr
    rows = {(n["node"], n["kind"]): n for n in json.loads(report.stdout)["nodes"]}
    for node in node_lab.nodes:
        assert rows[(node, "deploy")]["hosts"] == len(node_lab.sites[node])
        assert rows[(node, "deploy")]["hosts_per_minute"] > 0
        assert rows[(node, "scan")]["parts"] == 2  # the scan before and after the deploy


def _node_pipes(node_address: str) -> list[int]:
    """Pids of this machine's ssh processes that started a job (``ansible-runner worker``) on the
    node at ``node_address``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv if a]
        ours = words and Path(words[0]).name == "ssh" and any(node_address in w for w in words)
        if ours and any("ansible-runner worker" in w for w in words):
            found.append(int(entry.name))
    return found


def test_a_dropped_pipe_to_a_node_loses_no_result(node_lab: NodeLab, tmp_path: Path) -> None:
    """The SSH pipe to a node is cut (its ssh killed here) while the node's hosts install: the
    node's worker goes on (detached, its events spooled in the job directory), the control node
    re-attaches to the spool, and every host is recorded with what really happened, which dpkg on
    the host confirms. Nothing stays "outcome unknown", and the job directory is removed after.

    Seen failing with the worker attached to the pipe (``ansible-runner worker`` reading and
    writing the SSH session, as before the spool): both hosts came back "unreachable", "execution
    node srv-01: ssh exited -9 (outcome unknown: rescan)", and the wave halted."""
    lab = node_lab.lab
    node_a = node_lab.nodes[0]
    fast, slow = node_lab.sites[node_a]
    slow_seconds = {fast: 2, slow: 12}
    lab.reset()
    boot = node_lab.cli("node", "bootstrap", node_a)
    assert boot.returncode == 0, boot.stderr
    for host, seconds in slow_seconds.items():
        h = lab.host(host)
        subprocess.run(
            [
                "ssh", "-i", str(lab.key_path), "-o", f"UserKnownHostsFile={lab.known_hosts_path}",
                "-o", "BatchMode=yes", "-o", "ControlPath=none", "-p", str(h.port), f"root@{h.address}",
                f"{APT} update >/dev/null && {APT} install patchctl-demo-slow=1.0-1 >/dev/null 2>&1 && "
                f"echo {seconds} > {SLOW_SECONDS_FILE}",
            ],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300, check=True,
        )  # fmt: skip
    policy = write_policy(
        tmp_path / "policy.yml",
        waves=f"""
          - {{name: site, hosts: "{fast},{slow}", bake_days: 0, max_concurrency: 2, max_fail_percent: 0,
              min_success_percent: 100}}
        """,
    )
    db = f"sqlite:///{tmp_path / 'cut.db'}"
    glob = ["--db", db, "--policy", str(policy)]
    scan = node_lab.cli(*glob, "scan", "--limit", f"{fast},{slow}")
    assert scan.returncode == 0, scan.stderr
    created = node_lab.cli(*glob, "rollout", "create")
    assert created.returncode == 0, created.stderr

    proc = subprocess.Popen(
        [sys.executable, "-m", "patchctl", *glob, "deploy", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=node_lab.env,
    )  # fmt: skip
    cut: list[int] = []
    try:
        deadline = time.monotonic() + 240
        marker = lab.host_path(slow, SLOW_MARKER)
        while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert marker.exists(), "the slow host never started configuring"
        cut = _node_pipes(lab.host(node_a).address)
        assert cut, "no ssh to the node found"
        for pid in cut:
            os.kill(pid, signal.SIGKILL)
        # the host is still installing: its outcome cannot have reached the control node yet
        assert marker.exists()
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):  # its ssh-agent may hold the pipes
                proc.communicate(timeout=30)
    assert proc.returncode == 0, out + err
    done = json.loads(out)
    print("cut pipe deploy:", json.dumps({"hosts": done["hosts"], "nodes": done["nodes"]}, indent=1))
    outcome = {h["host"]: h for h in done["hosts"]}
    expected = {**BASE, **APPROVED, "patchctl-demo-slow": "1.1-1"}
    for host in (fast, slow):
        assert outcome[host]["status"] == "ok", outcome[host]
        assert "outcome unknown" not in (outcome[host]["error"] or ""), outcome[host]
        assert _versions(lab, host) == expected, host
    results = _deploy_results(db)
    for host in (fast, slow):
        status, installed, _present, error = results[host]
        assert status == "ok" and error is None, results[host]
        assert "apt:patchctl-demo-slow:1.1-1" in installed, results[host]
    # the ssh killed was the job's own, and the job directory is gone from the node once read
    assert not _node_pipes(lab.host(node_a).address)
    jobs = lab.host_path(node_a, "/opt/patchctl-node/jobs")
    assert not jobs.exists() or not any(jobs.iterdir()), list(jobs.iterdir())
