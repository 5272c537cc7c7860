#!/usr/bin/env python3
"""Scan benchmark: ``patchctl scan`` against a plain, default-configured ``ansible-playbook``.

For each fleet size it starts the lab with that many hosts, then in the same run times

* **patchctl**: ``patchctl scan`` (its own defaults) into a fresh store;
* **plain**: ``ansible-playbook bench/plain/scan.yml`` as an operator would write it, with
  Ansible's defaults (forks 5, no pipelining, facts gathered, ``apt`` ``update_cache`` then
  ``apt list --upgradable``); the per-host results come from Ansible's ``tree`` callback.

then **rescan**: ``patchctl scan`` once more with ``scan_cache_valid_time`` set to an hour, as an
operator's second look: the metadata the first runs refreshed minutes ago is not downloaded again
(the plain playbook, with the apt module's defaults, refreshes every time: its figure stays the
first run's). It checks that all
three found the same missing updates on every host (name, installed version,
candidate version). It prints hosts per minute, control-node CPU seconds per host and the wall
time ratio, and appends one row per size to a CSV.

Control-node CPU is the user + system time of the side's own process tree, from ``wait4()``
(which includes every descendant that was waited for: ansible-runner, ansible-playbook, its
workers, ssh clients), plus the SSH ControlPersist masters, which detach from the tree: each run
gets its own ``ANSIBLE_SSH_CONTROL_PATH_DIR``, and the masters found there are read from
``/proc/<pid>/stat`` and stopped when the run ends (so no warm connection helps the next run).
The lab's hosts are not counted in it: the lab supervisor is started with ``setsid --fork`` and
is not a descendant of this script. Their CPU is reported apart ("lab CPU"): the CPU time of each
lab host's ``sshd`` listener and of the children it reaped (every SSH session and what it ran),
read from ``/proc`` before and after each side. The hosts share the machine's cores with the
control node, so on a busy machine both numbers bound the wall time.

Examples (as root, from the checkout, with the venv's Python)::

    .venv/bin/python bench/scan_bench.py --hosts 10,30,60,100 --csv bench/results/scan.csv
    .venv/bin/python bench/scan_bench.py --smoke        # CI: 4 hosts, fails if the sides disagree

Exit status: 0 when the sides agreed at every size, 1 when they did not (or a side failed), 2 on
bad arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib.util
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from patchctl.lab.fleet import Lab  # noqa: E402 - imported after the sys.path entry for the checkout

PLAIN_DIR = ROOT / "bench" / "plain"
MODULE_PATH = ROOT / "plugins" / "modules" / "patch_scan_linux.py"
DEFAULT_SUBNET = "127.88"
DEFAULT_LAB_DIR = Path(tempfile.gettempdir()) / "patchctl-bench" / "lab"
SMOKE_HOSTS = 4
CLK_TCK = os.sysconf("SC_CLK_TCK")

CSV_FIELDS = (
    "timestamp",
    "hosts",
    "plain_s",
    "patchctl_s",
    "ratio",
    "plain_hosts_per_min",
    "patchctl_hosts_per_min",
    "plain_cpu_s",
    "patchctl_cpu_s",
    "plain_cpu_s_per_host",
    "patchctl_cpu_s_per_host",
    "patchctl_forks",
    "agree",
    "load_before",
    "cpus",
    "order",
    "plain_lab_cpu_s_per_host",
    "patchctl_lab_cpu_s_per_host",
    "patchctl_rescan_s",
    "rescan_ratio",
)
# The rescan: patchctl again right after both sides, with scan_cache_valid_time set to this, so
# the hosts' metadata (refreshed minutes ago) is not downloaded again: an operator's second look.
RESCAN_CACHE_VALID_TIME = 3600

# (name, installed version, candidate version) of every missing update, per host
Found = dict[str, frozenset[tuple[str, str, str]]]


@dataclass
class SideResult:
    side: str
    hosts: int
    wall_s: float
    cpu_s: float
    rc: int
    found: Found = field(default_factory=dict)
    lab_cpu_s: float = 0.0  # the lab hosts' side (sshd and everything under it), not the control node's
    errors: list[str] = field(default_factory=list)

    @property
    def hosts_per_min(self) -> float:
        return self.hosts / self.wall_s * 60 if self.wall_s else 0.0

    @property
    def cpu_per_host(self) -> float:
        return self.cpu_s / self.hosts if self.hosts else 0.0


def _load_scan_module() -> ModuleType:
    """The scan module's pure parser, to read the plain side's ``apt list`` output."""
    spec = importlib.util.spec_from_file_location("patch_scan_linux", MODULE_PATH)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {MODULE_PATH}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _native_arch() -> str | None:
    dpkg = shutil.which("dpkg")
    if not dpkg:
        return None
    out = subprocess.run([dpkg, "--print-architecture"], capture_output=True, text=True, check=False)
    return out.stdout.strip() or None


# --- control-node CPU accounting ------------------------------------------------------------


def _proc_cpu_s(pid: int) -> float:
    """utime + stime (+ waited-for children) of a live process, in seconds; 0 if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): utime, stime, cutime, cstime are fields 14-17
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / CLK_TCK


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _ssh_masters(control_dir: Path) -> list[int]:
    """SSH ControlPersist masters whose control socket is in ``control_dir`` (started by a run)."""
    marker = str(control_dir)
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            cmd = _cmdline(int(entry.name))
            if cmd.startswith("ssh") and marker in cmd:
                pids.append(int(entry.name))
    return pids


