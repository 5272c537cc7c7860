"""The one place that runs Ansible: a typed adapter around ansible-runner.

Every playbook run goes through :class:`PlaybookRunner`. Per run it makes a private data directory
(removed afterwards, so no secret outlives the run), runs ``ansible-playbook`` with patchctl's
content and pinned collections, turns ansible-runner's events into small :class:`HostEvent`
values delivered to the caller *as they arrive*, and returns a :class:`RunResult` built from
``Runner.stats``. :func:`list_inventory` runs ``ansible-inventory --list`` the same way.

Nothing else in patchctl imports ``ansible_runner``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Literal, cast

import ansible_runner

from patchctl import paths
from patchctl.ansible.nodes import ExecutionNode, NodeJob
from patchctl.errors import EXIT_HOST_FAILURES, ConfigError, PatchctlError

HostStatus = Literal["ok", "failed", "unreachable", "skipped"]

# ansible-runner's status and rc for a run that was canceled or ran out of time.
RC_CANCELED_OR_TIMEOUT = 254

_EVENT_STATUS: dict[str, HostStatus] = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
    "runner_item_on_ok": "ok",
    "runner_item_on_failed": "failed",
    "runner_item_on_skipped": "skipped",
}
_ITEM_EVENTS = frozenset({"runner_item_on_ok", "runner_item_on_failed", "runner_item_on_skipped"})

# Runner.stats key -> patchctl's per-host counter name.
_STATS_KEYS = {
    "ok": "ok",
    "changed": "changed",
    "failures": "failures",
    "dark": "unreachable",
    "skipped": "skipped",
    "rescued": "rescued",
    "ignored": "ignored",
}

_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_ORIGIN_RE = re.compile(r"^Origin: (?P<file>/[^<>]*?):(?P<line>\d+)(?::(?P<col>\d+))?$")
_PLUGIN_FAIL_RE = re.compile(r"^\[WARNING\]: Failed to parse inventory with '(?P<plugin>[\w.]+)' "
                             r"plugin: (?P<msg>.*)$")  # fmt: skip


@dataclass(frozen=True)
class HostEvent:
    """One task result on one host, as Ansible reports it.

    ``item`` is True for one item of a loop (``runner_item_on_*``); the task's own event for the
    host follows its items. A failure that the task ignores (``ignore_errors``) is not reported.
    """

    host: str
    status: HostStatus
    task: str
    action: str
    result: dict[str, Any]
    item: bool = False


@dataclass
class RunResult:
    """How one playbook run ended.

    ``status`` is ansible-runner's (``successful`` or ``failed``), ``rc`` ansible-playbook's exit
    code, ``stats`` the play recap per host (``ok``, ``changed``, ``failures``, ``unreachable``,
    ``skipped``, ``rescued``, ``ignored``) and ``hosts_seen`` every host that any event named.
    """

    status: str
    rc: int
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    hosts_seen: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return self.status == "successful" and self.rc == 0

    @property
    def failed_hosts(self) -> set[str]:
        return {h for h, s in self.stats.items() if s.get("failures", 0) > 0}

    @property
    def unreachable_hosts(self) -> set[str]:
        return {h for h, s in self.stats.items() if s.get("unreachable", 0) > 0}


def ansible_bin_dir() -> Path:
    """Where this Python's ``ansible-*`` commands are: the venv's (or prefix's) ``bin``."""
    return Path(sys.executable).parent


def ansible_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment patchctl gives every Ansible command (on top of the process's own)."""
    env = {
        "PATH": os.pathsep.join([str(ansible_bin_dir()), os.environ.get("PATH", os.defpath)]),
        "ANSIBLE_LIBRARY": str(paths.modules_dir()),
        "ANSIBLE_MODULE_UTILS": str(paths.module_utils_dir()),
        "ANSIBLE_ROLES_PATH": str(paths.roles_dir()),
        "ANSIBLE_FILTER_PLUGINS": str(paths.filter_plugins_dir()),
        "ANSIBLE_COLLECTIONS_PATH": str(paths.collections_dir()),
        # only the pinned collections, never whatever else is on sys.path
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "False",
        # a malformed inventory is an error, not an empty inventory with a warning
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
        "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True",
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_SSH_ARGS": "-C -o ControlMaster=auto -o ControlPersist=60s",
        "ANSIBLE_INTERPRETER_PYTHON": "auto_silent",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "True",
    }
    env.update(extra or {})
    # ansible-runner turns host key checking off unless it is set: patchctl keeps it on, always.
    env["ANSIBLE_HOST_KEY_CHECKING"] = "True"
    return env


def _plain(text: str) -> str:
    return _ANSI_RE.sub("", text).replace("\r", "")


def _ansible_error(output: str) -> str | None:
    """The first ``[ERROR]:`` of Ansible's output, with its ``Origin:`` file and line if given."""
    lines = [ln.strip() for ln in _plain(output).splitlines()]
    for i, line in enumerate(lines):
        if line.startswith("[ERROR]:"):
            msg = line.removeprefix("[ERROR]:").strip()
            for nxt in lines[i + 1 : i + 4]:
                m = _ORIGIN_RE.match(nxt)
                if m:
                    return f"{msg} ({m['file']}, line {m['line']})"
            return msg
    return None


def _require_inventory(inventory: str) -> Path:
    path = Path(inventory).expanduser()
    if not path.exists():
        raise ConfigError(f"inventory {inventory}: no such file or directory")
    return path.resolve()


@contextmanager
def _private_data_dir() -> Iterator[Path]:
    pdd = Path(tempfile.mkdtemp(prefix="patchctl-run-"))
    try:
        yield pdd
    finally:
        shutil.rmtree(pdd, ignore_errors=True)


class _EventTranslator:
    """Turns ansible-runner events into HostEvents, calling ``on_event`` as they arrive.

    Loop items are held back until their task's own event for the host arrives, because only that
    event says whether the task ignores its errors.
    """

    def __init__(self, on_event: Callable[[HostEvent], None] | None) -> None:
        self.on_event = on_event
        self.hosts_seen: set[str] = set()
        # Ansible's own messages (errors before any play starts come only this way)
        self.errors: deque[str] = deque(maxlen=200)
        self._items: dict[tuple[str, str], list[HostEvent]] = {}
        self.exception: BaseException | None = None

    def __call__(self, event: dict[str, Any]) -> bool:
        name = str(event.get("event", ""))
        data = event.get("event_data") or {}
        host = data.get("host")
        if isinstance(host, str) and host:
            self.hosts_seen.add(host)
        if name in ("verbose", "error"):
            self.errors.append(str(event.get("stdout", "")))
        status = _EVENT_STATUS.get(name)
        if status is not None and isinstance(host, str) and self.exception is None:
            try:
                self._translate(name, status, host, data)
            except Exception as exc:  # re-raised by PlaybookRunner.run once the run has stopped
                self.exception = exc
        # Only the recap is written to the artifacts (Runner.stats reads it): task results may
        # carry secrets, and nothing else needs them on disk.
        return name == "playbook_on_stats"

    def _translate(self, name: str, status: HostStatus, host: str, data: dict[str, Any]) -> None:
        res = data.get("res")
        hev = HostEvent(
            host=host,
            status=status,
            task=str(data.get("task") or ""),
            action=str(data.get("task_action") or ""),
            result=cast("dict[str, Any]", res) if isinstance(res, dict) else {},
            item=name in _ITEM_EVENTS,
        )
        key = (host, str(data.get("task_uuid") or ""))
        if hev.item:
            self._items.setdefault(key, []).append(hev)
            return
        items = self._items.pop(key, [])
        ignored = status == "failed" and bool(data.get("ignore_errors"))
        for item in items:
            if not (ignored and item.status == "failed"):
                self._emit(item)
        if not ignored:
            self._emit(hev)

    def flush(self) -> None:
        """Deliver loop items whose task event never came (the run stopped in the loop)."""
        pending, self._items = self._items, {}
        for items in pending.values():
            for item in items:
                self._emit(item)

    def _emit(self, hev: HostEvent) -> None:
        if self.on_event is not None:
            self.on_event(hev)


def _stats_by_host(stats: Mapping[str, Any] | None) -> dict[str, dict[str, int]]:
    per_host: dict[str, dict[str, int]] = {}
    if not stats:
        return per_host
    for host in stats.get("processed", {}) or {}:
        per_host[str(host)] = dict.fromkeys(_STATS_KEYS.values(), 0)
    for key, ours in _STATS_KEYS.items():
        for host, count in (stats.get(key) or {}).items():
            per_host.setdefault(str(host), dict.fromkeys(_STATS_KEYS.values(), 0))[ours] = int(count)
    return per_host


class PlaybookRunner:
    """Runs patchctl's playbooks through ansible-runner, one private data dir per run.

    ``extra_env`` is added to the environment of every run (host key checking stays on whatever
    it says). ``cancel()`` (from another thread) or SIGINT/SIGTERM (when running in the main
    thread) stops a run; it then ends with a PatchctlError, like a timeout.
    """

    def __init__(
        self,
        extra_env: Mapping[str, str] | None = None,
        *,
        verbosity: int = 0,
        rotate_artifacts: int = 1,
    ) -> None:
        self.extra_env = dict(extra_env or {})
        self.verbosity = verbosity
        self.rotate_artifacts = rotate_artifacts
        self._cancel = threading.Event()
        self.last_status: str | None = None

    def cancel(self) -> None:
        """Ask the current run to stop (safe from any thread or a signal handler)."""
        self._cancel.set()

    def run(
        self,
        playbook: Path,
        inventory: str,
        limit: str | None = None,
        extravars: Mapping[str, Any] | None = None,
        on_event: Callable[[HostEvent], None] | None = None,
        timeout: int | None = None,
        forks: int | None = None,
        *,
        require_hosts: bool = True,
    ) -> RunResult:
        """Run ``playbook`` over ``inventory`` (a file or directory) and report per host.

        ``on_event`` is called in order, as results arrive; if it raises, the run is canceled and
        the exception is re-raised here. Raises ConfigError when the inventory is missing or
        malformed, the playbook cannot be parsed, or (with ``require_hosts``) no host was
        targeted; PatchctlError (exit 1) when the run was canceled or timed out.
        """
        inv_path = _require_inventory(inventory)
        playbook = playbook.resolve()
        if not playbook.is_file():
            raise ConfigError(f"playbook {playbook}: no such file")
        translator = _EventTranslator(on_event)
        self._cancel.clear()

        def cancel_callback() -> bool:
            return self._cancel.is_set() or translator.exception is not None

        def finished_callback(runner: Any) -> None:
            self.last_status = str(getattr(runner, "status", ""))

        with _private_data_dir() as pdd, self._signals_cancel():
            kwargs: dict[str, Any] = {
                "private_data_dir": str(pdd),
                "playbook": str(playbook),
                "inventory": str(inv_path),
                "envvars": ansible_env(self.extra_env),
                "json_mode": True,
                "quiet": True,
                "suppress_env_files": True,
                "rotate_artifacts": self.rotate_artifacts,
                "event_handler": translator,
                "cancel_callback": cancel_callback,
                "finished_callback": finished_callback,
                "verbosity": self.verbosity,
                # how often runner looks at cancel/timeout while Ansible is quiet (default 5 s)
                "settings": {"pexpect_timeout": 0.5},
            }
            if limit:
                kwargs["limit"] = limit
            if forks:
                kwargs["forks"] = forks
            if timeout:
                kwargs["timeout"] = timeout
            if extravars:
                # A file in the private dir, not the command line: no secret in `ps`, no
                # ARG_MAX limit for large per-host update lists. The dir is removed afterwards.
                vars_file = pdd / "extravars.json"
                fd = os.open(vars_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(dict(extravars), fh)
                kwargs["cmdline"] = f"-e @{shlex.quote(str(vars_file))}"
            try:
                runner = ansible_runner.run(**kwargs)
            except ansible_runner.exceptions.AnsibleRunnerException as exc:
                raise ConfigError(f"cannot run {playbook.name}: {exc}") from exc
            if translator.exception is None:
                try:
                    translator.flush()
                except Exception as exc:  # same contract as an exception during the run
                    translator.exception = exc
            status = str(runner.status)
            rc = int(runner.rc) if runner.rc is not None else -1
            stats = runner.stats
            stdout = self._read_stdout(runner)

        if translator.exception is not None:
            raise translator.exception
        if status == "canceled":
            raise PatchctlError(f"run of {playbook.name} canceled", EXIT_HOST_FAILURES)
        if status == "timeout" or (rc == RC_CANCELED_OR_TIMEOUT and stats is None):
            raise PatchctlError(f"run of {playbook.name} timed out after {timeout} s", EXIT_HOST_FAILURES)
        if stats is None:
            # ansible-playbook stopped before any play ran: bad playbook, inventory or limit.
            error = _ansible_error("\n".join(translator.errors)) or _ansible_error(stdout)
            raise ConfigError(f"{playbook.name} did not run (rc {rc}): {error or 'no error message from ansible'}")
        result = RunResult(
            status=status,
            rc=rc,
            stats=_stats_by_host(stats),
            hosts_seen=translator.hosts_seen | set(_stats_by_host(stats)),
        )
        if require_hosts and not result.hosts_seen:
            where = f"inventory {inv_path}" + (f" with --limit {limit}" if limit else "")
            raise ConfigError(f"no hosts to run {playbook.name} on: {where} targets none")
        return result

    @staticmethod
    def _read_stdout(runner: Any) -> str:
        try:
            with runner.stdout as fh:
                return str(fh.read())
        except Exception:  # the stdout artifact only serves for an error message
            return ""

    @contextmanager
    def _signals_cancel(self) -> Iterator[None]:
        """In the main thread, SIGINT/SIGTERM cancel the run; previous handlers come back after."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(_signum: int, _frame: FrameType | None) -> None:
            self.cancel()

        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in previous:
            signal.signal(sig, handler)
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


def _inventory_error(inventory: Path, stderr: str, rc: int | None = None) -> str:
    """One line saying what is wrong with ``inventory``, taken from ansible-inventory's stderr
    (and its exit status ``rc`` when the stderr names no cause)."""
    text = _plain(stderr)
    lines = [ln.strip() for ln in text.splitlines()]
    failures: dict[str, str] = {}
    for ln in lines:
        m = _PLUGIN_FAIL_RE.match(ln)
        if m:
            failures.setdefault(m["plugin"], m["msg"].strip())
    location = ""
    for ln in lines:
        m = _ORIGIN_RE.match(ln)
        if m is None:
            continue
        origin = Path(m["file"])
        if origin == inventory or inventory in origin.parents:
            where = f"{origin.name} " if inventory.is_dir() else ""
            location = f"{where}line {m['line']}" + (f", column {m['col']}" if m["col"] else "")
            break
    if inventory.suffix in (".yml", ".yaml", ".json"):
        order = ("yaml", "auto", "ini", "toml", "script", "host_list")
    else:
        order = ("ini", "yaml", "auto", "toml", "script", "host_list")
    reason = next((failures[p] for p in order if p in failures), None)
    if reason is None and failures:
        reason = next(iter(failures.values()))
    if reason is None:
        reason = _ansible_error(text)
    if reason is None:
        last = next((ln for ln in reversed(lines) if ln), "")
        status = "" if rc is None else f"exit {rc}" + (f" (killed by signal {-rc})" if rc < 0 else "")
        detail = "; ".join(part for part in (status, last[:300]) if part)
        reason = "ansible-inventory could not read it" + (f" ({detail})" if detail else "")
    reason = reason.splitlines()[0]
    return f"inventory {inventory}: {location + ': ' if location else ''}{reason}"


def result_message(result: Any) -> str:
    """One line saying why a task failed or a host was unreachable, from its result."""
    if isinstance(result, dict):
        for key in ("msg", "stderr", "module_stderr", "reason"):
            value = result.get(key)
            if isinstance(value, str) and value.strip():
                return " ".join(value.strip().split())[:500]
    return "no message"


def inventory_hosts(data: Mapping[str, Any]) -> set[str]:
    """Every host named in ``ansible-inventory --list`` output."""
    hosts: set[str] = set((data.get("_meta") or {}).get("hostvars") or {})
    for name, group in data.items():
        if name != "_meta" and isinstance(group, dict):
            hosts.update(str(h) for h in group.get("hosts") or [])
    return hosts


def list_inventory(inventory: str, *, allow_empty: bool = False) -> dict[str, Any]:
    """``ansible-inventory --list`` of ``inventory``, as a dict.

    Raises ConfigError with one line naming the file and what is wrong when the inventory is
    missing or malformed, or (unless ``allow_empty``) has no hosts.
    """
    inv_path = _require_inventory(inventory)
    exe = ansible_bin_dir() / "ansible-inventory"
    command = str(exe) if exe.exists() else (shutil.which("ansible-inventory") or "")
    if not command:
        raise ConfigError("ansible-inventory not found (is ansible-core installed?)")
    # stdin is /dev/null, not patchctl's own: Ansible refuses to start on a non-blocking stdin
    # ("Ansible requires blocking IO"), and a caller's stdin can be left non-blocking by another
    # process that shares it (an ssh client killed before it restored the flag, a CI runner).
    with _private_data_dir() as pdd, open(os.devnull, "rb") as devnull:
        try:
            out, err, rc = ansible_runner.run_command(
                executable_cmd=command,
                cmdline_args=["--list", "-i", str(inv_path)],
                runner_mode="subprocess",
                private_data_dir=str(pdd),
                envvars=ansible_env(),
                quiet=True,
                suppress_env_files=True,
                input_fd=devnull,
            )
        except ansible_runner.exceptions.AnsibleRunnerException as exc:
            raise ConfigError(f"inventory {inv_path}: cannot run ansible-inventory: {exc}") from exc
    if rc != 0:
        raise ConfigError(_inventory_error(inv_path, str(err or out), int(rc) if rc is not None else None))
    try:
        data = json.loads(str(out))
    except ValueError as exc:
        raise ConfigError(f"inventory {inv_path}: ansible-inventory gave no JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"inventory {inv_path}: ansible-inventory gave no mapping")
    if not allow_empty and not inventory_hosts(data):
        raise ConfigError(f"inventory {inv_path}: no hosts in it")
    return cast("dict[str, Any]", data)


# --- execution nodes: ansible-runner's streaming engine (patchctl.ansible.nodes) -----------------------


@dataclass
class NodeRunResult(RunResult):
    """A run through an execution node; ``error`` says why it ended without a recap (node down,
    SSH dropped, worker failed): the hosts it did not report on have an unknown outcome."""

    node: str = ""
    error: str | None = None
    cpu_seconds: float = 0.0  # this process's CPU while the node ran (threads share it: approximate)


def _node_project(pdd: Path, playbook: Path, known_hosts: str) -> Path:
    """The job's project: the playbooks, roles and plugins, shipped with it (a few hundred KiB)."""
    project = pdd / "project"
    shutil.copytree(playbook.parent, project)
    shutil.copytree(paths.roles_dir(), project / "roles")
    for src, name in (
        (paths.modules_dir(), "library"),
        (paths.module_utils_dir(), "module_utils"),
        (paths.filter_plugins_dir(), "filter_plugins"),
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
            "ANSIBLE_FILTER_PLUGINS": f"{project}/filter_plugins",
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


def _wait_for_agent(agent: subprocess.Popen[bytes], sock: str, timeout: float = 15.0) -> None:
    """Until the agent accepts connections: its socket file exists from bind(), before listen(),
    so an ssh-add right then is refused (seen on a loaded machine)."""
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(sock)
                return
            except OSError as exc:
                if agent.poll() is not None:
                    raise ConfigError(f"ssh-agent for an execution node exited {agent.returncode}") from exc
                if time.monotonic() > deadline:
                    raise ConfigError(f"ssh-agent for an execution node does not answer on {sock}: {exc}") from exc
        time.sleep(0.02)


@contextmanager
def _ssh_agent(keys: tuple[str, ...]) -> Iterator[dict[str, str]]:
    """A private ssh-agent holding ``keys``, for one node run (forwarded with ``ssh -A``)."""
    if not keys:
        yield {}
        return
    with tempfile.TemporaryDirectory(prefix="patchctl-agent-") as tmp:
        sock = str(Path(tmp) / "agent.sock")
        agent = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL)
        try:
            _wait_for_agent(agent, sock)
            env = {**os.environ, "SSH_AUTH_SOCK": sock}
            for key in keys:
                proc = subprocess.run(["ssh-add", "-q", key], env=env, capture_output=True, text=True, check=False)
                if proc.returncode != 0:
                    raise ConfigError(f"cannot load the SSH key {key} for an execution node: {proc.stderr.strip()}")
            yield {"SSH_AUTH_SOCK": sock}
        finally:
            agent.terminate()
            agent.wait(timeout=10)


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
    its stream into events here, delivered to ``on_event`` as they arrive, like :meth:`PlaybookRunner.run`.
    A node that cannot be reached or drops the stream gives a result with ``error`` set; the
    events received until then have been delivered.
    """
    playbook = playbook.resolve()
    translator = _EventTranslator(on_event)
    remote_dir = f"{job.node.node_dir}/jobs/{uuid.uuid4().hex[:16]}"  # the worker deletes it (--delete)
    recap: dict[str, Any] = {}
    cpu_start = time.process_time()

    def handler(event: dict[str, Any]) -> bool:
        if event.get("event") == "playbook_on_stats":
            recap.update(event.get("event_data") or {})
        return translator(event)

    with _private_data_dir() as pdd, _private_data_dir() as out_dir, _ssh_agent(job.agent_keys) as agent_env:
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
    stats = _stats_by_host(recap) if recap else {}
    error = None
    if not recap:
        last_stderr = next((ln for ln in reversed(stderr_lines) if ln), "")
        said = _ansible_error("\n".join(translator.errors)) or last_stderr or (
            f"ssh exited {proc.returncode}" if proc.returncode else f"the stream ended {status}"
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
