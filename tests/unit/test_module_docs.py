"""The project's Ansible modules document themselves in YAML that ansible-doc can read.

ansible-lint passes a module whose DOCUMENTATION does not parse (it only prints an [ERROR]); this
test does not. Seen failing with the apply module's ``- An entry ... is not installed: only its``
(a colon and a space in a plain list item make YAML read a key there)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted((ROOT / "plugins" / "modules").glob("*.py"))
DOC_BLOCKS = ("DOCUMENTATION", "EXAMPLES", "RETURN")


@pytest.mark.parametrize("module", MODULES, ids=[m.stem for m in MODULES])
def test_every_doc_block_is_yaml(module: Path) -> None:
    blocks = {}
    for node in ast.parse(module.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in DOC_BLOCKS and isinstance(node.value, ast.Constant):
                blocks[name] = node.value.value
    assert sorted(blocks) == sorted(DOC_BLOCKS), f"{module.name}: doc blocks {sorted(blocks)}"
    for name, text in blocks.items():
        try:
            yaml.safe_load(text)
        except yaml.YAMLError as exc:
            pytest.fail(f"{module.name} {name}: {exc}")
    doc = yaml.safe_load(blocks["DOCUMENTATION"])
    assert doc["module"] == module.stem
