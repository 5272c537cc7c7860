"""Scheduling: the cron and systemd entries of patchctl's periodic jobs, and the locked, logged
run each entry starts (``patchctl schedule run JOB``).

Jobs (default times, local time of the control node):

=========  ===================================  ==========================================
job        command                              when
=========  ===================================  ==========================================
scan       ``patchctl scan``                    nightly at 02:00
verify     ``patchctl verify``                  daily at 06:00
promote    ``patchctl rollout promote --deploy``  hourly at minute 15
reboot     ``patchctl reboot``                  every 15 minutes (reboots only in windows)
=========  ===================================  ==========================================

Every entry runs ``patchctl schedule run JOB``: it takes an exclusive ``flock`` on
``<log_dir>/locks/JOB.lock`` without waiting (a run still going makes the next one log "skipped"
and exit 0), appends the job's output to ``<log_dir>/JOB.log`` between a start and an end line,
and exits with the job's exit code. The kernel drops a ``flock`` when the last process holding it
ends, however it ends, so a crashed run cannot leave the lock stuck; the job's process inherits
the lock, so a job outliving a killed runner still keeps the next run out.

``patchctl schedule --cron|--systemd`` prints the entries (:func:`entries`); with ``--install``
it writes them, checks systemd units with ``systemd-analyze verify`` and enables the timers when
this machine runs systemd.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from patchctl.errors import EXIT_HOST_FAILURES, ConfigError, PatchctlError

if TYPE_CHECKING:
    from patchctl.config import Config

LOG_ROTATE_BYTES = 10 * 1024 * 1024
EXIT_SKIPPED = 0
SCHEDULE_JSON_SCHEMA = "patchctl.schedule/1"
KIND_CRON = "cron"
KIND_SYSTEMD = "systemd"
SYSTEMD_UNIT_DIR = Path("/etc/systemd/system")
# Settings a scheduled run must see as the user saw them, by the variable that carries them.
_PINNED = {
    "db": "PATCHCTL_DB",
    "inventory": "PATCHCTL_INVENTORY",
    "policy": "PATCHCTL_POLICY",
    "log_dir": "PATCHCTL_LOG_DIR",
}
_PASS_ENV = ("PATCHCTL_HOME", "PATCHCTL_COLLECTIONS", "PATCHCTL_LAB_DIR", "PATCHCTL_CACHE")
# The command-line settings a scheduled run hands on to its job, with their options.
_HANDED_ON = (("db", "--db"), ("inventory", "--inventory"), ("policy", "--policy"), ("now", "--now"))


@dataclass(frozen=True)
class Job:
    name: str
    args: tuple[str, ...]  # patchctl's arguments
    description: str
    cron: str  # the five cron time fields
    calendar: str  # systemd OnCalendar=


@dataclass(frozen=True)
class Times:
    """When the jobs run: ``scan_at``/``verify_at`` as ``HH:MM``, the promotion's minute of each
    hour, the reboot runner's period in minutes (a divisor of 60)."""

    scan_at: str = "02:00"
    verify_at: str = "06:00"
    promote_minute: int = 15
    reboot_every: int = 15


def _hhmm(value: str, what: str) -> tuple[int, int]:
    try:
        hours, minutes = (int(p) for p in value.split(":"))
    except ValueError:
        raise ConfigError(f"{what}: expected HH:MM, got {value!r}") from None
    if not (0 <= hours < 24 and 0 <= minutes < 60):
        raise ConfigError(f"{what}: expected HH:MM, got {value!r}")
    return hours, minutes


def jobs(times: Times | None = None) -> list[Job]:
    """The scheduled jobs with their cron fields and systemd calendar expressions."""
    t = times or Times()
    sh, sm = _hhmm(t.scan_at, "--scan-at")
    vh, vm = _hhmm(t.verify_at, "--verify-at")
    if not 0 <= t.promote_minute < 60:
        raise ConfigError(f"--promote-minute: expected 0-59, got {t.promote_minute}")
    if t.reboot_every < 1 or 60 % t.reboot_every:
        raise ConfigError(f"--reboot-every: expected a divisor of 60 (minutes), got {t.reboot_every}")
    every = "*" if t.reboot_every == 1 else f"*/{t.reboot_every}"
    return [
        Job("scan", ("scan",), "patchctl nightly scan", f"{sm} {sh} * * *", f"*-*-* {sh:02d}:{sm:02d}:00"),
        Job("verify", ("verify",), "patchctl daily verify", f"{vm} {vh} * * *", f"*-*-* {vh:02d}:{vm:02d}:00"),
        Job(
            "promote",
            ("rollout", "promote", "--deploy"),
            "patchctl hourly promotion of baked waves",
            f"{t.promote_minute} * * * *",
            f"*-*-* *:{t.promote_minute:02d}:00",
        ),
        Job(
            "reboot",
            ("reboot",),
            "patchctl reboot runner (servers in their windows)",
            f"{every} * * * *",
            f"*-*-* *:00/{t.reboot_every}:00" if t.reboot_every > 1 else "*-*-* *:*:00",
        ),
    ]


