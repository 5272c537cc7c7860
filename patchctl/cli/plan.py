"""patchctl plan: the earliest each wave gets an update under the policy, against the SLA."""

from __future__ import annotations

import click
from rich.table import Table

from patchctl.cli.app import App, db_option, handle_errors, json_option, policy_option, print_table


@click.command()
@click.argument("update", required=False, metavar="[UPDATE]")
@click.option("--class", "classification", metavar="C", help="A class of updates first seen now (security, ...).")
@click.option(
    "--source", default="apt", show_default=True, help="With --class: whose baseline (apt, dnf, windows, ...)."
)
@policy_option
@db_option
@json_option
@click.pass_obj
@handle_errors
def plan(app: App, update: str | None, classification: str | None, source: str) -> None:
    """From the policy's ages, bakes, waves and windows: the earliest date each wave gets UPDATE
    (a catalog id, uid or package name) or a --class of updates, and whether that is inside the
    SLA. Deploys taken as instant and every wave as passing: the earliest, not a promise."""
    from patchctl.plan import update_plan

    cfg = app.config()
    found = update_plan(cfg.db, cfg.inventory, app.policy(), cfg.clock().now(), update, classification, source)
    if app.json_output:
        app.emit_json(found.as_dict())
        return
    table = Table(title=f"plan: {found.subject} ({found.state}: {found.reason})")
    for col in ("wave", "hosts", "earliest", "bake days"):
        table.add_column(col)
    for w in found.waves:
        table.add_row(w.name, str(w.hosts), f"{w.starts_at:%Y-%m-%d %H:%M %Z}", f"{w.bake_days:g}")
    print_table(app, table)
    click.echo(found.verdict)