def _stop_masters(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
        time.sleep(0.05)


def lab_cpu_s(lab_dir: Path) -> float:
    """CPU seconds so far of the lab hosts' sshd listeners and the sessions they reaped."""
    marker = str(lab_dir).encode()
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "cmdline").read_bytes().startswith(b"sshd: /usr/sbin/sshd -D"):
                continue
            stat = (entry / "stat").read_text()
            ppid = stat[stat.rindex(")") + 2 :].split()[1]
            if marker not in Path(f"/proc/{ppid}/cmdline").read_bytes():
                continue
        except (OSError, IndexError):
            continue
        total += _proc_cpu_s(int(entry.name))
    return total


def _control_dir() -> Path:
    """A fresh, short directory for SSH control sockets (a socket path must fit in 108 bytes)."""
    return Path(tempfile.mkdtemp(prefix="pcb-"))


def run_measured(cmd: list[str], env: dict[str, str], out: Path, control_dir: Path) -> tuple[int, float, float]:
    """Run ``cmd``; return (exit code, wall s, control-node CPU s of its tree and SSH masters).

    The tree's share and the masters' share are also written to ``out`` + ``.cpu``.
    """
    with out.open("wb") as fh:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    masters = _ssh_masters(control_dir)
    tree_cpu = usage.ru_utime + usage.ru_stime
    masters_cpu = sum(_proc_cpu_s(p) for p in masters)
    _stop_masters(masters)
    shutil.rmtree(control_dir, ignore_errors=True)
    out.with_name(out.name + ".cpu").write_text(
        json.dumps({"tree_cpu_s": tree_cpu, "ssh_masters": len(masters), "ssh_masters_cpu_s": masters_cpu}) + "\n"
    )
    return proc.returncode, wall, tree_cpu + masters_cpu


# --- the two sides --------------------------------------------------------------------------


