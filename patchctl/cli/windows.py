"""patchctl windows: the maintenance windows, their next occurrences and the hosts using them."""

from __future__ import annotations

import sys
from datetime import datetime

import click

from patchctl.cli.app import App, handle_errors, inventory_option, json_option


@click.command()
@click.option("--count", "-n", type=click.IntRange(1, 100), default=3, show_default=True, help="Next occurrences.")
@inventory_option
@json_option
@click.pass_obj
@handle_errors
def windows(app: App, count: int) -> None:
    """Maintenance windows: open now?, next occurrences (UTC and local), and which hosts use each.

    Each window also lists whom it is the install window of (waves, hosts by patch_install_window
    or patch_role). Exit code 2 when a host's patch_window or patch_install_window names a window
    the policy does not define.
    """
    from patchctl.maintenance_view import windows_view

    cfg = app.config()
    now = cfg.clock().now()
    view = windows_view(app.policy(), cfg.inventory, now, count)
    data = view.as_dict()
    code = view.exit_code
    if app.json_output:
        app.emit_json(data)
        sys.exit(code)
    click.echo(f"policy {data['policy']}, now {now.isoformat(timespec='minutes')}")
    if not data["windows"]:
        click.echo("no maintenance windows defined (add windows: to the policy file)")
    for w in data["windows"]:
        state = (
            f"open until {w['open_until_local'][11:16]} {w['timezone']} ({w['remaining']} left"
            + ("" if w["reboot_allowed"] else f", less than min_left {w['min_left']}")
            + ")"
            if w["open"]
            else "closed"
        )
        head = f"{w['name']}: '{w['schedule']}' {w['timezone']}, {w['duration']} (min_left {w['min_left']})"
        click.echo(f"{head}: {state}")
        for utc, local in zip(w["next_starts"], w["next_starts_local"], strict=True):
            day = datetime.fromisoformat(local).strftime("%a")
            when = f"{day} {local[:16].replace('T', ' ')} {w['timezone']}"
            click.echo(f"  next {when}  ({utc[:16].replace('T', ' ')} UTC)")
        click.echo(f"  hosts: {', '.join(w['hosts']) or '(none)'}")
        if w["install_waves"] or w["install_hosts"]:
            who = [f"wave {name}" for name in w["install_waves"]] + w["install_hosts"]
            click.echo(f"  install window of: {', '.join(who)}")
    for name, hosts in sorted(data["undefined"].items()):
        click.echo(f"error: window {name!r} is not defined in {data['policy']} (used by {', '.join(hosts)})", err=True)
    if data["hosts_without_window"]:
        click.echo(f"no window (never rebooted automatically): {', '.join(data['hosts_without_window'])}")
    for f in data["freezes"]:
        span = f"{f['from']} to {f['to']}" if "from" in f else f"'{f['schedule']}' for {f['duration']}"
        head = f"freeze {f['name']}: {span} {f['timezone']}, {f['scope']}, stops {', '.join(f['stops'])}"
        if f["active"]:
            click.echo(f"{head}: ACTIVE until {_local(f['active_until'], f['timezone'])}")
        elif f["next_start"]:
            click.echo(
                f"{head}: next {_local(f['next_start'], f['timezone'])} to {_local(f['next_end'], f['timezone'])}"
            )
        else:
            click.echo(f"{head}: over")
    sys.exit(code)


def _local(utc_text: str, tz: str) -> str:
    """``2026-12-19 00:00`` in ``tz`` for an ISO UTC time."""
    from zoneinfo import ZoneInfo

    return datetime.fromisoformat(utc_text.replace("Z", "+00:00")).astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")
