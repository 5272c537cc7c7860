"""The execution node flows (``patchctl node``): bootstrap nodes, and which hosts each runs for.

An execution node is a host of the inventory that runs Ansible for the hosts naming it in
``patchctl_execution_node`` (ansible-runner's streaming engine, :mod:`patchctl.ansible.nodes`);
the other hosts run from this control node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from patchctl.ansible import nodes
from patchctl.ansible.inventory import load_inventory
from patchctl.ansible.nodes import BootstrapResult

CONTROL_NODE = "(control node)"


@dataclass(frozen=True)
class NodeHosts:
    """One node (or the control node, ``forks`` None) and the hosts it runs for."""

    node: str
    hosts: list[str]
    forks: int | None

    def as_dict(self) -> dict[str, Any]:
        return {"node": self.node, "hosts": self.hosts, "forks": self.forks}


def bootstrap_nodes(inventory_path: str, names: Sequence[str]) -> list[BootstrapResult]:
    """Install this controller's ansible-core and ansible-runner (from its wheels) and the pinned
    collections on each node ``names`` of the inventory, one after the other."""
    inventory = load_inventory(inventory_path)
    return [nodes.bootstrap(nodes.execution_node(inventory, name)) for name in names]


def node_hosts(inventory_path: str) -> list[NodeHosts]:
    """Each execution node of the inventory with its hosts, then the control node with the rest."""
    inventory = load_inventory(inventory_path)
    parts = nodes.split(inventory, inventory.hosts)
    return [NodeHosts(j.node.name, j.hosts, j.forks) for j in parts.jobs] + [NodeHosts(CONTROL_NODE, parts.local, None)]