def _base_env(work: Path) -> dict[str, str]:
    """The environment without any ANSIBLE_* or PATCHCTL_* setting of the caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "PATCHCTL_"))}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)])
    env["HOME"] = str(work / "home")  # no ~/.ansible.cfg, no ~/.ssh/config of the caller's
    env["XDG_CONFIG_HOME"] = str(work / "config")
    (work / "home").mkdir(exist_ok=True)
    return env


def run_patchctl(
    inventory: Path, hosts: int, work: Path, forks: int | None, cache_valid_time: int | None = None
) -> SideResult:
    db = work / "patchctl.db"
    control_dir = _control_dir()
    env = _base_env(work)
    env["PATCHCTL_HOME"] = str(work / "patchctl-home")
    env["ANSIBLE_SSH_CONTROL_PATH_DIR"] = str(control_dir)
    config = work / "patchctl.yml"  # patchctl's defaults, or the rescan's cache age
    config.write_text("---\n" + (f"scan_cache_valid_time: {cache_valid_time}\n" if cache_valid_time else "{}\n"))
    env["PATCHCTL_CONFIG"] = str(config)
    cmd = [sys.executable, "-m", "patchctl", "-q", "--db", f"sqlite:///{db}", "-i", str(inventory), "scan", "--json"]
    if forks:
        cmd += ["--forks", str(forks)]
    rc, wall, cpu = run_measured(cmd, env, work / "patchctl.out", control_dir)
    result = SideResult("patchctl", hosts, wall, cpu, rc)
    if not db.exists():
        result.errors.append(f"patchctl wrote no store (rc {rc}); see {work / 'patchctl.out'}")
        return result
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        statuses = dict(conn.execute("SELECT name, last_status FROM hosts"))
        found: dict[str, set[tuple[str, str, str]]] = {name: set() for name in statuses}
        for host, name, installed, version in conn.execute(
            "SELECT host, name, installed_version, version FROM v_missing_updates"
        ):
            found[host].add((name, installed or "", version))
    result.errors += [f"patchctl: {h} is {s}" for h, s in sorted(statuses.items()) if s != "ok"]
    result.found = {h: frozenset(v) for h, v in found.items()}
    return result


def run_plain(inventory: Path, hosts: int, work: Path, psl: ModuleType, arch: str | None) -> SideResult:
    tree = work / "tree"
    control_dir = _control_dir()
    env = _base_env(work)
    env.update(
        {
            "ANSIBLE_CONFIG": str(PLAIN_DIR / "ansible.cfg"),
            "ANSIBLE_CALLBACKS_ENABLED": "ansible.builtin.tree",
            "ANSIBLE_CALLBACK_TREE_DIR": str(tree),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir),
            "ANSIBLE_NOCOLOR": "1",
        }
    )
    exe = Path(sys.executable).parent / "ansible-playbook"
    cmd = [str(exe) if exe.exists() else "ansible-playbook", "-i", str(inventory), str(PLAIN_DIR / "scan.yml")]
    rc, wall, cpu = run_measured(cmd, env, work / "plain.out", control_dir)
    result = SideResult("plain", hosts, wall, cpu, rc)
    for path in sorted(tree.glob("*")) if tree.is_dir() else []:
        data = json.loads(path.read_text())
        if data.get("failed") or data.get("unreachable") or "stdout" not in data:
            result.errors.append(f"plain: {path.name} failed: {data.get('msg') or data.get('stderr') or '?'}")
            continue
        updates = psl.parse_apt_list_upgradable(data["stdout"], arch)
        result.found[path.name] = frozenset((u["name"], u["installed_version"], u["version"]) for u in updates)
    return result


def compare(plain: SideResult, ours: SideResult, expected: set[str]) -> list[str]:
    """What differs between the two sides' results (empty: they agree on every host)."""
    problems = [*plain.errors, *ours.errors]
    for side in (plain, ours):
        if side.rc != 0:
            problems.append(f"{side.side}: exit code {side.rc}")
        missing = expected - set(side.found)
        if missing:
            problems.append(f"{side.side}: no result for {', '.join(sorted(missing))}")
    for host in sorted(expected & set(plain.found) & set(ours.found)):
        a, b = plain.found[host], ours.found[host]
        if a != b:
            problems.append(f"{host}: plain only {sorted(a - b)}, patchctl only {sorted(b - a)}")
    if not any(plain.found.values()):
        problems.append("no host has any missing update: the comparison proves nothing")
    return problems


# --- the lab --------------------------------------------------------------------------------


