"""Execution nodes on real lab hosts: two lab hosts bootstrapped as nodes (offline, from this
controller's wheels), each reaching its own subset of the lab; a scan through them stores the same
results as a local scan; a node powered off mid-run leaves its hosts unreachable, the rest complete.

Its own small lab on PATCHCTL_TEST_SUBNET2 (default 127.79), so the session lab stays as it is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from patchctl.lab.fleet import Lab
from patchctl.store import Store
from tests.integration.conftest import stop_stale_labs
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
        node_lab.lab.power_off(node_b)
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        node_lab.lab.power_on(node_b)
    assert proc.returncode == 1, err
    hosts = {h["name"]: h for h in json.loads(out)["hosts"]}
    for host in node_lab.sites[node_a]:
        assert hosts[host]["status"] == "ok", hosts[host]
    for host in node_lab.sites[node_b]:
        assert hosts[host]["status"] == "unreachable", hosts[host]
        assert f"execution node {node_b}" in (hosts[host]["error"] or ""), hosts[host]
        assert "outcome unknown" in hosts[host]["error"]
