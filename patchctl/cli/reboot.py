"""patchctl reboot: reboot the pending servers whose maintenance window is open now (for cron)."""

from __future__ import annotations

import sys
from contextlib import nullcontext

import click

from patchctl.cli.app import App, handle_errors, inventory_option, json_option, limit_option
from patchctl.render.escape import printable


@click.command()
@limit_option
@click.option("--timeout", type=click.IntRange(1), metavar="SECONDS", help="How long each host may take to come back.")
@click.option("--dry-run", is_flag=True, help="Only say what would be rebooted and why.")
@inventory_option
@json_option
@click.pass_obj
@handle_errors
def reboot(app: App, limit: str | None, timeout: int | None, dry_run: bool) -> None:
    """Reboot the hosts with a reboot pending whose window is open now (with enough left).

    Servers reboot when required inside their window; clients never (they stay reboot pending);
    the host variable patch_reboot (always, if_required, never) overrides the role. Each host is
    checked to come back with a new boot id. Exit code 1 when a reboot failed.
    """
    from patchctl.reboot import RebootOptions, reboot_pending

    cfg = app.config()
    opts = RebootOptions(
        inventory=cfg.inventory,
        db_url=cfg.db,
        policy=app.policy(),
        now=cfg.clock().now(),
        limit=limit,
        timeout=timeout,
        dry_run=dry_run,
    )
    live = app.live("reboot") if not dry_run else None
    with live or nullcontext():
        report = reboot_pending(opts, progress=(lambda result: live.host(result.status)) if live else None)
    if app.json_output:
        app.emit_json(report.as_dict())
        sys.exit(report.exit_code)
    if not report.plans:
        click.echo("no host has a reboot pending")
    for plan in report.plans:
        result = report.results.get(plan.host)
        if result is not None and not app.shows_host(result.status, live):
            continue
        if result is not None:
            line = f"{plan.host}: rebooted" if result.status == "ok" else f"{plan.host}: reboot {result.status}"
            if result.status == "ok":
                before, after = (result.boot_id_before or "?")[:8], (result.boot_id_after or "?")[:8]
                line += f" ({plan.reason}; boot id {before} -> {after})"
            else:
                line += f": {result.error}; still reboot pending"
        elif dry_run and plan.action == "reboot":
            line = f"{plan.host}: would reboot ({plan.reason})"
        else:
            line = f"{plan.host}: reboot pending ({plan.role or 'no role'}: {plan.reason})"
        click.echo(printable(line))
    sys.exit(report.exit_code)
