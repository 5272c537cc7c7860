"""patchctl report: compliance per host."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from patchctl.cli import App, db_option, handle_errors, json_option, print_table


@click.command()
@click.option("--limit", "-l", metavar="PATTERN", help="Only these hosts (names or shell wildcards).")
@db_option
@json_option
@click.pass_obj
@handle_errors
def report(app: App, limit: str | None) -> None:
    """Per host: OS, last scan, missing updates by classification, reboot pending, reachability."""
    from patchctl.reporting import fleet_report

    cfg = app.config()
    rep = fleet_report(cfg.db, limit, datetime.now(UTC))
    from patchctl import render

    if app.json_output:
        app.emit_json(render.report_json(rep))
    elif sys.stdout.isatty():
        print_table(app, render.report_table(rep))
    else:
        for line in render.report_lines(rep):
            click.echo(line)
