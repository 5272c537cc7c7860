"""Result shapes as Ansible's task executor gives them, built from the roles' own task files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROLES = Path(__file__).resolve().parents[2] / "roles"


def set_fact_result(task_file: str, task_name: str, registered: Mapping[str, Any]) -> dict[str, Any]:
    """What the ``set_fact`` task ``task_name`` of ``task_file`` (under roles/) returns: its
    arguments templated by Ansible from the role's task file, ``registered`` holding the
    registered results and variables it reads; shaped as the set_fact action returns them
    (ansible-core 2.19: the facts, not cacheable, no change)."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar

    loader = DataLoader()
    tasks = loader.load_from_file(str(ROLES / task_file), trusted_as_template=True)
    task = next(t for t in tasks if t.get("name") == task_name)
    args = Templar(loader=loader, variables=dict(registered)).template(task["ansible.builtin.set_fact"])
    return {"ansible_facts": plain(args), "_ansible_facts_cacheable": False, "changed": False}


def plain(value: Any) -> Any:
    """Ansible's tagged strings and containers as the plain JSON types the runner events carry."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def loop_result(items: list[dict[str, Any]]) -> dict[str, Any]:
    """A loop task's registered result: its items' results under ``results``."""
    return {
        "results": items,
        "changed": any(bool(i.get("changed")) for i in items),
        "msg": "All items completed",
        "skipped": False,
    }


def under_failed_when(result: Mapping[str, Any], failed: bool = False) -> dict[str, Any]:
    """``result`` as Ansible's task executor leaves it (event and registered value) for a task
    with ``failed_when`` evaluating to ``failed`` (ansible-core 2.19 TaskExecutor._execute:
    ``failed_when_result`` and ``failed`` both set to the condition; a suppressed failure's
    ``exception`` moved to ``failed_when_suppressed_exception``). ``msg`` is left as it was."""
    shaped = dict(result)
    shaped.setdefault("changed", False)
    shaped["failed_when_result"] = shaped["failed"] = failed
    if not failed and (exc := shaped.pop("exception", None)):
        shaped["failed_when_suppressed_exception"] = exc
    return shaped
