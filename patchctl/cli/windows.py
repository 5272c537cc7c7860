"""patchctl windows: the maintenance windows, their next occurrences and the hosts using them."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

import click

from patchctl.cli.app import App, handle_errors, inventory_option, json_option
from patchctl.errors import EXIT_OK, EXIT_USAGE
from patchctl.rules.clock import iso_utc


def windows_data(policy_path: str | None, inventory_path: str, now: datetime, count: int) -> dict[str, Any]:
    """Every window of the policy with its state at ``now``, next starts and hosts; and the hosts
    whose ``patch_window`` names no window of the policy."""
    from patchctl.decisions import load_policy
    from patchctl.reboot import load_inventory
    from patchctl.rules.maintenance import format_duration, hosts_by_window

    policy = load_policy(policy_path)
    inventory = load_inventory(inventory_path)
    used = hosts_by_window({h: inventory.var(h, "patch_window") for h in inventory.hosts})
    rows = []
    for name, w in sorted(policy.windows.items()):
        span = w.current(now)
        rows.append(
            {
                **w.as_dict(),
                "open": span is not None,
                "open_until": iso_utc(span.end) if span else None,
                "open_until_local": span.end.astimezone(w.tz).isoformat() if span else None,
                "remaining": format_duration(span.end - now) if span else None,
                "reboot_allowed": w.allows_reboot(now),
                "next_starts": [iso_utc(s) for s in w.next_starts(now, count)],
                "next_starts_local": [s.astimezone(w.tz).isoformat() for s in w.next_starts(now, count)],
                "hosts": used.get(name, []),
            }
        )
    undefined = {name: hosts for name, hosts in used.items() if name not in policy.windows}
    no_window = sorted(h for h in inventory.hosts if not inventory.var(h, "patch_window"))
    return {
        "policy": policy.source,
        "now": iso_utc(now),
        "windows": rows,
        "undefined": undefined,
        "hosts_without_window": no_window,
    }


@click.command()
@click.option("--count", "-n", type=click.IntRange(1, 100), default=3, show_default=True, help="Next occurrences.")
@inventory_option
@json_option
@click.pass_obj
@handle_errors
def windows(app: App, count: int) -> None:
    """Maintenance windows: open now?, next occurrences (UTC and local), and which hosts use each.

    Exit code 2 when a host's patch_window names a window the policy does not define.
    """
    cfg = app.config()
    now = cfg.clock().now()
    data = windows_data(cfg.policy, cfg.inventory, now, count)
    code = EXIT_USAGE if data["undefined"] else EXIT_OK
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
        click.echo(f"{w['name']}: '{w['start']}' {w['timezone']}, {w['duration']} (min_left {w['min_left']}): {state}")
        for utc, local in zip(w["next_starts"], w["next_starts_local"], strict=True):
            click.echo(f"  next {local[:16].replace('T', ' ')} {w['timezone']}  ({utc[:16].replace('T', ' ')} UTC)")
        click.echo(f"  hosts: {', '.join(w['hosts']) or '(none)'}")
    for name, hosts in sorted(data["undefined"].items()):
        click.echo(f"error: window {name!r} is not defined in {data['policy']} (used by {', '.join(hosts)})", err=True)
    if data["hosts_without_window"]:
        click.echo(f"no window (never rebooted automatically): {', '.join(data['hosts_without_window'])}")
    sys.exit(code)
