"""patchctl cve: which hosts are exposed to a CVE, since when, and where its fixes stand."""

from __future__ import annotations

import click
from rich.table import Table

from patchctl.cli.app import App, db_option, handle_errors, json_option, policy_option, print_table
from patchctl.rules.clock import iso_utc


@click.command()
@click.argument("cves", nargs=-1, metavar="[CVE-ID]...")
@policy_option
@db_option
@json_option
@click.pass_obj
@handle_errors
def cve(app: App, cves: tuple[str, ...]) -> None:
    """Hosts exposed to each CVE now, since when, the updates that fix it and where each stands
    (not approved, waiting N days, in rollout R wave W, blocked). Without CVE-ID: every CVE some
    host is exposed to, most exposed hosts first."""
    from patchctl.cve import cve_exposures

    cfg = app.config()
    now = cfg.clock().now()
    found = cve_exposures(cfg.db, app.policy(), now, cves)
    if app.json_output:
        app.emit_json({"now": iso_utc(now), "cves": [c.as_dict(now) for c in found]})
        return
    if not cves:
        table = Table(title=f"open CVEs ({len(found)})")
        for col in ("cve", "hosts", "exposed since", "fixed by", "where the fix stands"):
            table.add_column(col)
        for c in found:
            first = c.fixes[0].uid + (f" +{len(c.fixes) - 1}" if len(c.fixes) > 1 else "") if c.fixes else ""
            table.add_row(
                c.cve,
                str(len(c.hosts)),
                f"{c.since:%Y-%m-%d %H:%M}" if c.since else "",
                first,
                "; ".join(dict.fromkeys(f.where for f in c.fixes)),
            )
        print_table(app, table)
        return
    for c in found:
        table = Table(title=f"{c.cve}: {len(c.hosts)} host{'s' if len(c.hosts) != 1 else ''} exposed")
        for col in ("host", "exposed since", "days", "missing"):
            table.add_column(col)
        for h in c.hosts:
            days = (now - h.since).total_seconds() / 86400
            table.add_row(h.host, f"{h.since:%Y-%m-%d %H:%M}", f"{days:.1f}", ", ".join(h.updates))
        print_table(app, table)
        fixes = Table(title=f"{c.cve}: fixed by")
        for col in ("update", "severity", "hosts missing", "state", "where it stands"):
            fixes.add_column(col)
        for f in c.fixes:
            fixes.add_row(f.uid, f.severity or "", str(f.hosts_missing), f.state, f.where)
        if not c.fixes:
            fixes.add_row("(no update in the catalog names it)", "", "", "", "")
        print_table(app, fixes)
