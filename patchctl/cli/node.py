"""patchctl node bootstrap | list: execution nodes (ansible-runner's streaming engine)."""

from __future__ import annotations

import click

from patchctl.cli.app import App, handle_errors, inventory_option, json_option


@click.group()
def node() -> None:
    """Execution nodes: hosts that run Ansible for part of the fleet (see patchctl.execution_nodes)."""


@node.command("bootstrap")
@click.argument("names", metavar="NODE...", nargs=-1, required=True)
@inventory_option
@json_option
@click.pass_obj
@handle_errors
def node_bootstrap(app: App, names: tuple[str, ...]) -> None:
    """Install Python venv, ansible-core and ansible-runner (this controller's versions, from its
    wheels: the node needs no package index) and the pinned collections on each NODE."""
    from patchctl.execution_nodes import bootstrap_nodes

    results = bootstrap_nodes(app.config().inventory, names)
    if app.json_output:
        app.emit_json([r.as_dict() for r in results])
        return
    for r in results:
        click.echo(
            f"{r.node}: ansible-core {r.ansible_core}, ansible-runner {r.ansible_runner} in {r.node_dir}/venv "
            f"({r.wheels} wheels, {r.seconds:g} s); {r.cores} cores, {r.mem_mib} MiB: {r.forks} forks"
        )


@node.command("list")
@inventory_option
@json_option
@click.pass_obj
@handle_errors
def node_list(app: App) -> None:
    """Each execution node and the hosts it runs for (inventory variable patchctl_execution_node)."""
    from patchctl.execution_nodes import node_hosts

    rows = node_hosts(app.config().inventory)
    if app.json_output:
        app.emit_json([r.as_dict() for r in rows])
        return
    for r in rows:
        click.echo(f"{r.node}: {len(r.hosts)} hosts: {', '.join(r.hosts)}")
