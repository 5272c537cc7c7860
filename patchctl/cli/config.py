"""patchctl config: effective settings."""

from __future__ import annotations

import click
from rich.table import Table

from patchctl.cli.app import App, handle_errors, json_option, print_table


@click.group()
def config() -> None:
    """Effective settings."""


@config.command("show")
@json_option
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
    print_table(app, table)
