"""patchctl schedule: cron or systemd entries for the periodic jobs, and their locked runs."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from patchctl.cli.app import App, handle_errors, json_option
from patchctl.errors import ConfigError


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
    opts = sch.ScheduleOptions(kind, times, install, cron_file, unit_dir, user)
    result = sch.entries(app.config(), opts)
    if app.json_output:
        app.emit_json(result.as_dict())
        return
    if install:
        if not app.quiet:
            for path in result.installed:
                click.echo(f"installed {path}")
            for note in result.notes:
                click.echo(note)
        return
    for path, text in result.files.items():
        if kind == "systemd":
            click.echo(f"# --- {path}")
        click.echo(text, nl=False)
        if kind == "systemd":
            click.echo("")


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

    result = sch.run_job(job_name, app.overrides, app.config().log_dir)
    if app.json_output:
        app.emit_json(result.as_dict())
    elif result.skipped and not app.quiet:
        click.echo(
            f"schedule run {result.job}: skipped, the previous run still holds the lock ({result.holder})", err=True
        )
    elif result.code != 0:
        click.echo(f"schedule run {result.job}: exit {result.code}; see {result.log}", err=True)
    sys.exit(result.code)
