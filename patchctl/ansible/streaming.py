"""Runs through an execution node: ansible-runner's streaming engine.

:func:`run_on_node` packs a job here with ``ansible-runner transmit`` (the playbook, roles and
modules, the part's inventory and its ``known_hosts``), runs ``ansible-runner worker`` on the node
over SSH with a private ssh-agent (:mod:`patchctl.ansible.ssh_agent`), and turns the node's event
stream back into :class:`~patchctl.ansible.runner.HostEvent` values here with ``ansible-runner
process``, delivered as they arrive, as a local run delivers them. Which hosts run through which
node, and how a node is bootstrapped: :mod:`patchctl.ansible.nodes`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ansible_runner

from patchctl import paths
from patchctl.ansible.nodes import ExecutionNode, NodeJob
from patchctl.ansible.runner import (
    EventTranslator,
    HostEvent,
    RunResult,
    ansible_env,
    ansible_error,
    private_data_dir,
    stats_by_host,
)
from patchctl.ansible.ssh_agent import private_agent


@dataclass
class NodeRunResult(RunResult):
    """A run through an execution node; ``error`` says why it ended without a recap (node down,
    SSH dropped, worker failed): the hosts it did not report on have an unknown outcome."""

    node: str = ""
    error: str | None = None
    cpu_seconds: float = 0.0  # this process's CPU while the node ran (threads share it: approximate)


def _node_project(pdd: Path, playbook: Path, known_hosts: str) -> Path:
    """The job's project: the playbooks, roles, modules and module_utils, shipped with it (a few hundred KiB)."""
    project = pdd / "project"
    shutil.copytree(playbook.parent, project)
    shutil.copytree(paths.roles_dir(), project / "roles")
    for src, name in (
        (paths.modules_dir(), "library"),
        (paths.module_utils_dir(), "module_utils"),
    ):
        if src.is_dir():
            shutil.copytree(src, project / name)
    (project / "known_hosts").write_text(known_hosts)
    return project


def _node_env(job: NodeJob, remote_dir: str) -> dict[str, str]:
    """ansible_env() for the node: its own paths, the job's project, host key checking on."""
    project = f"{remote_dir}/project"
    env = {k: v for k, v in ansible_env().items() if not k.startswith("ANSIBLE_") or k in _NODE_KEEP}
    env.update(
        {
            "PATH": f"{job.node.venv}/bin:/usr/local/bin:/usr/bin:/bin",
            "ANSIBLE_LIBRARY": f"{project}/library",
            "ANSIBLE_MODULE_UTILS": f"{project}/module_utils",
            "ANSIBLE_ROLES_PATH": f"{project}/roles",
            "ANSIBLE_COLLECTIONS_PATH": job.node.collections,
            "ANSIBLE_HOST_KEY_CHECKING": "True",
        }
    )
    return env


_NODE_KEEP = frozenset(
    {
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH",
        "ANSIBLE_INVENTORY_UNPARSED_FAILED",
        "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED",
        "ANSIBLE_PIPELINING",
        "ANSIBLE_SSH_ARGS",
        "ANSIBLE_INTERPRETER_PYTHON",
        "ANSIBLE_RETRY_FILES_ENABLED",
        "ANSIBLE_NOCOLOR",
    }
)


def node_worker_command(node: ExecutionNode, remote_dir: str) -> str:
    """The remote shell command that starts ``ansible-runner worker`` on ``node`` in
    ``remote_dir``: ssh hands the node's shell one string, so every path in it is quoted."""
    return (
        f"PATH={shlex.quote(node.venv)}/bin:$PATH ansible-runner worker "
        f"--private-data-dir={shlex.quote(remote_dir)} --delete"
    )


