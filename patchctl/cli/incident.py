"""patchctl incident open | close | list: what halts a promotion."""

from __future__ import annotations

from typing import TextIO

import click

from patchctl.cli.app import App, db_option, handle_errors, json_option
from patchctl.errors import ConfigError
from patchctl.rules.clock import iso_utc


@click.group()
def incident() -> None:
    """Incidents: an open one on a rollout blocks its promotion."""


@incident.command("open")
@click.option(
    "--rollout",
    "rollout_id",
    type=int,
    metavar="ID",
    help="The rollout it concerns (with --from-alert: for alerts naming none; default the latest).",
)
@click.option("--host", metavar="HOST", help="The host it concerns, if one.")
@click.option(
    "--from-alert",
    "alert",
    type=click.File("r", encoding="utf-8"),
    metavar="FILE|-",
    help="An Alertmanager webhook payload, or a JSON {rollout, host, text}: one incident per firing alert.",
)
@click.argument("text", nargs=-1)
@db_option
@json_option
@click.pass_obj
@handle_errors
def incident_open(
    app: App, rollout_id: int | None, host: str | None, alert: TextIO | None, text: tuple[str, ...]
) -> None:
    """Open an incident on a rollout (TEXT), or those an alert asks for (--from-alert)."""
    from patchctl.rollouts import open_incident, open_incidents_from_alert

    cfg = app.config()
    if alert is not None:
        if text or host:
            raise ConfigError("--from-alert: the alert gives the text and host: give no TEXT or --host")
        source = "-" if getattr(alert, "name", "-") == "<stdin>" else str(getattr(alert, "name", "-"))
        opened = open_incidents_from_alert(cfg.db, alert.read(), source, rollout_id, cfg.clock().now(), app.notifier())
        if app.json_output:
            app.emit_json([{"incident": i, "rollout": r, "host": h, "text": t} for i, r, h, t in opened])
        elif not opened:
            click.echo(f"{source}: no firing alert: no incident opened")
        for i, r, h, t in [] if app.json_output else opened:
            on = f" (host {h})" if h else ""
            click.echo(f"incident {i} opened on rollout {r}{on}: {t}: promotion is blocked until it is closed")
        return
    if rollout_id is None or not text:
        raise ConfigError("incident open: give --rollout ID and the incident's TEXT, or --from-alert FILE|-")
    incident_id = open_incident(cfg.db, rollout_id, host, " ".join(text), cfg.clock().now(), app.notifier())
    if app.json_output:
        app.emit_json({"incident": incident_id, "rollout": rollout_id})
    else:
        click.echo(f"incident {incident_id} opened on rollout {rollout_id}: promotion is blocked until it is closed")


@incident.command("close")
@click.argument("incident_id", type=int)
@click.option("--reason", metavar="TEXT", help="How it was resolved (kept in the audit trail).")
@db_option
@json_option
@click.pass_obj
@handle_errors
def incident_close(app: App, incident_id: int, reason: str | None) -> None:
    """Close an incident."""
    from patchctl.rollouts import close_incident

    cfg = app.config()
    inc = close_incident(cfg.db, incident_id, reason, cfg.clock().now())
    if app.json_output:
        app.emit_json({"incident": inc.id, "rollout": inc.rollout_id, "closed": True})
    else:
        click.echo(f"incident {inc.id} on rollout {inc.rollout_id} closed")


@incident.command("list")
@click.option("--rollout", "rollout_id", type=int, metavar="ID", help="Only this rollout's.")
@click.option("--all", "include_closed", is_flag=True, help="Also closed incidents.")
@db_option
@json_option
@click.pass_obj
@handle_errors
def incident_list(app: App, rollout_id: int | None, include_closed: bool) -> None:
    """Open incidents (with --all, closed ones too)."""
    from patchctl.rollouts import list_incidents

    found = list_incidents(app.config().db, rollout_id, include_closed)
    if app.json_output:
        app.emit_json(
            [
                {
                    "id": i.id,
                    "rollout": i.rollout_id,
                    "host": i.host,
                    "text": i.text,
                    "opened_at": iso_utc(i.opened_at),
                    "opened_by": i.opened_by,
                    "closed_at": iso_utc(i.closed_at),
                    "closed_by": i.closed_by,
                    "close_reason": i.close_reason,
                }
                for i in found
            ]
        )
        return
    if not found:
        click.echo("no incidents")
    for i in found:
        state = f"closed {i.closed_at.isoformat(timespec='minutes')}" if i.closed_at else "open"
        where = f" host {i.host}" if i.host else ""
        click.echo(f"{i.id}: rollout {i.rollout_id}{where}, {state}: {i.text}")
