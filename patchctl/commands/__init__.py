"""The command groups of the patchctl CLI, one module each; ``register`` attaches them."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    from patchctl.commands import config, deploy, incident, lab, notify, report, rollout, scan, schedule, updates
    from patchctl.commands import node as node_cmd
    from patchctl.commands import reboot as reboot_cmd
    from patchctl.commands import verify as verify_cmd
    from patchctl.commands import windows as windows_cmd

    cli.add_command(lab.lab)
    cli.add_command(scan.scan)
    cli.add_command(report.report)
    cli.add_command(config.config)
    cli.add_command(updates.updates)
    cli.add_command(updates.approve)
    cli.add_command(updates.decline)
    cli.add_command(updates.audit)
    cli.add_command(rollout.rollout)
    cli.add_command(deploy.deploy)
    cli.add_command(incident.incident)
    cli.add_command(schedule.schedule)
    cli.add_command(notify.notify)
    cli.add_command(windows_cmd.windows)
    cli.add_command(reboot_cmd.reboot)
    cli.add_command(verify_cmd.verify)
    cli.add_command(node_cmd.node)
