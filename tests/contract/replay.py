"""Replay a recorded win_updates output stream through the pinned collection's real action plugin.

``ansible.windows`` runs ``win_updates`` as an action plugin (plugins/action/win_updates.py) that
starts the module as a background job on the host, polls the progress lines the job writes,
then cancels it; the plugin turns those lines into the task's result. Here only the connection
and the module execution are replaced: ``_execute_module`` answers each start / poll / cancel
from a recording, and everything else is the plugin's own code, run on a real ``Task``,
``PlayContext``, ``DataLoader`` and ``Templar``.

Recording format (tests/data/windows/recordings/*.txt): lines starting with ``#`` say what the
recording models; the rest are groups separated by a blank line, one group per module call after
the start, in order:

- progress lines ``{"task": ..., "result": ...}`` (search_result, download, download_result,
  install, install_result, exit): what one poll returns as its ``output``;
- ``FAILURE``: that poll's connection dropped (the plugin retries a poll once);
- one JSON object without ``task``: that call's whole return (a failing poll script, or the
  cancel's ``{"changed": false}`` after the exit line);
- one JSON object ``{"reboot": {...}}``: with ``reboot: true`` the plugin reboots the host between
  two module runs (``plugin_utils._reboot.reboot_host``, which works the connection); the object
  is what that reboot returned (``failed``, ``rebooted``, ``msg``, ...). patchctl's own roles run
  ``reboot: false``; these recordings show what the plugin makes of a reboot it does itself.

A start call takes no group (its return, the poll and cancel options, is not recorded).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.contract import collection

RECORDINGS = Path(__file__).resolve().parents[1] / "data" / "windows" / "recordings"
FAILURE = "FAILURE"


@dataclass
class Recording:
    name: str
    models: str  # what it models (its # lines)
    calls: list[Any] = field(default_factory=list)  # per call after a start: output list, FAILURE or a dict


def load(name: str) -> Recording:
    text = (RECORDINGS / name).read_text(encoding="utf-8")
    about = [line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")]
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    rec = Recording(name, " ".join(about))
    for group in (g.strip() for g in body.split("\n\n")):
        if not group:
            continue
        lines = group.splitlines()
        if lines == [FAILURE]:
            rec.calls.append(FAILURE)
            continue
        parsed = [json.loads(line) for line in lines]
        if len(parsed) == 1 and isinstance(parsed[0], dict) and set(parsed[0]) == {"reboot"}:
            rec.calls.append(parsed[0])
        elif all(isinstance(p, dict) and "task" in p for p in parsed):
            rec.calls.append(parsed)
        elif len(parsed) == 1 and isinstance(parsed[0], dict):
            rec.calls.append(parsed[0])
        else:
            raise ValueError(f"{name}: a group mixes progress lines and a module return: {group[:80]}")
    if not rec.models:
        raise ValueError(f"{name}: say on a # line what the recording models")
    return rec


class _Shell:
    tmpdir = None


class _Connection:
    """Stands in for the host's connection: the module execution is replaced, so nothing connects."""

    _shell = _Shell()
    transport = "replay"


@dataclass
class Replay:
    result: dict[str, Any]
    operations: list[str]  # the module calls the plugin made: start, poll, cancel (and reboot)


def run(recording: Recording, args: Mapping[str, Any], host: str = "ws1") -> Replay:
    """The win_updates action plugin's result for a task with ``args``, its module replaced by
    ``recording``."""
    from ansible.errors import AnsibleConnectionFailure
    from ansible.parsing.dataloader import DataLoader
    from ansible.playbook.play_context import PlayContext
    from ansible.playbook.task import Task
    from ansible.template import Templar

    plugin = collection.win_updates_action()
    calls = list(recording.calls)
    operations: list[str] = []

    class ReplayedModule(plugin.ActionModule):  # type: ignore[misc,name-defined]  # the plugin is imported at run time, untyped
        def _execute_module(self, module_name: str | None = None, module_args: Any = None, **_: Any) -> Any:
            assert module_name == "ansible.windows.win_updates"
            operation = module_args["_operation"]
            operations.append(operation)
            if operation == "start":
                return {"poll_options": {}, "cancel_options": {}, "invocation": {"module_args": dict(module_args)}}
            if not calls:
                raise AssertionError(f"{recording.name}: the plugin made a {operation} call the recording lacks")
            answer = calls.pop(0)
            if isinstance(answer, dict) and "reboot" in answer:
                raise AssertionError(f"{recording.name}: a {operation} call where the recording has a reboot")
            if answer == FAILURE:
                raise AnsibleConnectionFailure("replayed: the connection dropped during the poll")
            if isinstance(answer, list):
                return {"output": answer}
            return dict(answer)

    def replayed_reboot(*_args: Any, **_kwargs: Any) -> dict[str, Any]:  # (task_action, connection, ...)
        operations.append("reboot")
        answer = calls.pop(0) if calls else None
        if not (isinstance(answer, dict) and "reboot" in answer):
            raise AssertionError(f"{recording.name}: the plugin rebooted where the recording has {answer!r}")
        return dict(answer["reboot"])

    loader = DataLoader()
    task = Task()
    task.action = "ansible.windows.win_updates"
    task.args = dict(args)
    action = ReplayedModule(task, _Connection(), PlayContext(), loader, Templar(loader=loader), None)
    real_reboot = plugin.reboot_host
    plugin.reboot_host = replayed_reboot  # the plugin's module-level name, as _run_sync calls it
    try:
        result = action.run(task_vars={"inventory_hostname": host})
    finally:
        plugin.reboot_host = real_reboot
    assert not calls, f"{recording.name}: {len(calls)} recorded calls were not made"
    return Replay(result, operations)
