"""How an inventory is loaded is one function: patchctl.ansible.inventory.load_inventory.

Read from the package's source (its syntax trees), not from a run: no other module defines a
``load_inventory`` or builds an inventory from ``list_inventory`` output itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import patchctl

PACKAGE = Path(patchctl.__file__).resolve().parent
HOME = PACKAGE / "ansible" / "inventory.py"


def _called(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def test_only_ansible_inventory_loads_an_inventory() -> None:
    """Broken on purpose: a ``def load_inventory`` back in scan.py, or deploy.py calling
    ``Inventory.from_ansible_json(src, list_inventory(src))`` again, fails this test naming the file."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == HOME:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "load_inventory":
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: defines load_inventory")
            if isinstance(node, ast.Call) and _called(node) in ("list_inventory", "from_ansible_json"):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: calls {_called(node)}")
    assert found == []
