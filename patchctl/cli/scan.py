"""patchctl scan: what is missing, per host, into the store."""

from __future__ import annotations

import sys
from contextlib import nullcontext

import click

from patchctl.cli.app import App, handle_errors, inventory_option, json_option, limit_option
from patchctl.render.escape import printable


@click.command()
@limit_option
@click.option(
    "--forks", type=int, help="Parallel hosts (default: the config's forks if set, else one per host, up to 100)."
)
@inventory_option
@json_option
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
        # forks from the command line, else from the config when set there, else sized to the hosts
        forks=forks or cfg.forks_set,
        cache_valid_time=cfg.scan_cache_valid_time,
    )
    live = app.live("scan")
    with live or nullcontext():
        summary = run_scan(
            opts, progress=(lambda host_scan, done, total: live.host(host_scan.status, done, total)) if live else None
        )
    data = summary.as_dict()
    if app.json_output:
        app.emit_json(data)
    else:
        if not app.quiet:
            for h in data["hosts"]:
                if not app.shows_host(h["status"], live):
                    continue
                line = f"{h['name']}: {h['status']}"
                if h["status"] == "ok":
                    line += f", {h['missing']} missing ({h['security']} security, {h['major']} major)"
                    if h["reboot_required"]:
                        line += ", reboot pending"
                else:
                    line += f": {h['error']}"
                click.echo(printable(line))
        click.echo(
            f"scan {data['run_id']}: {data['hosts_ok']} ok, {data['hosts_failed']} failed, "
            f"{data['hosts_unreachable']} unreachable of {data['hosts_total']}"
        )
    sys.exit(summary.exit_code)