def job(name: str, times: Times | None = None) -> Job:
    for j in jobs(times):
        if j.name == name:
            return j
    raise ConfigError(f"unknown scheduled job {name!r} (known: {', '.join(j.name for j in jobs())})")


def executable() -> str:
    """The ``patchctl`` the entries run: the one beside this Python, else ``python -m patchctl``."""
    beside = Path(sys.executable).parent / "patchctl"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return f"{sys.executable} -m patchctl"


def cron_file(env: Mapping[str, str], command: str, times: Times | None = None, user: str = "root") -> str:
    """An ``/etc/cron.d`` file (with the user field) running every job."""
    lines = [
        "# patchctl scheduled runs: written by `patchctl schedule --cron`.",
        "# Each runs `patchctl schedule run JOB`: one run at a time (flock), output appended to",
        "# the job's log file; see `patchctl schedule --help`.",
        "SHELL=/bin/sh",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ]
    lines += [f"{k}={v}" for k, v in sorted(env.items())]
    for j in jobs(times):
        lines.append(f"# {j.description}")
        lines.append(f"{j.cron} {user} {command} schedule run {j.name}")
    return "\n".join(lines) + "\n"


def _systemd_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def systemd_units(env: Mapping[str, str], command: str, times: Times | None = None) -> dict[str, str]:
    """``{unit file name: text}``: a oneshot service and a timer per job."""
    units: dict[str, str] = {}
    environment = "".join(f"Environment={_systemd_quote(f'{k}={v}')}\n" for k, v in sorted(env.items()))
    for j in jobs(times):
        units[f"patchctl-{j.name}.service"] = (
            "[Unit]\n"
            f"Description={j.description}\n"
            "After=network-online.target\n"
            "Wants=network-online.target\n"
            "\n[Service]\n"
            "Type=oneshot\n"
            f"{environment}"
            f"ExecStart={command} schedule run {j.name}\n"
        )
        units[f"patchctl-{j.name}.timer"] = (
            "[Unit]\n"
            f"Description=timer of {j.description}\n"
            "\n[Timer]\n"
            f"OnCalendar={j.calendar}\n"
            "Persistent=true\n"
            f"Unit=patchctl-{j.name}.service\n"
            "\n[Install]\n"
            "WantedBy=timers.target\n"
        )
    return units


def verify_units(unit_dir: Path) -> tuple[bool | None, str]:
    """``systemd-analyze verify`` over the unit files in ``unit_dir``.

    Returns ``(None, why)`` when systemd-analyze is not installed, else ``(ok, its output)``.
    """
    tool = shutil.which("systemd-analyze")
    if tool is None:
        return None, "systemd-analyze is not installed: the units were not verified"
    files = sorted(str(p) for p in unit_dir.glob("patchctl-*") if p.suffix in (".service", ".timer"))
    proc = subprocess.run(
        [tool, "verify", *files],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0"},
    )
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()


def environment(cfg: Config) -> dict[str, str]:
    """What the entries export: the config file in use, and settings given by env or option
    (never a secret, never a simulated time)."""
    env: dict[str, str] = {}
    if cfg.file is not None:
        env["PATCHCTL_CONFIG"] = str(cfg.file)
    for key, var in _PINNED.items():
        setting = cfg.get(key)
        if setting.value is not None and not setting.source.startswith(("default", "file:")):
            env[var] = str(setting.value)
    for var in _PASS_ENV:
        if os.environ.get(var):
            env[var] = os.environ[var]
    return env


@dataclass(frozen=True)
class ScheduleOptions:
    """What ``patchctl schedule`` was asked for: cron or systemd, when, and whether to install."""

    kind: str  # KIND_CRON | KIND_SYSTEMD
    times: Times = Times()
    install: bool = False
    cron_file: Path = Path("/etc/cron.d/patchctl")
    unit_dir: Path = SYSTEMD_UNIT_DIR
    user: str = "root"


@dataclass(frozen=True)
class Entries:
    """The entries of every job, as files (path: text), and what installing them did."""

    kind: str
    command: str
    environment: dict[str, str]
    jobs: list[Job]
    files: dict[str, str]
    installed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEDULE_JSON_SCHEMA,
            "kind": self.kind,
            "command": self.command,
            "environment": self.environment,
            "jobs": [
                {
                    "name": j.name,
                    "command": f"{self.command} {shlex.join(j.args)}",
                    "cron": j.cron,
                    "on_calendar": j.calendar,
                }
                for j in self.jobs
            ],
            "files": self.files,
            "installed": self.installed,
            "notes": self.notes,
        }


