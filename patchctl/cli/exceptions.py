"""patchctl except add | list | remove: accepted, owned, expiring reasons why hosts may lack updates."""

from __future__ import annotations

import click

from patchctl.cli.app import App, db_option, handle_errors, json_option
from patchctl.rules.clock import iso_utc


@click.group("except")
def except_() -> None:
    """Exceptions: while one holds, the updates it names are neither deployed to its hosts nor
    counted missing; it ends by itself at --until."""


@except_.command("add")
@click.argument("target", metavar="HOST-OR-GROUP")
@click.argument("pattern", metavar="UPDATE-PATTERN")
@click.option("--reason", metavar="TEXT", help="Why the hosts may lack the updates (required).")
@click.option("--owner", metavar="NAME", help="Who answers for it (required).")
@click.option(
    "--until",
    metavar="WHEN",
    help="When it ends by itself (required): an ISO 8601 time (UTC unless it says) or a date (its 00:00 UTC).",
)
@db_option
@json_option
@click.pass_obj
@handle_errors
def except_add(app: App, target: str, pattern: str, reason: str | None, owner: str | None, until: str | None) -> None:
    """Except the updates matching UPDATE-PATTERN (name, uid or KB; wildcards) on HOST-OR-GROUP."""
    from patchctl.exceptions import ExceptionInput, add_exception

    cfg = app.config()
    e = add_exception(cfg.db, ExceptionInput(target, pattern, reason, owner, until), cfg.clock().now())
    if app.json_output:
        app.emit_json({"exception": e.id, "until": iso_utc(e.until)})
    else:
        click.echo(f"exception {e.id}: {e.pattern} on {e.target} until {iso_utc(e.until)} (owner {e.owner})")


@except_.command("list")
@click.option("--all", "include_ended", is_flag=True, help="Also exceptions that ended (removed or expired).")
@db_option
@json_option
@click.pass_obj
@handle_errors
def except_list(app: App, include_ended: bool) -> None:
    """The exceptions in force, and the hosts and updates each covers now."""
    from patchctl.exceptions import list_exceptions

    cfg = app.config()
    view = list_exceptions(cfg.db, cfg.clock().now(), include_ended)
    if app.json_output:
        app.emit_json(
            [
                {
                    **e.as_dict(),
                    "covers": {h: list(u) for h, u in view.covers.get(e.id, {}).items()},
                }
                for e in view.exceptions
            ]
        )
        return
    if not view.exceptions:
        click.echo("no exceptions in force" if not include_ended else "no exceptions")
    for e in view.exceptions:
        ended = f", ended {iso_utc(e.ended_at)} ({e.end_reason})" if e.ended_at else ""
        click.echo(f"{e.id}: {e.pattern} on {e.target}, owner {e.owner}, until {iso_utc(e.until)}{ended}: {e.reason}")
        for host, uids in view.covers.get(e.id, {}).items():
            click.echo(f"  {host}: {', '.join(uids)}")


@except_.command("remove")
@click.argument("exception_id", type=int, metavar="ID")
@db_option
@json_option
@click.pass_obj
@handle_errors
def except_remove(app: App, exception_id: int) -> None:
    """End an exception now (the updates count again; the next deploy installs them)."""
    from patchctl.exceptions import remove_exception

    cfg = app.config()
    e = remove_exception(cfg.db, exception_id, cfg.clock().now())
    if app.json_output:
        app.emit_json({"exception": e.id, "removed": True})
    else:
        click.echo(f"exception {e.id} removed: {e.pattern} on {e.target} counts again")
