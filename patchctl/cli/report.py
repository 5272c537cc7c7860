"""patchctl report: compliance of the fleet as a table, JSON, CSV or one HTML file."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import click

from patchctl.cli.app import App, db_option, handle_errors, print_table
from patchctl.errors import ConfigError

FORMATS = ("table", "json", "csv", "html")
SECTIONS = (
    "hosts",
    "summary",
    "waves",
    "missing",
    "reboots",
    "failures",
    "history",
    "nodes",
    "exceptions",
    "held",
    "sla",
)


def _json_alias(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(App).json_output = True


@click.command()
@click.option("--limit", "-l", metavar="PATTERN", help="Only these hosts (names or shell wildcards).")
@click.option(
    "--format",
    "-f",
    "fmt",
    type=click.Choice(FORMATS),
    help="table (rich on a terminal, plain tab-separated lines otherwise), json, csv or html. "
    "Default: table, or json with --json.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the report to this file instead of stdout.",
)
@click.option(
    "--section",
    type=click.Choice(SECTIONS),
    default="hosts",
    show_default=True,
    help="The table --format csv writes.",
)
@click.option("--top", type=click.IntRange(0, 1000), default=10, show_default=True, help="How many widespread updates.")
@click.option(
    "--history",
    "history_runs",
    type=click.IntRange(1, 10000),
    default=30,
    show_default=True,
    help="Scan runs in the trend.",
)
@click.option(
    "--stale-days", type=click.FloatRange(0), help="A host not scanned for longer is stale (config stale_days)."
)
@click.option(
    "--since",
    metavar="TIME",
    help="The SLA section's time to patch counts the updates installed since TIME (ISO 8601; default: all).",
)
@click.option(
    "--json", "json_sub", is_flag=True, expose_value=False, callback=_json_alias, help="The same as --format json."
)
@db_option
@click.pass_obj
@handle_errors
def report(
    app: App,
    limit: str | None,
    fmt: str | None,
    output: Path | None,
    section: str,
    top: int,
    history_runs: int,
    stale_days: float | None,
    since: str | None,
) -> None:
    """Compliance by state, wave and role; hosts; widespread missing updates; pending reboots;
    failures; compliance over past scan runs.

    The JSON shape is "patchctl.report/1" (README, "Reports"). Exit code 0 whatever the fleet's
    state; 2 for a bad option or store.
    """
    from patchctl.report import full_report
    from patchctl.rules.clock import parse as parse_time

    if fmt is None:
        fmt = "json" if app.json_output else "table"
    elif app.json_output and fmt != "json":
        raise ConfigError(f"--json and --format {fmt} disagree: give one of them")
    cfg = app.config()
    rep = full_report(
        cfg.db,
        limit,
        cfg.clock().now(),
        stale_days=cfg.stale_days if stale_days is None else stale_days,
        top=top,
        history_runs=history_runs,
        policy=app.policy(),
        sla_since=parse_time(since, "--since") if since else None,
    )
    from patchctl.render import text as render

    text: str
    if fmt == "json":
        import json

        from patchctl.render.report_json import full_report_json

        text = json.dumps(full_report_json(rep), indent=2) + "\n"
    elif fmt == "csv":
        from patchctl.render.report_csv import report_csv

        text = report_csv(rep, section)
    elif fmt == "html":
        from patchctl.render.report_html import render_html

        text = render_html(rep)
    elif output is None and sys.stdout.isatty():
        for table in render.full_report_tables(rep):
            print_table(app, table)
        return
    elif output is not None:
        from rich.console import Console

        buf = io.StringIO()
        console = Console(file=buf, width=160, color_system=None, highlight=False)
        for table in render.full_report_tables(rep):
            console.print(table)
        text = buf.getvalue()
    else:
        text = "\n".join(render.full_report_lines(rep)) + "\n"

    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8", newline="")
    except OSError as exc:
        raise ConfigError(f"--output {output}: cannot write it ({exc.strerror})") from exc
    if not app.quiet:
        click.echo(f"report ({fmt}) written to {output}", err=True)
