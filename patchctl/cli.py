"""The click layer: parse options, call the core, render. Nothing here talks to Ansible or SQL."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from patchctl import __version__
from patchctl.config import Config
from patchctl.errors import EXIT_USAGE, PatchctlError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class App:
    """What every command needs: the command-line overrides and how to print."""

    overrides: dict[str, Any]
    json_output: bool
    quiet: bool
    debug: bool

    @property
    def console(self) -> Console:
        return Console(highlight=False, soft_wrap=False)

    @property
    def err(self) -> Console:
        return Console(stderr=True, highlight=False)

    def config(self) -> Config:
        return Config.load(self.overrides)

    def emit_json(self, data: Any) -> None:
        click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def handle_errors(func: F) -> F:
    """Turn PatchctlError into one line on stderr and its exit code; tracebacks only with --debug."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        app: App | None = ctx.find_object(App)
        try:
            return func(*args, **kwargs)
        except PatchctlError as exc:
            if app is not None and app.debug:
                raise
            click.echo(f"patchctl: error: {exc.message}", err=True)
            ctx.exit(exc.code)
        except KeyboardInterrupt:
            click.echo("patchctl: interrupted", err=True)
            ctx.exit(130)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-i", "--inventory", metavar="PATH", help="Inventory file or directory (env PATCHCTL_INVENTORY; default: the lab's).")
@click.option("--db", metavar="URL", help="Store URL, e.g. sqlite:////var/lib/patchctl/patchctl.db (env PATCHCTL_DB).")
@click.option("--policy", metavar="PATH", help="Policy file (env PATCHCTL_POLICY).")
@click.option("--json", "json_output", is_flag=True, help="Machine-readable JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and the final result.")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(__version__, prog_name="patchctl")
@click.pass_context
def cli(
    ctx: click.Context,
    inventory: str | None,
    db: str | None,
    policy: str | None,
    json_output: bool,
    quiet: bool,
    debug: bool,
) -> None:
    """patchctl: agentless patch management for Windows and Linux fleets, driven by Ansible.

    Exit codes: 0 ok, 1 host failures, 2 usage or configuration error, 3 blocked by policy.
    """
    overrides = {k: v for k, v in {"inventory": inventory, "db": db, "policy": policy}.items() if v is not None}
    ctx.obj = App(overrides=overrides, json_output=json_output, quiet=quiet, debug=debug)


def _json_flag(func: F) -> F:
    """Let --json also follow the subcommand (``patchctl scan --json``)."""

    def callback(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            ctx.ensure_object(App).json_output = True

    return click.option("--json", "json_sub", is_flag=True, expose_value=False, callback=callback,
                        help="Machine-readable JSON on stdout.")(func)


def _override(key: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value is not None:
            ctx.ensure_object(App).overrides[key] = value

    return callback


def _inventory_opt(func: F) -> F:
    """-i/--inventory and --db also after the subcommand (``patchctl scan -i INV``)."""
    func = click.option("-i", "--inventory", "inventory_sub", metavar="PATH", expose_value=False,
                        callback=_override("inventory"),
                        help="Inventory file or directory (env PATCHCTL_INVENTORY).")(func)
    return _db_opt(func)


def _db_opt(func: F) -> F:
    return click.option("--db", "db_sub", metavar="URL", expose_value=False, callback=_override("db"),
                        help="Store URL (env PATCHCTL_DB).")(func)


# --------------------------------------------------------------------------------------------- lab
@cli.group()
def lab() -> None:
    """The local lab: a fleet of real Debian hosts on this machine (needs root)."""


def _lab() -> Any:
    from patchctl.lab.fleet import Lab

    return Lab()


@lab.command("up")
@click.option("--hosts", "count", type=int, default=6, show_default=True, help="How many hosts.")
@click.option("--subnet", default="127.77", show_default=True, help="Loopback range 127.N for the lab's addresses.")
@_json_flag
@click.pass_obj
@handle_errors
def lab_up(app: App, count: int, subnet: str) -> None:
    """Build (first time: about a minute) and start the lab; write its inventory."""
    the_lab = _lab()
    if not app.quiet and not app.json_output:
        app.err.print(f"lab: starting {count} hosts in {the_lab.dir} ...")
    hosts = the_lab.up(count, subnet=subnet)
    if app.json_output:
        app.emit_json({"inventory": str(the_lab.inventory_path), "hosts": [asdict(h) for h in hosts]})
        return
    click.echo(f"lab up: {len(hosts)} hosts; inventory: {the_lab.inventory_path}")


@lab.command("down")
@click.pass_obj
@handle_errors
def lab_down(app: App) -> None:
    """Stop every host and remove the lab: no process, mount or socket is left."""
    the_lab = _lab()
    the_lab.down()
    left = the_lab.leftovers()
    if left:
        raise PatchctlError(f"lab down left: {'; '.join(left)}", 1)
    if not app.quiet:
        click.echo("lab down")


@lab.command("reset")
@click.pass_obj
@handle_errors
def lab_reset(app: App) -> None:
    """Put every host back to its pristine state and boot it again."""
    the_lab = _lab()
    the_lab.reset()
    if not app.quiet:
        click.echo(f"lab reset: {len(the_lab.hosts())} hosts pristine")


@lab.command("status")
@_json_flag
@click.pass_obj
@handle_errors
def lab_status(app: App) -> None:
    """Each lab host: address, power, reachability, boot id."""
    the_lab = _lab()
    rows = the_lab.status()
    if app.json_output:
        app.emit_json({"up": the_lab.is_up(), "inventory": str(the_lab.inventory_path), "hosts": [asdict(r) for r in rows]})
        return
    if not rows:
        click.echo(f"lab: not set up in {the_lab.dir}")
        return
    table = Table(title=f"lab {the_lab.dir}")
    for col in ("host", "address", "role", "power", "ssh", "boot id"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r.name,
            f"{r.address}:{r.port}",
            r.role,
            "on" if r.running else "off",
            "[green]up[/]" if r.reachable else "[red]down[/]",
            (r.boot_id or "-")[:8],
        )
    _print_table(app, table)


# -------------------------------------------------------------------------------------------- scan
@cli.command()
@click.option("--limit", "-l", metavar="PATTERN", help="Only hosts matching this Ansible host pattern.")
@click.option("--forks", type=int, help="Parallel hosts (default from config: 20).")
@_inventory_opt
@_json_flag
@click.pass_obj
@handle_errors
def scan(app: App, limit: str | None, forks: int | None) -> None:
    """Scan hosts for missing updates and record them in the store."""
    from patchctl.scan import ScanOptions, run_scan

    cfg = app.config()
    opts = ScanOptions(
        inventory=cfg.inventory,
        db_url=cfg.db,
        limit=limit,
        forks=forks or cfg.forks,
        cache_valid_time=cfg.scan_cache_valid_time,
    )
    progress = None
    if sys.stderr.isatty() and not app.quiet and not app.json_output:

        def progress(host_scan: Any, done: int, total: int) -> None:
            colour = {"ok": "green", "unreachable": "red", "failed": "red"}.get(host_scan.status, "white")
            detail = f"{len(host_scan.updates)} missing" if host_scan.status == "ok" else (host_scan.error or "")
            app.err.print(f"[{done}/{total}] {host_scan.host}: [{colour}]{host_scan.status}[/] {detail}")

    summary = run_scan(opts, progress=progress)
    data = summary.as_dict()
    if app.json_output:
        app.emit_json(data)
    else:
        if not app.quiet:
            for h in data["hosts"]:
                line = f"{h['name']}: {h['status']}"
                if h["status"] == "ok":
                    line += f", {h['missing']} missing ({h['security']} security, {h['major']} major)"
                    if h["reboot_required"]:
                        line += ", reboot pending"
                else:
                    line += f": {h['error']}"
                click.echo(line)
        click.echo(
            f"scan {data['run_id']}: {data['hosts_ok']} ok, {data['hosts_failed']} failed, "
            f"{data['hosts_unreachable']} unreachable of {data['hosts_total']}"
        )
    sys.exit(summary.exit_code)


# ------------------------------------------------------------------------------------------ report
@cli.command()
@click.option("--limit", "-l", metavar="PATTERN", help="Only these hosts (names or shell wildcards).")
@_db_opt
@_json_flag
@click.pass_obj
@handle_errors
def report(app: App, limit: str | None) -> None:
    """Per host: OS, last scan, missing updates by classification, reboot pending, reachability."""
    from patchctl.reporting import fleet_report

    cfg = app.config()
    rep = fleet_report(cfg.db, limit, datetime.now(timezone.utc))
    from patchctl import render

    if app.json_output:
        app.emit_json(render.report_json(rep))
    elif sys.stdout.isatty():
        _print_table(app, render.report_table(rep))
    else:
        for line in render.report_lines(rep):
            click.echo(line)


# ------------------------------------------------------------------------------------------ config
@cli.group()
def config() -> None:
    """Effective settings."""


@config.command("show")
@_json_flag
@click.pass_obj
@handle_errors
def config_show(app: App) -> None:
    """Each setting, its value and where it came from."""
    cfg = app.config()
    if app.json_output:
        app.emit_json(cfg.as_dict())
        return
    rows = cfg.as_rows()
    table = Table(title="patchctl configuration")
    for col in ("setting", "value", "source"):
        table.add_column(col)
    for name, value, source in rows:
        table.add_row(name, str(value), source)
    _print_table(app, table)


def _print_table(app: App, table: Table) -> None:
    Console(highlight=False, width=None if sys.stdout.isatty() else 200).print(table)


def main() -> None:
    try:
        cli.main(prog_name="patchctl", standalone_mode=True)
    except click.exceptions.Exit as exc:  # pragma: no cover - click handles this in standalone mode
        sys.exit(exc.exit_code)
    except click.UsageError as exc:  # pragma: no cover
        click.echo(f"patchctl: error: {exc.format_message()}", err=True)
        sys.exit(EXIT_USAGE)
