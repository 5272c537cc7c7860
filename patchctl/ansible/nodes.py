"""Execution nodes: hosts that run Ansible for a part of the fleet, on ansible-runner's streaming engine.

A host whose inventory variable ``patchctl_execution_node`` names a node is scanned and deployed
through that node: patchctl packs the job (playbook, roles, plugins, the part's inventory) with
``ansible-runner transmit``, runs ``ansible-runner worker`` on the node over SSH, and feeds the
node's event stream to ``ansible-runner process`` here, so each host's result lands in the one
store as it arrives, exactly as for a local run. Set the variable on a group (one per site) in
``group_vars``. Hosts without it run from the control node.

The node is itself an inventory host (its ``ansible_host``, ``ansible_port``, ``ansible_user``,
``ansible_ssh_private_key_file`` and ``ansible_ssh_common_args`` say how to reach it); it needs
only Python 3 and what ``patchctl node bootstrap NODE`` installs under ``patchctl_node_dir``
(default ``/opt/patchctl-node``): a venv with the controller's exact ansible-core and
ansible-runner, from wheels the controller copies (the node needs no package index), and the
pinned collections. The controller's SSH keys never leave it: each node run gets a private
``ssh-agent`` holding the targets' keys, forwarded to the node (``ssh -A``) for the job's life.
``known_hosts`` files named by ``UserKnownHostsFile=`` in the targets' ``ansible_ssh_common_args``
travel with the job, so host key checking stays on at the node.

Capacity: a node's ``forks`` is ``patchctl_node_forks`` if set, else from its cores and memory as
:func:`forks_for` computes them at bootstrap (written to ``<node dir>/capacity.json``).
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from patchctl import paths
from patchctl.ansible.inventory import Inventory
from patchctl.errors import ConfigError, PatchctlError

NODE_VAR = "patchctl_execution_node"
NODE_DIR_VAR = "patchctl_node_dir"
NODE_FORKS_VAR = "patchctl_node_forks"
DEFAULT_NODE_DIR = "/opt/patchctl-node"
LOCAL = ""  # the part of the fleet that runs from the control node

_KNOWN_HOSTS_RE = re.compile(r"UserKnownHostsFile=(\S+)")
# Host variables that name files on the control node: dropped or rewritten for a node's job.
_CONTROLLER_FILE_VARS = ("ansible_ssh_private_key_file", "ansible_private_key_file")


@dataclass(frozen=True)
class ExecutionNode:
    """How to reach a node and where its venv is."""

    name: str
    ssh: tuple[str, ...]  # ssh argv up to and including the destination
    node_dir: str = DEFAULT_NODE_DIR
    forks: int | None = None

    @property
    def venv(self) -> str:
        return f"{self.node_dir}/venv"

    @property
    def collections(self) -> str:
        return f"{self.node_dir}/collections"


@dataclass
class NodeJob:
    """One node's part of a run: its hosts, their inventory and what their SSH needs."""

    node: ExecutionNode
    hosts: list[str]
    inventory: dict[str, Any]  # a static inventory (YAML plugin shape) of exactly these hosts
    known_hosts: str = ""
    agent_keys: tuple[str, ...] = ()
    forks: int | None = None


@dataclass
class Split:
    """The targets of a run split by where they run: ``local`` here, ``jobs`` through nodes."""

    local: list[str] = field(default_factory=list)
    jobs: list[NodeJob] = field(default_factory=list)


def node_of(inventory: Inventory, host: str) -> str:
    value = inventory.var(host, NODE_VAR)
    return str(value) if value else LOCAL


def execution_node(inventory: Inventory, name: str) -> ExecutionNode:
    """The node ``name``, from its own host variables in the inventory."""
    if name not in inventory.hostvars:
        raise ConfigError(
            f"execution node {name!r} (from {NODE_VAR}) is not a host of {inventory.source}: "
            "add it to the inventory with ansible_host (and ansible_port, ansible_user) to say how to reach it"
        )
    hv = inventory.hostvars[name]
    address = str(hv.get("ansible_host") or name)
    user = hv.get("ansible_user")
    argv = [
        "ssh",
        "-T",
        "-A",  # the controller's agent: the node's Ansible reaches its hosts with keys kept here
        "-o",
        "BatchMode=yes",
        "-o",
        "ServerAliveInterval=5",
        "-o",
        "ServerAliveCountMax=3",
        "-o",
        "ConnectTimeout=15",
        "-o",
        "ControlMaster=no",
        "-o",
        "ControlPath=none",
        "-p",
        str(hv.get("ansible_port") or 22),
    ]
    key = hv.get("ansible_ssh_private_key_file") or hv.get("ansible_private_key_file")
    if key:
        argv += ["-i", str(key)]
    common = hv.get("ansible_ssh_common_args")
    if common:
        argv += shlex.split(str(common))
    argv.append(f"{user}@{address}" if user else address)
    forks = hv.get(NODE_FORKS_VAR)
    return ExecutionNode(
        name=name,
        ssh=tuple(argv),
        node_dir=str(hv.get(NODE_DIR_VAR) or DEFAULT_NODE_DIR),
        forks=int(forks) if forks else None,
    )


