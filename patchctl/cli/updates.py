"""patchctl updates | approve | decline | audit: the catalog, its decisions and the audit trail."""

from __future__ import annotations

import click
from rich.table import Table

from patchctl.cli.app import App, db_option, handle_errors, json_option, policy_option, print_table
from patchctl.rules.clock import iso_utc


@click.command()
@click.option("--all", "show_all", is_flag=True, help="Also updates no host is missing any more.")
@click.option("--cve", "cves", multiple=True, metavar="CVE-ID", help="Only the updates that fix this CVE (repeatable).")
@policy_option
@db_option
@json_option
@click.pass_obj
@handle_errors
def updates(app: App, show_all: bool, cves: tuple[str, ...]) -> None:
    """Every update seen, with its state: new, approved, rejected, waiting N days, needs manual approval."""
    from patchctl.decisions import list_updates

    cfg = app.config()
    rows = list_updates(cfg.db, app.policy(), cfg.clock().now(), everything=show_all, cves=cves)
    if app.json_output:
        app.emit_json([r.as_dict() for r in rows])
        return
    table = Table(title=f"updates ({len(rows)})")
    # "age from": the date approve_after_days counts from, the source's release date when it
    # gives one ("released"), else the first scan that reported the update ("first seen")
    # "severity": the source's (dnf, zypper, Windows), else an apt update's Debian urgency;
    # "cves": the first and how many more
    columns = ("id", "update", "class", "major", "hosts", "first seen", "age from", "severity", "cves", "state", "why")
    for col in columns:
        table.add_column(col, no_wrap=col == "update")
    for r in rows:
        e = r.entry
        shown_cves = "" if not e.cves else e.cves[0] + (f" +{len(e.cves) - 1}" if len(e.cves) > 1 else "")
        table.add_row(
            str(e.id),
            e.uid,
            e.classification,
            "major" if e.major else "",
            str(e.hosts_missing),
            e.first_seen_at.strftime("%Y-%m-%d"),
            f"released {e.released_at:%Y-%m-%d}" if e.released_at is not None else "first seen",
            e.severity or (f"urgency {e.urgency}" if e.urgency else ""),
            shown_cves,
            r.shown_state,
            f"{r.decided_by}: {r.reason}",
        )
    print_table(app, table)


@click.command()
@click.argument("ids", nargs=-1, required=True)
@click.option("--major", is_flag=True, help="Also approve major upgrades among IDS (no rule ever does).")
@click.option(
    "--take-over",
    is_flag=True,
    help="Also approve applications installed outside Chocolatey among IDS: Chocolatey installs over "
    "that copy (only where the application catalog marks it take_over: safe).",
)
@click.option("--reason", metavar="TEXT", help="Why (kept in the audit trail).")
@db_option
@json_option
@click.pass_obj
@handle_errors
def approve(app: App, ids: tuple[str, ...], major: bool, take_over: bool, reason: str | None) -> None:
    """Approve updates by catalog id, uid or package name."""
    from patchctl.decisions import decide

    cfg = app.config()
    chosen = decide(cfg.db, ids, approve=True, now=cfg.clock().now(), reason=reason, major=major, take_over=take_over)
    if app.json_output:
        app.emit_json({"approved": [e.uid for e in chosen]})
    else:
        for e in chosen:
            click.echo(f"approved {e.uid}" + (" (major upgrade)" if e.major else ""))


@click.command()
@click.argument("ids", nargs=-1, required=True)
@click.option("--reason", metavar="TEXT", required=True, help="Why (kept in the audit trail).")
@db_option
@json_option
@click.pass_obj
@handle_errors
def decline(app: App, ids: tuple[str, ...], reason: str) -> None:
    """Decline updates by catalog id, uid or package name: they stay out of every rollout."""
    from patchctl.decisions import decide

    cfg = app.config()
    chosen = decide(cfg.db, ids, approve=False, now=cfg.clock().now(), reason=reason)
    if app.json_output:
        app.emit_json({"declined": [e.uid for e in chosen]})
    else:
        for e in chosen:
            click.echo(f"declined {e.uid}: {reason}")


@click.command()
@click.option("--rollout", "rollout_id", type=int, metavar="ID", help="Only the events of this rollout.")
@click.option("--last", type=int, metavar="N", help="Only the last N entries.")
@db_option
@json_option
@click.pass_obj
@handle_errors
def audit(app: App, rollout_id: int | None, last: int | None) -> None:
    """The append-only audit trail: decisions (by an operator or the policy), rollouts, incidents."""
    from patchctl.decisions import audit_log

    rows = audit_log(app.config().db, rollout_id, last)
    if app.json_output:
        app.emit_json(
            [
                {
                    "at": iso_utc(r.at),
                    "actor": r.actor,
                    "action": r.action,
                    "subject": r.subject,
                    "rollout": r.rollout_id,
                    "detail": r.detail,
                }
                for r in rows
            ]
        )
        return
    for r in rows:
        detail = f": {r.detail}" if r.detail else ""
        click.echo(f"{r.at.isoformat(timespec='minutes')}  {r.actor:<8} {r.action:<16} {r.subject or ''}{detail}")
