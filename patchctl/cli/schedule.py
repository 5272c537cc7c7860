"""patchctl schedule: cron or systemd entries for the periodic jobs, and their locked runs."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from patchctl.cli.app import App, handle_errors, json_option
from patchctl.errors import EXIT_HOST_FAILURES, ConfigError, PatchctlError

SCHEDULE_JSON_SCHEMA = "patchctl.schedule/1"
# Settings a scheduled run must see as the user saw them, by the variable that carries them.
_PINNED = {
    "db": "PATCHCTL_DB",
    "inventory": "PATCHCTL_INVENTORY",
    "policy": "PATCHCTL_POLICY",
    "log_dir": "PATCHCTL_LOG_DIR",
}
_PASS_ENV = ("PATCHCTL_HOME", "PATCHCTL_COLLECTIONS", "PATCHCTL_LAB_DIR", "PATCHCTL_CACHE")


def _environment(app: App) -> dict[str, str]:
    """What the entries export: the config file in use, and settings given by env or option
    (never a secret, never a simulated time)."""
    cfg = app.config()
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


@click.group(invoke_without_command=True)
@click.option("--cron", "kind", flag_value="cron", help="Print an /etc/cron.d file.")
@click.option("--systemd", "kind", flag_value="systemd", help="Print systemd services and timers.")
@click.option(
    "--install", is_flag=True, help="Write them (cron: --cron-file; systemd: --unit-dir) instead of printing."
)
@click.option(
    "--cron-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("/etc/cron.d/patchctl"),
    show_default=True,
    help="Where --cron --install writes.",
)
@click.option(
    "--unit-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/etc/systemd/system"),
    show_default=True,
    help="Where --systemd --install writes.",
)
@click.option("--user", default="root", show_default=True, help="The user of the cron entries.")
@click.option("--scan-at", default="02:00", show_default=True, metavar="HH:MM", help="Nightly scan time.")
@click.option("--verify-at", default="06:00", show_default=True, metavar="HH:MM", help="Daily verify time.")
@click.option("--promote-minute", type=int, default=15, show_default=True, help="Minute of each hour to promote.")
@click.option("--reboot-every", type=int, default=15, show_default=True, help="Reboot runner period (minutes).")
@json_option
@click.pass_context
@handle_errors
def schedule(
    ctx: click.Context,
    kind: str | None,
    install: bool,
    cron_file: Path,
    unit_dir: Path,
    user: str,
    scan_at: str,
    verify_at: str,
    promote_minute: int,
    reboot_every: int,
) -> None:
    """The periodic jobs: nightly scan, daily verify, hourly promotion, the reboot runner.

    Each entry runs `patchctl schedule run JOB`, which takes the job's lock (one run at a time;
    a crashed run cannot leave it stuck) and appends the output to <log_dir>/JOB.log.
    """
    if ctx.invoked_subcommand is not None:
        return
    from patchctl import schedule as sch

    app: App = ctx.obj
    if kind is None:
        raise ConfigError("schedule: give --cron or --systemd (or `schedule run JOB`)")
    times = sch.Times(scan_at, verify_at, promote_minute, reboot_every)
    env = _environment(app)
    command = sch.executable()
    files: dict[str, str]
    if kind == "cron":
        files = {str(cron_file): sch.cron_file(env, command, times, user)}
    else:
        files = {str(unit_dir / name): text for name, text in sch.systemd_units(env, command, times).items()}
    installed: list[str] = []
    notes: list[str] = []
    if install:
        for path, text in files.items():
            target = Path(path)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
                target.chmod(0o644)
            except OSError as exc:
                raise ConfigError(f"cannot write {target}: {exc.strerror}") from exc
            installed.append(path)
        if kind == "systemd":
            ok, output = sch.verify_units(unit_dir)
            if ok is False:
                raise PatchctlError(
                    f"systemd-analyze verify rejected the units in {unit_dir}: {output}", EXIT_HOST_FAILURES
                )
            notes.append(output if ok is None else "systemd-analyze verify: ok")
            notes.append(_enable_timers(unit_dir, [Path(p).name for p in files if p.endswith(".timer")]))
    data: dict[str, Any] = {
        "schema": SCHEDULE_JSON_SCHEMA,
        "kind": kind,
        "command": command,
        "environment": env,
        "jobs": [
            {"name": j.name, "command": f"{command} {shlex.join(j.args)}", "cron": j.cron, "on_calendar": j.calendar}
            for j in sch.jobs(times)
        ],
        "files": files,
        "installed": installed,
        "notes": notes,
    }
    if app.json_output:
        app.emit_json(data)
        return
    if install:
        if not app.quiet:
            for path in installed:
                click.echo(f"installed {path}")
            for note in notes:
                click.echo(note)
        return
    for path, text in files.items():
        if kind == "systemd":
            click.echo(f"# --- {path}")
        click.echo(text, nl=False)
        if kind == "systemd":
            click.echo("")


def _enable_timers(unit_dir: Path, timers: list[str]) -> str:
    """Enable the timers when this machine runs systemd and the units are where it looks."""
    systemctl = shutil.which("systemctl")
    if systemctl is None or not Path("/run/systemd/system").is_dir():
        return "systemd is not running here: enable the timers with `systemctl enable --now " + " ".join(timers) + "`"
    if unit_dir.resolve() != Path("/etc/systemd/system"):
        return f"units written to {unit_dir}, not enabled (enable them where systemd finds them)"
    subprocess.run([systemctl, "daemon-reload"], check=False)
    proc = subprocess.run([systemctl, "enable", "--now", *timers], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise PatchctlError(f"systemctl enable failed: {proc.stderr.strip()}", EXIT_HOST_FAILURES)
    return "timers enabled: " + " ".join(timers)


@schedule.command("run")
@click.argument("job_name", metavar="JOB", type=click.Choice(["scan", "verify", "promote", "reboot"]))
@json_option
@click.pass_obj
@handle_errors
def schedule_run(app: App, job_name: str) -> None:
    """Run one job under its lock, its output appended to <log_dir>/JOB.log (what the entries call).

    Exit code: the job's; 0 when skipped because the previous run still holds the lock.
    """
    from patchctl import schedule as sch

    cfg = app.config()
    job = sch.job(job_name)
    options: list[str] = []
    for key, flag in (("db", "--db"), ("inventory", "--inventory"), ("policy", "--policy"), ("now", "--now")):
        if app.overrides.get(key) is not None:
            options += [flag, str(app.overrides[key])]
    argv = [sys.executable, "-m", "patchctl", *options, *job.args]
    result = sch.run_locked(job.name, argv, cfg.log_dir)
    if app.json_output:
        app.emit_json(
            {
                "job": result.job,
                "exit_code": result.code,
                "skipped": result.skipped,
                "log": str(result.log),
                "seconds": round(result.seconds, 3),
            }
        )
    elif result.skipped and not app.quiet:
        click.echo(
            f"schedule run {job.name}: skipped, the previous run still holds the lock ({result.holder})", err=True
        )
    elif result.code != 0:
        click.echo(f"schedule run {job.name}: exit {result.code}; see {result.log}", err=True)
    sys.exit(result.code)