def split(inventory: Inventory, targets: Iterable[str]) -> Split:
    """The targets by node; each node's job carries the inventory of its hosts only."""
    out = Split()
    by_node: dict[str, list[str]] = {}
    for host in targets:
        node = node_of(inventory, host)
        if node == LOCAL:
            out.local.append(host)
        else:
            by_node.setdefault(node, []).append(host)
    for name in sorted(by_node):
        out.jobs.append(_job(inventory, execution_node(inventory, name), by_node[name]))
    return out


def _job(inventory: Inventory, node: ExecutionNode, hosts: list[str]) -> NodeJob:
    remote_known_hosts = "known_hosts"  # in the job's project directory on the node
    known: list[str] = []
    keys: list[str] = []
    hostvars: dict[str, dict[str, Any]] = {}
    for host in hosts:
        hv = dict(inventory.hostvars.get(host, {}))
        for var in _CONTROLLER_FILE_VARS:
            key = hv.pop(var, None)
            if key and str(key) not in keys:
                keys.append(str(key))
        common = hv.get("ansible_ssh_common_args")
        if isinstance(common, str):
            for path in _KNOWN_HOSTS_RE.findall(common):
                if path not in known:
                    known.append(path)
            hv["ansible_ssh_common_args"] = _KNOWN_HOSTS_RE.sub(
                f"UserKnownHostsFile={{{{ playbook_dir }}}}/{remote_known_hosts}", common
            )
        hostvars[host] = hv
    text = ""
    for path in known:
        try:
            text += Path(path).expanduser().read_text()
        except OSError as exc:
            raise ConfigError(f"execution node {node.name}: cannot read known hosts {path}: {exc}") from exc
    # The YAML inventory plugin's shape (as JSON): all.hosts with their variables, groups as children.
    children: dict[str, Any] = {}
    for group, members in sorted(inventory.groups.items()):
        if group in ("all", "ungrouped"):
            continue
        mine = sorted(set(members) & set(hosts))
        if mine:
            children[group] = {"hosts": dict.fromkeys(mine)}
    shipped = {"all": {"hosts": hostvars, "children": children}}
    return NodeJob(
        node=node,
        hosts=list(hosts),
        inventory=shipped,
        known_hosts=text,
        agent_keys=tuple(keys),
        forks=node.forks,
    )


# --- capacity ---------------------------------------------------------------------------------


