"""The command groups of the patchctl CLI, one module each; ``register`` attaches them."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    from patchctl.commands import config, lab, report, scan

    cli.add_command(lab.lab)
    cli.add_command(scan.scan)
    cli.add_command(report.report)
    cli.add_command(config.config)
