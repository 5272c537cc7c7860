"""patchctl lab: the local fleet of real Debian hosts."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from patchctl.cli.app import App, handle_errors, json_option, print_table
from patchctl.errors import PatchctlError


@click.group()
def lab() -> None:
    """The local lab: a fleet of real Debian hosts on this machine (needs root)."""


def _lab() -> Any:
    from patchctl.lab.fleet import Lab

    return Lab()


@lab.command("up")
@click.option("--hosts", "count", type=int, default=6, show_default=True, help="How many hosts.")
@click.option("--subnet", default="127.77", show_default=True, help="Loopback range 127.N for the lab's addresses.")
@click.option(
    "--dnf-hosts",
    type=int,
    default=0,
    show_default=True,
    help="How many RPM hosts with dnf (Debian's dnf, an EL identity; groups dnf, redhat).",
)
@click.option(
    "--zypper-hosts",
    type=int,
    default=0,
    show_default=True,
    help="How many RPM hosts with zypper (Debian's zypper, a SUSE identity; groups zypper, suse).",
)
@json_option
@click.pass_obj
@handle_errors
def lab_up(app: App, count: int, subnet: str, dnf_hosts: int, zypper_hosts: int) -> None:
    """Build (first time: about a minute; RPM images about 40 s more) and start the lab; write its inventory."""
    the_lab = _lab()
    if not app.quiet and not app.json_output:
        total = count + dnf_hosts + zypper_hosts
        app.err.print(f"lab: starting {total} hosts in {the_lab.dir} ...")
    hosts = the_lab.up(count, subnet=subnet, dnf_hosts=dnf_hosts, zypper_hosts=zypper_hosts)
    if app.json_output:
        app.emit_json({"inventory": str(the_lab.inventory_path), "hosts": [asdict(h) for h in hosts]})
        return
    click.echo(f"lab up: {len(hosts)} hosts; inventory: {the_lab.inventory_path}")


@lab.command("down")
@click.pass_obj
@handle_errors
def lab_down(app: App) -> None:
    """Stop every host and remove the lab: no process, mount or socket is left."""
    the_lab = _lab()
    the_lab.down()
    left = the_lab.leftovers()
    if left:
        raise PatchctlError(f"lab down left: {'; '.join(left)}", 1)
    if not app.quiet:
        click.echo("lab down")


@lab.command("reset")
@click.pass_obj
@handle_errors
def lab_reset(app: App) -> None:
    """Put every host back to its pristine state and boot it again."""
    the_lab = _lab()
    the_lab.reset()
    if not app.quiet:
        click.echo(f"lab reset: {len(the_lab.hosts())} hosts pristine")


@lab.command("status")
@json_option
@click.pass_obj
@handle_errors
def lab_status(app: App) -> None:
    """Each lab host: address, power, reachability, boot id."""
    the_lab = _lab()
    rows = the_lab.status()
    if app.json_output:
        app.emit_json(
            {"up": the_lab.is_up(), "inventory": str(the_lab.inventory_path), "hosts": [asdict(r) for r in rows]}
        )
        return
    if not rows:
        click.echo(f"lab: not set up in {the_lab.dir}")
        return
    table = Table(title=f"lab {the_lab.dir}")
    for col in ("host", "address", "role", "power", "ssh", "boot id"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r.name,
            f"{r.address}:{r.port}",
            r.role,
            "on" if r.running else "off",
            Text("up", style="green") if r.reachable else Text("down", style="red"),
            (r.boot_id or "-")[:8],
        )
    print_table(app, table)


@lab.group("repo")
def lab_repo() -> None:
    """The lab's repositories while the lab runs: publish a new version of a package."""


@lab_repo.command("publish")
@click.argument("name")
@click.argument("version")
@click.option("--suite", default=None, help="The apt suite: bookworm (default) or bookworm-security.")
@click.option("--drop-older", is_flag=True, help="Leave the older versions of NAME out of the index, as archives do.")
@click.option(
    "--pkg-mgr",
    type=click.Choice(["apt", "dnf", "zypper"]),
    default="apt",
    show_default=True,
    help="Which hosts' repository: apt, or the RPM one that dnf and zypper hosts share.",
)
@click.option(
    "--classification",
    type=click.Choice(["security", "bugfix", "enhancement"]),
    default=None,
    help="RPM only: an advisory of this type for the package.",
)
@click.option(
    "--severity",
    type=click.Choice(["Low", "Moderate", "Important", "Critical"]),
    default=None,
    help="RPM only, with --classification security: the advisory's severity.",
)
@json_option
@click.pass_obj
@handle_errors
def lab_repo_publish(
    app: App,
    name: str,
    version: str,
    suite: str | None,
    drop_older: bool,
    pkg_mgr: str,
    classification: str | None,
    severity: str | None,
) -> None:
    """Build package NAME at VERSION (UPSTREAM-REVISION, e.g. 1.2-1), add it to the running lab's
    repository, re-index and re-sign it. The same version again changes nothing."""
    from patchctl.lab.publish import PublishRequest, publish

    result = publish(_lab(), PublishRequest(name, version, pkg_mgr, suite, drop_older, classification, severity))
    if app.json_output:
        app.emit_json(asdict(result))
        return
    if app.quiet:
        return
    where = f"apt suite {result.suite}" if result.suite else "the RPM repository (dnf, zypper)"
    if not result.changed:
        click.echo(f"lab repo publish: {name} {version} already in {where}; nothing changed")
        return
    line = f"lab repo publish: {name} {version} {'added to' if result.added else 'kept in'} {where}"
    if result.dropped:
        line += f"; dropped {', '.join(result.dropped)}"
    if result.advisory:
        line += f"; advisory {result.advisory}"
    click.echo(line)
