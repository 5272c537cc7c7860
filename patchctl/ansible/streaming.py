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
import io
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
    """A run through an execution node; ``error`` says why it ended without a recap (node down or
    out of reach for good, worker failed): the hosts it did not report on have an unknown outcome."""

    node: str = ""
    error: str | None = None
    cpu_seconds: float = 0.0  # this process's CPU while the node ran (threads share it: approximate)
    reattached: int = 0  # how often the stream was re-attached after its SSH session ended early


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
    """The shell command line of ``ansible-runner worker`` on ``node`` for the private data
    directory ``remote_dir``: every path in it is quoted (a shell reads it)."""
    return (
        f"PATH={shlex.quote(node.venv)}/bin:$PATH ansible-runner worker "
        f"--private-data-dir={shlex.quote(remote_dir)} --delete"
    )


# The job directory on the node: the job as transmitted (removed once the worker has opened it),
# the worker's private data dir, its event stream (the spool), its stderr, pid and exit code, and
# a link to the agent of whichever SSH session is attached now.
SPOOL = "spool"
# Exit codes of an attach: the worker has finished and the spool holds nothing more; no such job.
_NOTHING_MORE = 7
_JOB_GONE = 3
# How long to keep trying to re-attach to a node (no new bytes in between), and the pause.
REATTACH_SECONDS = 60.0
REATTACH_PAUSE = 2.0


# Follows the spool from a byte offset until the worker's exit code is there and every byte is
# out (argv: spool, offset, the exit code file, the wrapper's pid file). Run by the node's Python.
_FOLLOW = """import os, sys, time
spool, offset, rc, pid = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def ended():
    if os.path.exists(rc):
        return True
    try:
        os.kill(int(open(pid).read()), 0)
    except (OSError, ValueError):
        return True
    return False
out = sys.stdout.buffer
with open(spool, "rb") as fh:
    fh.seek(offset)
    while True:
        over = ended()
        data = fh.read(65536)
        if data:
            out.write(data)
            out.flush()
        elif over:
            break
        else:
            time.sleep(0.1)
"""


def _follow(node: ExecutionNode, offset: int) -> str:
    return f"exec {shlex.quote(node.venv)}/bin/python -c {shlex.quote(_FOLLOW)} {SPOOL} {int(offset)} rc pid"


def node_job_command(node: ExecutionNode, job_dir: str) -> str:
    """The remote command that starts a job: it stores the transmitted job (its stdin) in
    ``job_dir``, starts ``ansible-runner worker`` detached from the SSH session (``setsid nohup``
    in a subshell: its own session, reaped by init, stdin from the stored job, output into the
    spool) and follows the spool. A dropped pipe stops only the follower: the worker runs to its
    end and the spool keeps every event for :func:`node_attach_command`. The worker reaches its
    hosts through the agent of the attached session (``agent.sock``, a link each attach re-points)."""
    d = shlex.quote(job_dir)
    worker = node_worker_command(node, f"{job_dir}/pdd")
    inner = (
        'exec < job.stream; rm -f job.stream; echo "$$" > pid.tmp; mv pid.tmp pid; '
        f"{worker} > {SPOOL} 2> worker.err; echo $? > rc.tmp; mv rc.tmp rc"
    )
    return (
        f"umask 077; mkdir -p {d} && cd {d} && cat > job.stream && : > {SPOOL} || exit {_JOB_GONE}; "
        'if [ -n "$SSH_AUTH_SOCK" ]; then ln -sfn "$SSH_AUTH_SOCK" agent.sock; fi; '
        f'(SSH_AUTH_SOCK="$PWD/agent.sock" setsid nohup sh -c {shlex.quote(inner)} < /dev/null > /dev/null 2>&1 &); '
        "n=0; while [ ! -s pid ] && [ $n -lt 400 ]; do sleep 0.05; n=$((n + 1)); done; " + _follow(node, 0)
    )


def node_attach_command(node: ExecutionNode, job_dir: str, offset: int) -> str:
    """The remote command that re-attaches to a running (or finished) job: the spool from byte
    ``offset`` on, followed until the worker ends; exit 7 when the worker has ended and the
    spool holds nothing past ``offset``, 3 when there is no such job."""
    d = shlex.quote(job_dir)
    return (
        f"cd {d} 2> /dev/null && test -s pid || exit {_JOB_GONE}; "
        'if [ -n "$SSH_AUTH_SOCK" ]; then ln -sfn "$SSH_AUTH_SOCK" agent.sock; fi; '
        f'if [ -s rc ] && [ "$(wc -c < {SPOOL})" -le {int(offset)} ]; then exit {_NOTHING_MORE}; fi; '
        + _follow(node, offset)
    )


def node_cleanup_command(job_dir: str) -> str:
    return f"rm -rf {shlex.quote(job_dir)}"


