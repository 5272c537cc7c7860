"""patchctl verify: rescan and prove that what was approved is installed (daily, from cron)."""

from __future__ import annotations

import sys
from contextlib import nullcontext

import click

from patchctl.cli.app import App, handle_errors, inventory_option, json_option, limit_option
from patchctl.render.escape import printable


@click.command()
@limit_option
@click.option("--no-scan", is_flag=True, help="Compare with the last scans instead of rescanning.")
@inventory_option
@json_option
@click.pass_obj
@handle_errors
def verify(app: App, limit: str | None, no_scan: bool) -> None:
    """Rescan, then give each host's compliance state (the rule patchctl report uses) and what
    its started rollout waves did not deliver.

    States: compliant, missing, reboot_pending, failed, blocked (an approved update no longer
    offered, the baseline's successors), unreachable, stale (no scan for more than
    stale_days), never_scanned. Delivery: delivered, undelivered (retried by the next deploy of
    the host's wave), deploy_failed, nothing_started, unknown (the rescan did not succeed).
    Exit code 0 when every host is compliant, else 1.
    """
    from patchctl.verify import VerifyOptions
    from patchctl.verify import verify as run_verify

    cfg = app.config()
    opts = VerifyOptions(
        inventory=cfg.inventory,
        db_url=cfg.db,
        now=cfg.clock().now(),
        stale_days=cfg.stale_days,
        limit=limit,
        rescan=not no_scan,
        forks=cfg.forks,
    )
    live = app.live("verify") if opts.rescan else None
    with live or nullcontext():
        report = run_verify(
            opts, progress=(lambda host_scan, done, total: live.host(host_scan.status, done, total)) if live else None
        )
    if app.json_output:
        app.emit_json(report.as_dict())
        sys.exit(report.exit_code)
    for h in report.hosts:
        if not app.shows_host("ok" if h.row.state == "compliant" else h.row.state, live) and not h.restart_pending:
            continue
        restart = f"; restart pending: {', '.join(h.restart_pending)}" if h.restart_pending else ""
        click.echo(printable(f"{h.row.host}: {h.row.state.replace('_', ' ')}: {h.row.detail}{restart}"))
    counts = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in report.counts().items() if n)
    click.echo(f"verify: {counts or 'no hosts'}")
    sys.exit(report.exit_code)