def sub_inventory(source: Path, hosts: list[str], dest: Path) -> Path:
    """The lab's inventory cut down to ``hosts`` (groups keep only those)."""
    data = yaml.safe_load(source.read_text())
    keep = set(hosts)
    top = data["all"]
    # patchctl's defaults, as an operator gets them: the lab inventory turns on the extra download
    # check of every pending package (integrity tests), which the plain playbook does not do.
    (top.get("vars") or {}).pop("patch_scan_linux_verify_downloads", None)
    top["hosts"] = {h: v for h, v in top["hosts"].items() if h in keep}
    for group in (top.get("children") or {}).values():
        group["hosts"] = {h: v for h, v in (group.get("hosts") or {}).items() if h in keep}
    dest.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def bench_size(args: argparse.Namespace, lab: Lab, hosts: int, psl: ModuleType, arch: str | None) -> dict[str, object]:
    print(f"== {hosts} hosts (lab on {args.subnet}.x.y in {lab.dir})", flush=True)
    lab.reset()  # every size starts from pristine hosts
    names = [h.name for h in lab.hosts()][:hosts]
    expected = set(names)
    work = Path(tempfile.mkdtemp(prefix=f"scan-bench-{hosts}-", dir=args.work_dir))
    inventory = sub_inventory(lab.inventory_path, names, work / "inventory.yml")
    load_before = os.getloadavg()[0]
    runs: dict[str, SideResult] = {}
    order = ("patchctl", "plain") if args.order == "patchctl-first" else ("plain", "patchctl")
    for side in order:
        side_dir = work / side
        side_dir.mkdir()
        print(f"   {side} ...", end=" ", flush=True)
        lab_before = lab_cpu_s(lab.dir)
        if side == "plain":
            runs[side] = run_plain(inventory, hosts, side_dir, psl, arch)
        else:
            runs[side] = run_patchctl(inventory, hosts, side_dir, args.forks)
        r = runs[side]
        time.sleep(0.5)  # the hosts' sshd reap the sessions that the stopped SSH masters held
        r.lab_cpu_s = lab_cpu_s(lab.dir) - lab_before
        print(
            f"{r.wall_s:.1f} s wall, {r.cpu_s:.1f} s control-node CPU, {r.lab_cpu_s:.1f} s lab CPU (rc {r.rc})",
            flush=True,
        )
    rescan_dir = work / "rescan"
    rescan_dir.mkdir()
    print(f"   patchctl rescan (scan_cache_valid_time {RESCAN_CACHE_VALID_TIME}) ...", end=" ", flush=True)
    rescan = run_patchctl(inventory, hosts, rescan_dir, args.forks, RESCAN_CACHE_VALID_TIME)
    print(f"{rescan.wall_s:.1f} s wall (rc {rescan.rc})", flush=True)
    problems = compare(runs["plain"], runs["patchctl"], expected)
    problems += [f"rescan: {p}" for p in compare(runs["plain"], rescan, expected) if p not in problems]
    for p in problems:
        print(f"   DISAGREE: {p}", flush=True)
    plain, ours = runs["plain"], runs["patchctl"]
    if not problems and not args.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    elif problems:
        print(f"   outputs kept in {work}", flush=True)
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "hosts": hosts,
        "plain_s": round(plain.wall_s, 2),
        "patchctl_s": round(ours.wall_s, 2),
        "ratio": round(plain.wall_s / ours.wall_s, 2) if ours.wall_s else 0.0,
        "plain_hosts_per_min": round(plain.hosts_per_min, 1),
        "patchctl_hosts_per_min": round(ours.hosts_per_min, 1),
        "plain_cpu_s": round(plain.cpu_s, 2),
        "patchctl_cpu_s": round(ours.cpu_s, 2),
        "plain_cpu_s_per_host": round(plain.cpu_per_host, 3),
        "patchctl_cpu_s_per_host": round(ours.cpu_per_host, 3),
        "patchctl_forks": args.forks or "default",
        "agree": not problems,
        "load_before": round(load_before, 2),
        "cpus": os.cpu_count() or 0,
        "order": args.order,
        "plain_lab_cpu_s_per_host": round(plain.lab_cpu_s / hosts, 3),
        "patchctl_lab_cpu_s_per_host": round(ours.lab_cpu_s / hosts, 3),
        "patchctl_rescan_s": round(rescan.wall_s, 2),
        "rescan_ratio": round(plain.wall_s / rescan.wall_s, 2) if rescan.wall_s else 0.0,
    }


