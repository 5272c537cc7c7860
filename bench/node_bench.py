#!/usr/bin/env python3
"""Execution node benchmark: one fleet scanned locally, then through 1, 2 and 4 execution nodes.

One lab of ``--hosts`` targets plus ``max(--nodes)`` more lab hosts that serve as execution nodes
(bootstrapped offline by ``patchctl node bootstrap``, as an operator would). For each setting it
runs ``patchctl scan`` over the same targets into a fresh store: first with no node (everything
from the control node), then with the targets spread round-robin over 1, 2, 4 nodes through the
inventory variable ``patchctl_execution_node``. It reports per setting:

* wall time and hosts per minute;
* **control-node CPU** per host: the ``patchctl`` process tree (``wait4``: ansible-runner,
  ansible-playbook and its workers for the local part, the ``ssh`` pipes to the nodes) plus the
  SSH ControlPersist masters a local run starts (they detach; read from ``/proc`` and stopped),
  as bench/scan_bench.py measures it;
* **lab CPU** per host: the lab hosts' sshd and everything under them, which is where the nodes'
  ``ansible-runner worker`` and Ansible run (the nodes are lab hosts, on the same 2 cores), plus
  the SSH ControlPersist masters the nodes' Ansible started (they detach from the session: found
  by their root inside the lab, read, and stopped after each setting, so none helps the next);
* the forks each node ran with (from its ``capacity.json``) and each node's hosts per minute,
  from the store (``v_node_throughput``);

and checks that every setting found the same missing updates on every host as the local scan.
On this machine the nodes share the cores with the control node and the targets, so throughput
cannot grow much here; what must drop is the control node's CPU per host.

Examples (as root, from the checkout, with the venv's Python)::

    .venv/bin/python bench/node_bench.py                      # 100 hosts, local and 1, 2, 4 nodes
    .venv/bin/python bench/node_bench.py --hosts 30 --csv bench/results/nodes.csv

Exit status: 0 when every setting agreed with the local scan, 1 when one did not (or failed), 2 on
bad arguments.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scan_bench import (  # noqa: E402 - after the sys.path entries
    _base_env,
    _control_dir,
    _proc_cpu_s,
    _stop_masters,
    lab_cpu_s,
    run_measured,
)

from patchctl import paths  # noqa: E402 - after the sys.path entries
from patchctl.lab.fleet import Lab  # noqa: E402 - after the sys.path entries

DEFAULT_SUBNET = "127.103"
DEFAULT_LAB_DIR = Path(tempfile.gettempdir()) / "patchctl-node-bench" / "lab"
NODE_VAR = "patchctl_execution_node"

CSV_FIELDS = (
    "timestamp",
    "hosts",
    "nodes",
    "wall_s",
    "hosts_per_min",
    "controller_cpu_s",
    "controller_cpu_s_per_host",
    "lab_cpu_s_per_host",
    "node_forks",
    "node_hosts_per_min",
    "ok_hosts",
    "agree",
    "load_before",
    "cpus",
)

# (name, installed version, candidate version) of every missing update, per host
Found = dict[str, frozenset[tuple[str, str, str]]]


def lab_ssh_masters(lab: Lab) -> list[int]:
    """SSH clients running inside the lab's hosts' PID namespaces (a node's ControlPersist masters)."""
    pids = []
    for host in lab.hosts():
        for pid in lab.host_pids(host.name):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if cmd.startswith((b"ssh\0", b"ssh: ", b"ssh ")):
                pids.append(pid)
    return pids


def write_inventory(source: Path, targets: list[str], nodes: list[str], dest: Path) -> Path:
    """The lab's inventory: the targets spread round-robin over ``nodes`` (none: all local), and
    the nodes themselves (so patchctl knows how to reach them)."""
    data = yaml.safe_load(source.read_text())
    top = data["all"]
    keep = set(targets) | set(nodes)
    top["hosts"] = {h: v for h, v in top["hosts"].items() if h in keep}
    for i, host in enumerate(targets):
        if nodes:
            top["hosts"][host][NODE_VAR] = nodes[i % len(nodes)]
    for group in (top.get("children") or {}).values():
        group["hosts"] = {h: v for h, v in (group.get("hosts") or {}).items() if h in keep}
    dest.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def read_store(db: Path) -> tuple[dict[str, str], Found, list[tuple[str, int | None, float | None]]]:
    """Each host's last status, its missing updates, and each node's (forks, hosts per minute)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        statuses = {str(n): str(s) for n, s in conn.execute("SELECT name, last_status FROM hosts")}
        found: dict[str, set[tuple[str, str, str]]] = {name: set() for name in statuses}
        for host, name, installed, version in conn.execute(
            "SELECT host, name, installed_version, version FROM v_missing_updates"
        ):
            found[host].add((name, installed or "", version))
        nodes = [
            (str(n), None if f is None else int(f), None if r is None else round(float(r), 1))
            for n, f, r in conn.execute(
                "SELECT node, last_forks, last_hosts_per_minute FROM v_node_throughput"
                " WHERE kind = 'scan' ORDER BY node"
            )
        ]
    return statuses, {h: frozenset(v) for h, v in found.items()}, nodes


def bootstrap(env: dict[str, str], inventory: Path, nodes: list[str], work: Path) -> None:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "patchctl", "-i", str(inventory), "node", "bootstrap", *nodes],
        env=env, cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    (work / "bootstrap.out").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"node bootstrap failed (rc {proc.returncode}): {proc.stderr.strip()[-500:]}")
    print(f"   bootstrapped {len(nodes)} nodes in {time.monotonic() - started:.1f} s", flush=True)


def run_setting(lab: Lab, env: dict[str, str], inventory: Path, targets: list[str], work: Path) -> dict[str, object]:
    db = work / "patchctl.db"
    control_dir = _control_dir()
    run_env = {**env, "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir)}
    cmd = [sys.executable, "-m", "patchctl", "-q", "--db", f"sqlite:///{db}", "-i", str(inventory), "scan"]
    cmd += ["--limit", ",".join(targets), "--json"]
    load_before = os.getloadavg()[0]
    lab_before = lab_cpu_s(lab.dir)
    rc, wall, cpu = run_measured(cmd, run_env, work / "scan.out", control_dir)
    masters = lab_ssh_masters(lab)
    masters_cpu = sum(_proc_cpu_s(p) for p in masters)
    _stop_masters(masters)
    time.sleep(0.5)  # the hosts' sshd reap the sessions
    lab_cpu = lab_cpu_s(lab.dir) - lab_before + masters_cpu
    statuses, found, nodes = read_store(db) if db.exists() else ({}, {}, [])
    n = len(targets)
    return {
        "rc": rc,
        "found": found,
        "statuses": statuses,
        "wall_s": round(wall, 2),
        "hosts_per_min": round(60 * n / wall, 1) if wall else 0.0,
        "controller_cpu_s": round(cpu, 2),
        "controller_cpu_s_per_host": round(cpu / n, 3),
        "lab_cpu_s_per_host": round(lab_cpu / n, 3),
        "node_forks": " ".join(f"{name}={forks}" for name, forks, _ in nodes),
        "node_hosts_per_min": " ".join(f"{name}={rate}" for name, _, rate in nodes),
        "ok_hosts": sum(1 for h in targets if statuses.get(h) == "ok"),
        "load_before": round(load_before, 2),
    }


def compare(name: str, got: Found, want: Found, targets: list[str]) -> list[str]:
    problems = []
    for host in targets:
        if host not in got:
            problems.append(f"{name}: no result for {host}")
        elif got[host] != want.get(host):
            problems.append(f"{name}: {host} differs from the local scan")
    return problems


def print_table(rows: list[dict[str, object]]) -> None:
    head = ("hosts", "nodes", "wall s", "hosts/min", "ctl CPU s", "ctl CPU s/host", "lab CPU s/host",
            "node forks", "per node hosts/min", "ok", "agree")  # fmt: skip
    keys = ("hosts", "nodes", "wall_s", "hosts_per_min", "controller_cpu_s", "controller_cpu_s_per_host",
            "lab_cpu_s_per_host", "node_forks", "node_hosts_per_min", "ok_hosts", "agree")  # fmt: skip
    widths = [max(len(h), *(len(str(r[k])) for r in rows)) for h, k in zip(head, keys, strict=True)]
    print()
    print("  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
    for r in rows:
        print("  ".join(str(r[k]).rjust(w) for k, w in zip(keys, widths, strict=True)))


def write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerows(rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--hosts", type=int, default=100, help="target hosts (default 100)")
    parser.add_argument("--nodes", default="1,2,4", help="comma-separated node counts (default 1,2,4; 0 = local)")
    parser.add_argument("--csv", type=Path, help="append one row per setting to this CSV file")
    parser.add_argument(
        "--subnet",
        default=os.environ.get("PATCHCTL_BENCH_SUBNET", DEFAULT_SUBNET),
        help=f"the lab's loopback range 127.N (env PATCHCTL_BENCH_SUBNET; default {DEFAULT_SUBNET})",
    )
    parser.add_argument(
        "--lab-dir",
        type=Path,
        default=Path(os.environ.get("PATCHCTL_BENCH_LAB_DIR", str(DEFAULT_LAB_DIR))),
        help=f"where the benchmark's own lab lives (env PATCHCTL_BENCH_LAB_DIR; default {DEFAULT_LAB_DIR})",
    )
    parser.add_argument("--keep-lab", action="store_true", help="leave the lab up at the end")
    parser.add_argument("--keep-work", action="store_true", help="keep the run outputs")
    args = parser.parse_args(argv)
    try:
        counts = sorted({int(x) for x in args.nodes.split(",") if x.strip()})
    except ValueError:
        parser.error(f"--nodes: not a list of numbers: {args.nodes!r}")
    if args.hosts < 1 or any(c < 0 for c in counts):
        parser.error("--hosts must be >= 1 and --nodes >= 0")
    args.counts = [0, *[c for c in counts if c > 0]]  # the local scan always runs, first: the reference
    if os.geteuid() != 0:
        parser.error("the lab needs root")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    max_nodes = max(args.counts)
    size = args.hosts + max_nodes
    lab = Lab(lab_dir=args.lab_dir)
    if lab.is_up() and (len(lab.hosts()) != size or lab.subnet() != args.subnet):
        lab.down(quiet=True)
    work = Path(tempfile.mkdtemp(prefix=f"node-bench-{args.hosts}-"))
    env = _base_env(work)
    env["PATCHCTL_HOME"] = str(work / "patchctl-home")
    env["PATCHCTL_CACHE"] = str(paths.cache_dir())  # the nodes' wheels, downloaded once
    print(
        f"node benchmark on {platform.node()}: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; "
        f"{args.hosts} hosts, nodes {args.counts}",
        flush=True,
    )
    rows: list[dict[str, object]] = []
    problems: list[str] = []
    try:
        lab.up(size, subnet=args.subnet)
        names = [h.name for h in lab.hosts()]
        node_names, targets = names[:max_nodes], names[max_nodes:]
        if max_nodes:
            bootstrap(env, lab.inventory_path, node_names, work)
        reference: Found = {}
        for count in args.counts:
            label = "local" if count == 0 else f"{count} node{'s' if count > 1 else ''}"
            print(f"== {label}", end=" ... ", flush=True)
            setting = work / f"nodes-{count}"
            setting.mkdir()
            inventory = write_inventory(lab.inventory_path, targets, node_names[:count], setting / "inventory.yml")
            r = run_setting(lab, env, inventory, targets, setting)
            print(
                f"{r['wall_s']} s wall, {r['controller_cpu_s']} s control-node CPU, "
                f"{r['lab_cpu_s_per_host']} s lab CPU per host, {r['ok_hosts']}/{len(targets)} ok (rc {r['rc']})",
                flush=True,
            )
            found = r.pop("found")
            assert isinstance(found, dict)
            if count == 0:
                reference = found
                mine = [] if any(found.values()) else ["local: no host has any missing update: nothing to compare"]
            else:
                mine = compare(label, found, reference, targets)
            if r["rc"] != 0:
                mine.append(f"{label}: exit code {r['rc']} (see {setting / 'scan.out'})")
            problems += mine
            for p in mine:
                print(f"   DISAGREE: {p}", flush=True)
            r.pop("statuses")
            rows.append(
                {
                    "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
                    "hosts": len(targets),
                    "nodes": count,
                    **r,
                    "agree": not mine,
                    "cpus": os.cpu_count() or 0,
                }
            )
    finally:
        if not args.keep_lab:
            lab.down()
        if not args.keep_work and not problems:
            shutil.rmtree(work, ignore_errors=True)
        elif problems:
            print(f"outputs kept in {work}", flush=True)
    print_table(rows)
    if args.csv:
        write_csv(args.csv, rows)
        print(f"\nappended {len(rows)} row(s) to {args.csv}")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