def forks_for(cores: int, mem_mib: int) -> int:
    """Forks a node can carry: 8 per core (hosts mostly wait on the network), at most one per
    100 MiB of memory (about what one ansible-playbook fork takes), between 1 and 200."""
    return max(1, min(200, 8 * max(1, cores), max(1, mem_mib // 100)))


# --- bootstrap --------------------------------------------------------------------------------


@dataclass
class BootstrapResult:
    node: str
    node_dir: str
    ansible_core: str
    ansible_runner: str
    wheels: int
    cores: int
    mem_mib: int
    forks: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def controller_versions() -> dict[str, str]:
    """ansible-core and ansible-runner as installed here: nodes get exactly these."""
    return {name: importlib.metadata.version(name) for name in ("ansible-core", "ansible-runner")}


def wheels_dir(versions: Mapping[str, str]) -> Path:
    tag = "-".join(f"{k}{v}" for k, v in sorted(versions.items()))
    return paths.cache_dir() / "node-wheels" / f"py{sys.version_info.major}{sys.version_info.minor}-{tag}"


def ensure_wheels(versions: Mapping[str, str]) -> Path:
    """The wheels a node needs (pip, ansible-core, ansible-runner and their dependencies),
    downloaded once into patchctl's cache with pip; nodes install from them offline."""
    target = wheels_dir(versions)
    if (target / "complete").is_file():
        return target
    target.mkdir(parents=True, exist_ok=True)
    pins = [f"{k}=={v}" for k, v in sorted(versions.items())]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--only-binary=:all:"]
    proc = subprocess.run([*cmd, "--dest", str(target), "pip", *pins], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise PatchctlError(f"cannot fetch the wheels for execution nodes into {target}: {proc.stderr.strip()[-500:]}")
    (target / "complete").write_text("\n".join(pins) + "\n")
    return target


def _ssh(node: ExecutionNode, command: str, *, stdin: bytes | None = None, timeout: int = 600) -> str:
    proc = subprocess.run([*node.ssh, command], input=stdin, capture_output=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        said = err[-1] if err else f"exit {proc.returncode}"
        raise PatchctlError(f"execution node {node.name}: {command.split()[0]} failed: {said}", 1)
    return proc.stdout.decode(errors="replace")


def _tar(directory: Path, members: list[str]) -> bytes:
    with tempfile.TemporaryFile() as fh:
        subprocess.run(["tar", "-C", str(directory), "-cf", "-", *members], stdout=fh, check=True)
        fh.seek(0)
        return fh.read()


def bootstrap(node: ExecutionNode) -> BootstrapResult:
    """Install the venv (ansible-core and ansible-runner as here) and the collections on ``node``."""
    import time

    started = time.monotonic()
    versions = controller_versions()
    wheels = ensure_wheels(versions)
    names = sorted(p.name for p in wheels.glob("*.whl"))
    pip_wheel = next((n for n in names if n.startswith("pip-")), None)
    if pip_wheel is None:
        raise PatchctlError(f"no pip wheel in {wheels}: remove the directory and try again")
    d = shlex.quote(node.node_dir)
    unpack = f"rm -rf {d}/wheels.new && mkdir -p {d}/wheels.new && tar -xf - -C {d}/wheels.new"
    _ssh(node, unpack, stdin=_tar(wheels, names))
    collections = paths.collections_dir()
    if (collections / "ansible_collections").is_dir():
        _ssh(
            node,
            f"rm -rf {d}/collections && mkdir -p {d}/collections && tar -xf - -C {d}/collections",
            stdin=_tar(collections, ["ansible_collections"]),
        )
    pins = " ".join(shlex.quote(f"{k}=={v}") for k, v in sorted(versions.items()))
    script = (
        "set -e; "
        f"rm -rf {d}/wheels && mv {d}/wheels.new {d}/wheels; "
        f"test -x {d}/venv/bin/python || python3 -m venv --without-pip {d}/venv; "
        f"{d}/venv/bin/python {d}/wheels/{pip_wheel}/pip install -q --disable-pip-version-check "
        f"--no-index --find-links {d}/wheels {pins}; "
        f"{d}/venv/bin/python -c 'import importlib.metadata as m, json, os; "
        'print(json.dumps({n: m.version(n) for n in ("ansible-core", "ansible-runner")}))\'; '
        "nproc; awk '/^MemTotal:/ {print int($2/1024)}' /proc/meminfo"
    )
    out = _ssh(node, f"sh -c {shlex.quote(script)}").strip().splitlines()
    try:
        installed = json.loads(out[-3])
        cores, mem = int(out[-2]), int(out[-1])
    except (IndexError, ValueError) as exc:
        raise PatchctlError(f"execution node {node.name}: unexpected answer after installing: {out[-3:]}", 1) from exc
    if installed != versions:
        raise PatchctlError(f"execution node {node.name}: installed {installed}, expected {versions}", 1)
    forks = forks_for(cores, mem)
    capacity = json.dumps({"cores": cores, "mem_mib": mem, "forks": forks, **versions})
    _ssh(node, f"cat > {d}/capacity.json", stdin=capacity.encode())
    return BootstrapResult(
        node=node.name,
        node_dir=node.node_dir,
        ansible_core=versions["ansible-core"],
        ansible_runner=versions["ansible-runner"],
        wheels=len(names),
        cores=cores,
        mem_mib=mem,
        forks=forks,
        seconds=round(time.monotonic() - started, 1),
    )


def node_forks(node: ExecutionNode) -> int | None:
    """The node's forks: set in the inventory, else what bootstrap measured (None: unknown)."""
    if node.forks:
        return node.forks
    try:
        data = json.loads(_ssh(node, f"cat {shlex.quote(node.node_dir)}/capacity.json", timeout=30))
        return int(data["forks"])
    except (PatchctlError, ValueError, KeyError, subprocess.TimeoutExpired):
        return None
