"""The runner adapter: a typed adapter around ansible-runner for runs on the control node.

Every local playbook run goes through :class:`PlaybookRunner`. Per run it makes a private data
directory (removed afterwards, so no secret outlives the run), runs ``ansible-playbook`` with
patchctl's content and pinned collections, turns ansible-runner's events into small
:class:`HostEvent` values delivered to the caller *as they arrive*, and returns a
:class:`RunResult` built from ``Runner.stats``. :func:`ansible_env` is the environment of every Ansible command patchctl
starts; :class:`EventTranslator` is shared with runs through an execution node
(:mod:`patchctl.ansible.streaming`).

Only :mod:`patchctl.ansible` imports ``ansible_runner``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Literal, cast

import ansible_runner

from patchctl import paths
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
ORIGIN_RE = re.compile(r"^Origin: (?P<file>/[^<>]*?):(?P<line>\d+)(?::(?P<col>\d+))?$")


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


def plain_text(text: str) -> str:
    """Ansible's output without colour codes and carriage returns."""
    return _ANSI_RE.sub("", text).replace("\r", "")


def ansible_error(output: str) -> str | None:
    """The first ``[ERROR]:`` of Ansible's output, with its ``Origin:`` file and line if given."""
    lines = [ln.strip() for ln in plain_text(output).splitlines()]
    for i, line in enumerate(lines):
        if line.startswith("[ERROR]:"):
            msg = line.removeprefix("[ERROR]:").strip()
            for nxt in lines[i + 1 : i + 4]:
                m = ORIGIN_RE.match(nxt)
                if m:
                    return f"{msg} ({m['file']}, line {m['line']})"
            return msg
    return None


def require_inventory(inventory: str) -> Path:
    """``inventory`` (a file or directory) as an absolute path; ConfigError when it is missing."""
    path = Path(inventory).expanduser()
    if not path.exists():
        raise ConfigError(f"inventory {inventory}: no such file or directory")
    return path.resolve()


@contextmanager
def private_data_dir() -> Iterator[Path]:
    """A fresh private data directory for one ansible-runner call, removed afterwards."""
    pdd = Path(tempfile.mkdtemp(prefix="patchctl-run-"))
    try:
        yield pdd
    finally:
        shutil.rmtree(pdd, ignore_errors=True)


class EventTranslator:
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


def stats_by_host(stats: Mapping[str, Any] | None) -> dict[str, dict[str, int]]:
    """ansible-runner's play recap (``Runner.stats``) as patchctl's counters per host."""
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
        inv_path = require_inventory(inventory)
        playbook = playbook.resolve()
        if not playbook.is_file():
            raise ConfigError(f"playbook {playbook}: no such file")
        translator = EventTranslator(on_event)
        self._cancel.clear()

        def cancel_callback() -> bool:
            return self._cancel.is_set() or translator.exception is not None

        def finished_callback(runner: Any) -> None:
            self.last_status = str(getattr(runner, "status", ""))

        with private_data_dir() as pdd, self._signals_cancel():
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
            error = ansible_error("\n".join(translator.errors)) or ansible_error(stdout)
            raise ConfigError(f"{playbook.name} did not run (rc {rc}): {error or 'no error message from ansible'}")
        result = RunResult(
            status=status,
            rc=rc,
            stats=stats_by_host(stats),
            hosts_seen=translator.hosts_seen | set(stats_by_host(stats)),
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


def result_message(result: Any) -> str:
    """One line saying why a task failed or a host was unreachable, from its result."""
    if isinstance(result, dict):
        for key in ("msg", "stderr", "module_stderr", "reason"):
            value = result.get(key)
            if isinstance(value, str) and value.strip():
                return " ".join(value.strip().split())[:500]
    return "no message"