def print_table(rows: list[dict[str, object]]) -> None:
    head = ("hosts", "plain s", "patchctl s", "ratio", "plain h/min", "patchctl h/min",
            "plain CPU s/host", "patchctl CPU s/host", "plain lab CPU", "patchctl lab CPU", "rescan s",
            "rescan ratio", "agree")  # fmt: skip
    keys = ("hosts", "plain_s", "patchctl_s", "ratio", "plain_hosts_per_min", "patchctl_hosts_per_min",
            "plain_cpu_s_per_host", "patchctl_cpu_s_per_host", "plain_lab_cpu_s_per_host",
            "patchctl_lab_cpu_s_per_host", "patchctl_rescan_s", "rescan_ratio", "agree")  # fmt: skip
    widths = [max(len(h), *(len(str(r[k])) for r in rows)) for h, k in zip(head, keys, strict=True)]
    print()
    print("  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
    for r in rows:
        print("  ".join(str(r[k]).rjust(w) for k, w in zip(keys, widths, strict=True)))


def write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    if not new:
        with path.open(newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), [])
        if tuple(header) != CSV_FIELDS:  # rows of an older version: rewrite them under today's header
            with path.open(newline="", encoding="utf-8") as fh:
                old = list(csv.DictReader(fh))
            with path.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(old)
    with path.open("a", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        if new:
            writer.writeheader()
        writer.writerows(rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--hosts", default="10,30", help="comma-separated fleet sizes (default: 10,30)")
    parser.add_argument("--smoke", action="store_true", help=f"CI mode: {SMOKE_HOSTS} hosts, no CSV unless given")
    parser.add_argument("--csv", type=Path, help="append one row per size to this CSV file")
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
    parser.add_argument("--work-dir", type=Path, default=None, help="where run outputs go (default: a temp dir)")
    parser.add_argument("--forks", type=int, default=None, help="patchctl scan --forks (default: patchctl's)")
    parser.add_argument("--order", choices=("patchctl-first", "plain-first"), default="patchctl-first",
                        help="which side runs first on the freshly reset hosts (default: patchctl-first, "
                        "so patchctl pays for the cold package lists)")  # fmt: skip
    parser.add_argument("--keep-lab", action="store_true", help="leave the lab up at the end")
    parser.add_argument("--keep-work", action="store_true", help="keep the run outputs even when the sides agree")
    args = parser.parse_args(argv)
    try:
        args.sizes = [SMOKE_HOSTS] if args.smoke else [int(x) for x in args.hosts.split(",") if x.strip()]
    except ValueError:
        parser.error(f"--hosts: not a list of numbers: {args.hosts!r}")
    if not args.sizes or min(args.sizes) < 1:
        parser.error("--hosts: give at least one size >= 1")
    if os.geteuid() != 0:
        parser.error("the lab needs root")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.work_dir:
        args.work_dir.mkdir(parents=True, exist_ok=True)
    psl = _load_scan_module()
    arch = _native_arch()
    lab = Lab(lab_dir=args.lab_dir)
    size = max(args.sizes)
    if lab.is_up() and (len(lab.hosts()) != size or lab.subnet() != args.subnet):
        lab.down(quiet=True)
    print(f"scan benchmark on {platform.node()}: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    try:
        # One lab of the largest size; each size scans the first N of its hosts.
        lab.up(size, subnet=args.subnet)
        for hosts in args.sizes:
            rows.append(bench_size(args, lab, hosts, psl, arch))
    finally:
        if not args.keep_lab:
            lab.down()
    print_table(rows)
    if args.csv:
        write_csv(args.csv, rows)
        print(f"\nappended {len(rows)} row(s) to {args.csv}")
    return 0 if all(r["agree"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
