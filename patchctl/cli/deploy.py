"""patchctl deploy: install exactly the rollout's updates each host of a wave is missing."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

import click

from patchctl.cli.app import App, handle_errors, inventory_option, json_option
from patchctl.rules.model import ApplyOutcome

if TYPE_CHECKING:
    from patchctl.reboot import RebootReport


def run_deploy(app: App, rollout_id: int | None, wave: str | None) -> int:
    """Deploy, print the result; returns the exit code."""
    from patchctl.deploy import DeployOptions, deploy

    cfg = app.config()
    opts = DeployOptions(
        inventory=cfg.inventory,
        db_url=cfg.db,
        clock=cfg.clock(),
        rollout_id=rollout_id,
        wave=wave,
        notifier=app.notifier(),
    )
    progress = None
    if sys.stderr.isatty() and not app.quiet and not app.json_output:

        def progress(outcome: ApplyOutcome, done: int, total: int) -> None:
            colour = "green" if outcome.status == "ok" else "red"
            app.err.print(f"[{done}/{total}] {outcome.host}: [{colour}]{outcome.status}[/]")

    report = deploy(opts, progress=progress)
    reboots = _reboot_after(app, report.outcomes)
    data = report.as_dict()
    data["reboots"] = reboots.as_dict()["hosts"]
    code = max(report.exit_code, reboots.exit_code)
    if app.json_output:
        app.emit_json(data)
        return code
    if report.message:
        click.echo(f"rollout {report.rollout_id} wave {report.wave}: {report.message}")
        return report.exit_code
    if not app.quiet:
        for h in data["hosts"]:
            line = f"{h['host']}: {h['status']}"
            if h["installed"]:
                line += f", installed {', '.join(h['installed'])}"
            if h["failed"]:
                line += "; failed " + "; ".join(f"{uid}: {why}" for uid, why in h["failed"].items())
            elif h["error"]:
                line += f": {h['error']}"
            if h["reboot_required"]:
                line += " (reboot pending)"
            click.echo(line)
        if report.already_done:
            click.echo(f"already done before: {', '.join(report.already_done)}")
        if report.not_started:
            click.echo(f"not started: {', '.join(report.not_started)}")
        for line in _reboot_lines(reboots):
            click.echo(line)
    ok = sum(1 for h in data["hosts"] if h["status"] == "ok")
    summary = f"rollout {report.rollout_id} wave {report.wave}: {report.state}, {ok} ok of {len(data['hosts'])} run"
    if report.halted_reason:
        summary += f"; halted: {report.halted_reason}"
    click.echo(summary)
    return code


def _reboot_after(app: App, outcomes: Mapping[str, ApplyOutcome]) -> RebootReport:
    """Servers whose window is open now reboot at once; the others stay reboot pending."""
    from patchctl.decisions import load_policy
    from patchctl.reboot import after_deploy_outcomes

    cfg = app.config()
    return after_deploy_outcomes(cfg.inventory, cfg.db, load_policy(cfg.policy), cfg.clock().now(), outcomes)


def _reboot_lines(reboots: RebootReport) -> list[str]:
    lines = []
    for plan in reboots.plans:
        result = reboots.results.get(plan.host)
        if result is None:
            lines.append(f"{plan.host}: reboot pending ({plan.role or 'no role'}: {plan.reason})")
        elif result.status == "ok":
            lines.append(f"{plan.host}: rebooted ({plan.reason})")
        else:
            lines.append(f"{plan.host}: reboot {result.status}: {result.error}; still reboot pending")
    return lines


@click.command()
@click.option("--rollout", "rollout_id", type=int, metavar="ID", help="The rollout (default: the latest).")
@click.option("--wave", metavar="NAME", help="The wave (default: the next wave that is due).")
@inventory_option
@json_option
@click.pass_obj
@handle_errors
def deploy(app: App, rollout_id: int | None, wave: str | None) -> None:
    """Install exactly the rollout's updates that each host of the wave is missing.

    Exit 0 all hosts ok, 1 host failures (or the wave halted), 3 the wave is not promoted yet.
    """
    sys.exit(run_deploy(app, rollout_id, wave))