class _Attachment:
    """One SSH session to the node with its stderr drained into ``lines``."""

    def __init__(self, argv: list[str], env: Mapping[str, str], lines: deque[str], stdin: bool) -> None:
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            bufsize=0,  # raw reads: what the node sent so far, never waiting to fill a buffer
            stderr=subprocess.PIPE,
            env=dict(env),
        )
        self._lines = lines
        self._drain = threading.Thread(target=self._drain_stderr, daemon=True)
        self._drain.start()

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            text = raw.decode(errors="replace").strip()
            if text:
                self._lines.append(text)

    def close(self) -> int:
        """Wait for the session to end (kill it after 30 s); its exit code."""
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._drain.join(timeout=10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return self.proc.returncode


class SpoolStream(io.RawIOBase):
    """The node's event stream as one file, whatever happens to the SSH sessions carrying it.

    Reads come from the current session; when it ends before the reader is done (the pipe
    dropped), a new session re-attaches to the spool at the byte reached so far, so the reader
    sees every byte once, in order. It gives up (end of file) when the worker has ended with
    nothing more, the job is gone, no byte came for ``REATTACH_SECONDS``, or none had come at
    all before the first session ended (and one re-attach brought none).
    """

    def __init__(self, node: ExecutionNode, job_dir: str, first: _Attachment, env: Mapping[str, str],
                 lines: deque[str]) -> None:  # fmt: skip
        super().__init__()
        self.node = node
        self.job_dir = job_dir
        self.current: _Attachment | None = first
        self.env = env
        self.lines = lines
        self.offset = 0
        self.reattached = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        since = time.monotonic()
        # Before the first byte, one re-attach only: a node that was never reached is not waited for.
        limit = REATTACH_SECONDS if self.offset else 0.0
        tries = 0
        while True:
            if self.current is not None:
                assert self.current.proc.stdout is not None
                data = self.current.proc.stdout.read(len(view))
                if data:
                    view[: len(data)] = data
                    self.offset += len(data)
                    return len(data)
                rc = self.current.close()
                self.current = None
                if rc in (_NOTHING_MORE, _JOB_GONE):
                    return 0
            if tries and time.monotonic() - since >= limit:
                return 0
            if tries:
                time.sleep(REATTACH_PAUSE)
            tries += 1
            self.reattached += 1
            self.current = _Attachment(
                [*self.node.ssh, node_attach_command(self.node, self.job_dir, self.offset)],
                self.env,
                self.lines,
                stdin=False,
            )

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None
        super().close()


def _cleanup(node: ExecutionNode, job_dir: str, env: Mapping[str, str]) -> None:
    """Remove the job directory on the node once its stream is read to the end."""
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        subprocess.run(
            [*node.ssh, node_cleanup_command(job_dir)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=dict(env),
            timeout=60,
            check=False,
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
    (detached from the SSH session, its events spooled in the job's directory) and ``ansible-runner
    process`` turns the spool, read over SSH, into events here, delivered to ``on_event`` as they
    arrive, like :meth:`~patchctl.ansible.runner.PlaybookRunner.run`. A pipe that drops is
    re-attached (:class:`SpoolStream`): the worker went on, and the events it spooled meanwhile
    arrive then. A node that cannot be reached, or stays out of reach, gives a result with
    ``error`` set; the events received until then have been delivered.
    """
    playbook = playbook.resolve()
    translator = EventTranslator(on_event)
    job_dir = f"{job.node.node_dir}/jobs/{uuid.uuid4().hex[:16]}"
    recap: dict[str, Any] = {}
    cpu_start = time.process_time()

    def handler(event: dict[str, Any]) -> bool:
        if event.get("event") == "playbook_on_stats":
            recap.update(event.get("event_data") or {})
        return translator(event)

    stderr_lines: deque[str] = deque(maxlen=20)
    reattached = 0
    with private_data_dir() as pdd, private_data_dir() as out_dir, private_agent(job.agent_keys) as agent_env:
        _node_project(pdd, playbook, job.known_hosts)
        (pdd / "inventory").mkdir()
        (pdd / "inventory" / "hosts.yml").write_text(json.dumps(job.inventory))  # JSON is YAML
        env = {**os.environ, **agent_env}
        first = _Attachment([*job.node.ssh, node_job_command(job.node, job_dir)], env, stderr_lines, stdin=True)
        stream = SpoolStream(job.node, job_dir, first, env, stderr_lines)

        def transmit() -> None:
            stdin = first.proc.stdin
            assert stdin is not None
            kwargs: dict[str, Any] = {
                "private_data_dir": str(pdd),
                "playbook": playbook.name,
                "envvars": _node_env(job, f"{job_dir}/pdd"),
                "json_mode": True,
                "quiet": True,
                "suppress_env_files": True,
                "streamer": "transmit",
                "_output": stdin,
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
            except (OSError, ValueError):  # the node closed the pipe: told by the stream's end
                pass
            finally:
                with contextlib.suppress(OSError):
                    stdin.close()

        sender = threading.Thread(target=transmit, daemon=True)
        sender.start()
        status = "error"
        try:
            processor = ansible_runner.run(
                private_data_dir=str(out_dir),
                streamer="process",
                _input=io.BufferedReader(stream),
                event_handler=handler,
                quiet=True,
            )
            status = str(getattr(processor, "status", "") or "error")
        except Exception as exc:  # a garbled stream: the node's outcome is unknown
            stderr_lines.append(f"bad stream from the node: {exc}")
        finally:
            stream.close()
            sender.join(timeout=10)
            reattached = stream.reattached
        if recap:
            _cleanup(job.node, job_dir, env)
        if translator.exception is None:
            translator.flush()
    if translator.exception is not None:
        raise translator.exception
    stats = stats_by_host(recap) if recap else {}
    error = None
    if not recap:
        last_stderr = next((ln for ln in reversed(stderr_lines) if ln), "")
        rc = first.proc.returncode
        said = (
            ansible_error("\n".join(translator.errors))
            or last_stderr
            or (f"ssh exited {rc}" if rc else f"the stream ended {status}")
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
        reattached=reattached,
    )
