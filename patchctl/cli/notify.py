"""patchctl notify: check the notification settings by sending a test event."""

from __future__ import annotations

import json

import click

from patchctl.cli.app import App, handle_errors, json_option
from patchctl.errors import EXIT_HOST_FAILURES, ConfigError, PatchctlError


@click.group()
def notify() -> None:
    """Notifications (webhook, email) of wave finished/halted, incident opened, host failed."""


@notify.command("test")
@click.option(
    "--event",
    type=click.Choice(["wave.finished", "wave.halted", "incident.opened", "host.failed"]),
    default="host.failed",
    show_default=True,
)
@click.option("--payload", metavar="JSON", help='The event\'s payload, e.g. \'{"host": "web01", "reason": "..."}\'.')
@json_option
@click.pass_obj
@handle_errors
def notify_test(app: App, event: str, payload: str | None) -> None:
    """Send one event through every configured channel; exit 1 when a delivery fails."""
    from patchctl import notify as nt

    cfg = app.config()
    try:
        data = json.loads(payload) if payload else {"host": "test", "reason": "patchctl notify test", "test": True}
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--payload: not JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise ConfigError("--payload: expected a JSON object")
    results = nt.send(event, data, cfg, at=cfg.clock().now())
    if app.json_output:
        app.emit_json([{"channel": r.channel, "target": r.target, "ok": r.ok, "detail": r.detail} for r in results])
    elif not app.quiet:
        if not results:
            click.echo(f"nothing sent: no channel configured, or {event} is not in notify.events")
        for r in results:
            click.echo(f"{r.channel} {r.target}: {'ok' if r.ok else 'FAILED'} ({r.detail})")
    if any(not r.ok for r in results):
        raise PatchctlError("a notification could not be delivered", EXIT_HOST_FAILURES)