def entries(cfg: Config, opts: ScheduleOptions) -> Entries:
    """The cron file or the systemd units of every job; with ``opts.install`` also written
    (mode 0644), systemd units verified and their timers enabled (:func:`enable_timers`).

    ConfigError when a file cannot be written; PatchctlError (exit 1) when systemd-analyze
    rejects the units or systemctl cannot enable them.
    """
    if opts.kind not in (KIND_CRON, KIND_SYSTEMD):
        raise ConfigError(f"schedule: unknown kind {opts.kind!r} (cron or systemd)")
    env = environment(cfg)
    command = executable()
    if opts.kind == KIND_CRON:
        files = {str(opts.cron_file): cron_file(env, command, opts.times, opts.user)}
    else:
        files = {str(opts.unit_dir / name): text for name, text in systemd_units(env, command, opts.times).items()}
    result = Entries(opts.kind, command, env, jobs(opts.times), files)
    if not opts.install:
        return result
    for path, text in files.items():
        target = Path(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            target.chmod(0o644)
        except OSError as exc:
            raise ConfigError(f"cannot write {target}: {exc.strerror}") from exc
        result.installed.append(path)
    if opts.kind == KIND_SYSTEMD:
        ok, output = verify_units(opts.unit_dir)
        if ok is False:
            raise PatchctlError(
                f"systemd-analyze verify rejected the units in {opts.unit_dir}: {output}", EXIT_HOST_FAILURES
            )
        result.notes.append(output if ok is None else "systemd-analyze verify: ok")
        result.notes.append(enable_timers(opts.unit_dir, [Path(p).name for p in files if p.endswith(".timer")]))
    return result


def enable_timers(unit_dir: Path, timers: list[str]) -> str:
    """Enable the timers when this machine runs systemd and the units are where it looks; says
    what was done (or what the operator should do)."""
    systemctl = shutil.which("systemctl")
    if systemctl is None or not Path("/run/systemd/system").is_dir():
        return "systemd is not running here: enable the timers with `systemctl enable --now " + " ".join(timers) + "`"
    if unit_dir.resolve() != SYSTEMD_UNIT_DIR:
        return f"units written to {unit_dir}, not enabled (enable them where systemd finds them)"
    subprocess.run([systemctl, "daemon-reload"], check=False)
    proc = subprocess.run([systemctl, "enable", "--now", *timers], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise PatchctlError(f"systemctl enable failed: {proc.stderr.strip()}", EXIT_HOST_FAILURES)
    return "timers enabled: " + " ".join(timers)


# --- the locked, logged run -------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduledRun:
    """How one scheduled run of a job went (``patchctl schedule run JOB``)."""

    job: str
    code: int
    skipped: bool
    log: Path
    seconds: float
    holder: str = ""  # when skipped: what the lock file says about the run holding it

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "exit_code": self.code,
            "skipped": self.skipped,
            "log": str(self.log),
            "seconds": round(self.seconds, 3),
        }


def _stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _rotate(log: Path) -> None:
    try:
        if log.stat().st_size > LOG_ROTATE_BYTES:
            log.replace(log.with_name(log.name + ".1"))
    except FileNotFoundError:
        pass


def _open_log(log: Path, mode: str) -> IO[Any]:
    """The job's log for appending, created with mode 0600 (an older one is tightened to it)."""
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o600)
    return os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8")


def run_locked(name: str, argv: Sequence[str], log_dir: Path, env: Mapping[str, str] | None = None) -> ScheduledRun:
    """Run ``argv`` as job ``name`` under its lock, appending its output to its log file."""
    locks = log_dir / "locks"
    try:
        # owner only: a job's output names hosts, errors and paths
        log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        locks.mkdir(mode=0o700, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"log_dir {log_dir}: cannot create it ({exc.strerror})") from exc
    log = log_dir / f"{name}.log"
    lock_path = locks / f"{name}.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
            with _open_log(log, "a") as out:
                out.write(f"=== {_stamp()} {name}: skipped, the previous run still holds {lock_path} ({holder})\n")
            return ScheduledRun(name, EXIT_SKIPPED, True, log, 0.0, holder)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {_stamp()}\n".encode(), 0)
        _rotate(log)
        start = time.monotonic()
        with _open_log(log, "ab") as out:
            out.write(f"=== {_stamp()} {name}: start (pid {os.getpid()}): {shlex.join(argv)}\n".encode())
            out.flush()
            try:
                proc = subprocess.run(
                    list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=dict(env) if env is not None else None,
                    pass_fds=(fd,),  # the job holds the lock too, even if this runner dies
                    check=False,
                )
                code = proc.returncode
            except OSError as exc:
                out.write(f"cannot start {argv[0]}: {exc}\n".encode())
                code = 127
            seconds = time.monotonic() - start
            out.write(f"=== {_stamp()} {name}: end, exit {code} after {seconds:.1f} s\n".encode())
        return ScheduledRun(name, code, False, log, seconds)
    finally:
        os.close(fd)


def run_job(name: str, settings: Mapping[str, Any], log_dir: Path) -> ScheduledRun:
    """Run job ``name`` (``patchctl`` with the job's arguments, in this Python) under its lock.

    ``settings`` are the ones given on the scheduled run's command line (``db``, ``inventory``,
    ``policy``, ``now``): the job gets them as its own options.
    """
    j = job(name)
    options: list[str] = []
    for key, flag in _HANDED_ON:
        if settings.get(key) is not None:
            options += [flag, str(settings[key])]
    return run_locked(j.name, [sys.executable, "-m", "patchctl", *options, *j.args], log_dir)
