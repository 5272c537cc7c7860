"""One playbook run over hosts spread across the control node and execution nodes.

:func:`run_split` splits the targets by ``patchctl_execution_node`` (:mod:`patchctl.ansible.nodes`), runs
the local part with :class:`~patchctl.ansible.runner.PlaybookRunner` and each node's part with
:func:`~patchctl.ansible.streaming.run_on_node`, all at once (one thread each), and hands every event to
the same ``on_event`` (which must be thread-safe) as it arrives. A node that fails or cannot be
reached does not stop the others: its hosts without a result come back in ``unknown`` with the
reason, and the caller records them as unreachable (their outcome is unknown: rescan them).

A node's forks: ``patchctl_node_forks`` from the inventory, else its ``capacity.json`` (what
``patchctl node bootstrap`` measured), read over SSH when the node's part starts, else the run's.
"""

from __future__ import annotations

import resource
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from patchctl.ansible import nodes
from patchctl.ansible.inventory import Inventory
from patchctl.ansible.runner import HostEvent, PlaybookRunner, RunResult
from patchctl.ansible.streaming import run_on_node

LOCAL_NAME = "(control node)"


def controller_cpu() -> float:
    """CPU seconds of this process and its finished children (ansible-playbook, ssh) so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass
class PartStats:
    """How one part of the run went: where it ran, how many hosts, how long, this process's CPU."""

    node: str
    hosts: int
    forks: int | None
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    error: str | None = None

    @property
    def hosts_per_minute(self) -> float:
        return round(60 * self.hosts / self.seconds, 1) if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "hosts": self.hosts,
            "forks": self.forks,
            "seconds": round(self.seconds, 1),
            "hosts_per_minute": self.hosts_per_minute,
            "controller_cpu_seconds": round(self.cpu_seconds, 2),
            "error": self.error,
        }


def merge_parts(parts: list[PartStats]) -> list[PartStats]:
    """The parts of several runs (a deploy's batches) added up per node, sorted by node."""
    merged: dict[str, PartStats] = {}
    for p in parts:
        m = merged.setdefault(p.node, PartStats(p.node, 0, p.forks))
        m.hosts += p.hosts
        m.seconds += p.seconds
        m.cpu_seconds += p.cpu_seconds
        m.forks = max(m.forks or 0, p.forks or 0) or None
        m.error = m.error or p.error
    return [merged[name] for name in sorted(merged)]


@dataclass
class SplitResult:
    results: dict[str, RunResult] = field(default_factory=dict)  # part name -> its run
    unknown: dict[str, str] = field(default_factory=dict)  # host -> why its outcome is unknown
    parts: list[PartStats] = field(default_factory=list)
    controller_cpu_seconds: float = 0.0  # the whole run's, local Ansible included


def run_split(
    inventory: Inventory,
    inventory_source: str,
    targets: list[str],
    playbook: Path,
    extravars: Mapping[str, Any] | None,
    on_event: Callable[[HostEvent], None],
    timeout: int | None,
    forks: int | None,
    results_seen: Callable[[str], bool],
) -> SplitResult:
    """Run ``playbook`` over ``targets`` (see the module docstring). ``results_seen(host)`` says
    whether the caller has a result for a host, to tell which hosts a failed node left unknown."""
    split = nodes.split(inventory, targets)
    out = SplitResult()
    cpu_start = controller_cpu()
    if not split.jobs:
        started = time.monotonic()
        out.results[LOCAL_NAME] = PlaybookRunner().run(
            playbook, inventory=inventory_source, limit=",".join(targets), extravars=extravars,
            on_event=on_event, timeout=timeout, forks=forks,
        )  # fmt: skip
        out.parts.append(PartStats(LOCAL_NAME, len(targets), forks, time.monotonic() - started))
        out.controller_cpu_seconds = out.parts[0].cpu_seconds = controller_cpu() - cpu_start
        return out
    errors: list[BaseException] = []
    lock = threading.Lock()

    def local() -> None:
        stats = PartStats(LOCAL_NAME, len(split.local), forks)
        started = time.monotonic()
        try:
            result = PlaybookRunner().run(
                playbook, inventory=inventory_source, limit=",".join(split.local), extravars=extravars,
                on_event=on_event, timeout=timeout, forks=forks,
            )  # fmt: skip
            with lock:
                out.results[LOCAL_NAME] = result
        except BaseException as exc:  # re-raised below, after the nodes finished
            errors.append(exc)
        finally:
            stats.seconds = time.monotonic() - started
            with lock:
                out.parts.append(stats)

    def remote(job: nodes.NodeJob) -> None:
        stats = PartStats(job.node.name, len(job.hosts), job.forks or forks)
        started = time.monotonic()
        try:
            stats.forks = nodes.node_forks(job.node) or forks
            result = run_on_node(job, playbook, extravars, on_event, timeout, stats.forks)
            stats.cpu_seconds = result.cpu_seconds
            stats.error = result.error
            with lock:
                out.results[job.node.name] = result
        except Exception as exc:  # the node's part failed; its hosts are unknown, the rest go on
            stats.error = f"execution node {job.node.name}: {exc}"
        finally:
            stats.seconds = time.monotonic() - started
        with lock:
            out.parts.append(stats)
            if stats.error:
                for host in job.hosts:
                    if not results_seen(host):
                        out.unknown[host] = f"{stats.error} (outcome unknown: rescan)"

    threads = [threading.Thread(target=remote, args=(job,), name=f"node {job.node.name}") for job in split.jobs]
    if split.local:
        threads.append(threading.Thread(target=local, name="control node"))
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    out.controller_cpu_seconds = controller_cpu() - cpu_start
    out.parts.sort(key=lambda p: p.node)
    if errors:
        raise errors[0]
    return out
