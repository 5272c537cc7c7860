"""patchctl db upgrade: the store's schema."""

from __future__ import annotations

import click

from patchctl.cli.app import App, db_option, handle_errors, json_option


@click.group()
def db() -> None:
    """The store's schema."""


@db.command("upgrade")
@db_option
@json_option
@click.pass_obj
@handle_errors
def db_upgrade(app: App) -> None:
    """Migrate the store to the newest schema revision and say from which to which.

    The commands that only read (report, updates, audit, rollout status, ...) never migrate a
    store; scan and the other commands that write do as they open it. Exit code 2 when there is
    no store at --db / PATCHCTL_DB (nothing is created).
    """
    from patchctl.database import upgrade

    done = upgrade(app.config().db)
    if app.json_output:
        app.emit_json(done.as_dict())
    elif done.upgraded:
        click.echo(f"store {done.url}: schema upgraded from revision {done.before} to {done.after}")
    else:
        click.echo(f"store {done.url}: schema already at the newest revision {done.after}")
