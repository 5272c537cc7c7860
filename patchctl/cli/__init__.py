"""The click layer: the root group and one module per command group.

Each command parses its options, calls one flow and prints. Importing this package gives the
root group with every command attached (``from patchctl.cli import cli``); the command modules
import only :mod:`patchctl.cli.app` from here, never this package's group.
"""

from __future__ import annotations

import sys

import click

from patchctl import __version__
from patchctl.cli.app import App
from patchctl.errors import EXIT_USAGE


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "-i",
    "--inventory",
    metavar="PATH",
    help="Inventory file or directory (env PATCHCTL_INVENTORY; default: the lab's).",
)
@click.option("--db", metavar="URL", help="Store URL, e.g. sqlite:////var/lib/patchctl/patchctl.db (env PATCHCTL_DB).")
@click.option("--policy", metavar="PATH", help="Policy file (env PATCHCTL_POLICY).")
@click.option(
    "--now",
    metavar="TIME",
    help="Simulated current time, ISO 8601, e.g. 2025-03-14T09:00:00Z (env PATCHCTL_NOW).",
)
@click.option("--json", "json_output", is_flag=True, help="Machine-readable JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and the final result.")
@click.option(
    "-v", "--verbose", is_flag=True, help="After a live progress display, list every host (not only those not ok)."
)
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(__version__, prog_name="patchctl")
@click.pass_context
def cli(
    ctx: click.Context,
    inventory: str | None,
    db: str | None,
    policy: str | None,
    now: str | None,
    json_output: bool,
    quiet: bool,
    verbose: bool,
    debug: bool,
) -> None:
    """patchctl: agentless patch management for Windows and Linux fleets, driven by Ansible.

    Exit codes: 0 ok, 1 host failures, 2 usage or configuration error, 3 blocked by policy.
    """
    given = {"inventory": inventory, "db": db, "policy": policy, "now": now}
    overrides = {k: v for k, v in given.items() if v is not None}
    ctx.obj = App(overrides=overrides, json_output=json_output, quiet=quiet, debug=debug, verbose=verbose)


def _attach() -> None:
    from patchctl.cli import (
        config,
        cve,
        db,
        deploy,
        exceptions,
        incident,
        lab,
        node,
        notify,
        plan,
        reboot,
        report,
        rollout,
        scan,
        schedule,
        updates,
        verify,
        windows,
    )

    for command in (
        lab.lab,
        scan.scan,
        report.report,
        config.config,
        db.db,
        updates.updates,
        updates.approve,
        updates.decline,
        updates.audit,
        cve.cve,
        plan.plan,
        rollout.rollout,
        deploy.deploy,
        incident.incident,
        exceptions.except_,
        schedule.schedule,
        notify.notify,
        windows.windows,
        reboot.reboot,
        verify.verify,
        node.node,
    ):
        cli.add_command(command)


_attach()


def main() -> None:
    try:
        cli.main(prog_name="patchctl", standalone_mode=True)
    except click.exceptions.Exit as exc:  # pragma: no cover - click handles this in standalone mode
        sys.exit(exc.exit_code)
    except click.UsageError as exc:  # pragma: no cover
        click.echo(f"patchctl: error: {exc.format_message()}", err=True)
        sys.exit(EXIT_USAGE)