def run_on_node(
    job: NodeJob,
    playbook: Path,
    extravars: Mapping[str, Any] | None = None,
    on_event: Callable[[HostEvent], None] | None = None,
    timeout: int | None = None,
    forks: int | None = None,
) -> NodeRunResult:
    """Run ``playbook`` over ``job.hosts`` on the execution node ``job.node``.

    ``ansible-runner transmit`` packs the job here, ``ansible-runner worker`` runs it on the node
    (over SSH, in a fresh directory it deletes afterwards) and ``ansible-runner process`` turns
    its stream into events here, delivered to ``on_event`` as they arrive, like
    :meth:`~patchctl.ansible.runner.PlaybookRunner.run`.
    A node that cannot be reached or drops the stream gives a result with ``error`` set; the
    events received until then have been delivered.
    """
    playbook = playbook.resolve()
    translator = EventTranslator(on_event)
    remote_dir = f"{job.node.node_dir}/jobs/{uuid.uuid4().hex[:16]}"  # the worker deletes it (--delete)
    recap: dict[str, Any] = {}
    cpu_start = time.process_time()

    def handler(event: dict[str, Any]) -> bool:
        if event.get("event") == "playbook_on_stats":
            recap.update(event.get("event_data") or {})
        return translator(event)

    with private_data_dir() as pdd, private_data_dir() as out_dir, private_agent(job.agent_keys) as agent_env:
        _node_project(pdd, playbook, job.known_hosts)
        (pdd / "inventory").mkdir()
        (pdd / "inventory" / "hosts.yml").write_text(json.dumps(job.inventory))  # JSON is YAML
        proc = subprocess.Popen(
            [*job.node.ssh, node_worker_command(job.node, remote_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **agent_env},
        )
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        stderr_lines: deque[str] = deque(maxlen=20)

        def drain_stderr() -> None:
            assert proc.stderr is not None
            for raw in proc.stderr:
                stderr_lines.append(raw.decode(errors="replace").strip())

        transmit_error: list[BaseException] = []

        def transmit() -> None:
            assert proc.stdin is not None
            kwargs: dict[str, Any] = {
                "private_data_dir": str(pdd),
                "playbook": playbook.name,
                "envvars": _node_env(job, remote_dir),
                "json_mode": True,
                "quiet": True,
                "suppress_env_files": True,
                "streamer": "transmit",
                "_output": proc.stdin,
                "settings": {"pexpect_timeout": 0.5},
            }
            if extravars:
                kwargs["extravars"] = dict(extravars)
            if forks or job.forks:
                kwargs["forks"] = forks or job.forks
            if timeout:
                kwargs["timeout"] = timeout
            try:
                ansible_runner.run(**kwargs)
            except (OSError, ValueError) as exc:  # the node closed the pipe: told by the stream's end
                transmit_error.append(exc)
            finally:
                with contextlib.suppress(OSError):
                    proc.stdin.close()

        threads = [threading.Thread(target=drain_stderr, daemon=True), threading.Thread(target=transmit, daemon=True)]
        for th in threads:
            th.start()
        status = "error"
        try:
            processor = ansible_runner.run(
                private_data_dir=str(out_dir),
                streamer="process",
                _input=proc.stdout,
                event_handler=handler,
                quiet=True,
            )
            status = str(getattr(processor, "status", "") or "error")
        except Exception as exc:  # a garbled stream: the node's outcome is unknown
            stderr_lines.append(f"bad stream from the node: {exc}")
        finally:
            with contextlib.suppress(OSError):
                proc.stdout.close()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            for th in threads:
                th.join(timeout=10)
        if translator.exception is None:
            translator.flush()
    if translator.exception is not None:
        raise translator.exception
    stats = stats_by_host(recap) if recap else {}
    error = None
    if not recap:
        last_stderr = next((ln for ln in reversed(stderr_lines) if ln), "")
        said = (
            ansible_error("\n".join(translator.errors))
            or last_stderr
            or (f"ssh exited {proc.returncode}" if proc.returncode else f"the stream ended {status}")
        )
        error = f"execution node {job.node.name}: {said}"
    rc = 0 if recap and not any(s.get("failures") or s.get("unreachable") for s in stats.values()) else 2
    return NodeRunResult(
        status="successful" if rc == 0 else ("failed" if recap else "error"),
        rc=rc if recap else -1,
        stats=stats,
        hosts_seen=translator.hosts_seen | set(stats),
        node=job.node.name,
        error=error,
        cpu_seconds=time.process_time() - cpu_start,
    )
