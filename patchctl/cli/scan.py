"""patchctl scan: what is missing, per host, into the store."""

from __future__ import annotations

import sys
from typing import Any

import click

from patchctl.cli.app import App, handle_errors, inventory_option, json_option


@click.command()
@click.option("--limit", "-l", metavar="PATTERN", help="Only hosts matching this Ansible host pattern.")
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
    progress = None
    if app.shows_progress:

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
