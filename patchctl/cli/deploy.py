"""patchctl deploy: install exactly the rollout's updates each host of a wave is missing."""

from __future__ import annotations

import sys
from contextlib import nullcontext

import click

from patchctl.cli.app import App, apply_progress, deploy_options, handle_errors, inventory_option, json_option


@click.command()
@click.option("--rollout", "rollout_id", type=int, metavar="ID", help="The rollout (default: the latest).")
@click.option("--wave", metavar="NAME", help="The wave (default: the next wave that is due).")
@inventory_option
@json_option
@click.pass_obj
@handle_errors
def deploy(app: App, rollout_id: int | None, wave: str | None) -> None:
    """Install exactly the rollout's updates that each host of the wave is missing.

    Then servers whose maintenance window is open reboot at once; the other hosts that need a
    reboot stay reboot pending (for `patchctl reboot`).

    Exit 0 all hosts ok, 1 host failures (or the wave halted), 3 the wave is not promoted yet.
    """
    from patchctl.deploy import deploy as run
    from patchctl.render.deploy import deploy_lines

    live = app.live("deploy")
    with live or nullcontext():
        report = run(deploy_options(app, rollout_id, wave, live), progress=apply_progress(live))
    if app.json_output:
        app.emit_json(report.as_dict())
    else:
        for line in deploy_lines(report.as_dict(), quiet=app.quiet, only_not_ok=not app.shows_host("ok", live)):
            click.echo(line)
    sys.exit(report.exit_code)
