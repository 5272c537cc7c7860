"""Contract: the Windows hooks of patch_apply_windows without a Windows host.

The hook's PowerShell wrapper is rendered by Ansible's real Templar from the role's vars; the
win_shell loop results (shaped as ansible.windows 3.3.0's win_shell documents its return:
``rc``, ``stdout``, ``stderr``, ``cmd``, ``start``, ``end``, ``delta``; values constructed by
patchctl, registered with ``failed_when: false``) are replayed through the role's own judging
tasks (``tasks/hooks_result.yml``) in a real play on a local host, and the play's events through
the deploy flow's real handler, which makes the host's outcome."""

from __future__ import annotations

import base64
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from patchctl import paths
from patchctl.ansible.runner import HostEvent, PlaybookRunner
from patchctl.deploy import _BatchHandler
from patchctl.rules.model import ApplyOutcome
from tests.contract import shapes

CU = "74819184-828b-4f97-bb4b-089a0c58e366"
ENTRY = {
    "uid": f"windows:{CU}",
    "source": "windows",
    "name": "2021-05 Cumulative Update for Windows Server 2019 (1809) for x64-based Systems (KB5003171)",
    "version": "1",
    "update_id": CU,
    "kbs": ["KB5003171"],
    "major": False,
}


def shell_item(item: dict[str, Any], rc: int, stdout: str, stderr: str = "") -> dict[str, Any]:
    """One win_shell loop item as registered under ``failed_when: false``."""
    return shapes.under_failed_when(
        {
            "changed": False,
            "cmd": "(the hook wrapper)",
            "rc": rc,
            "stdout": stdout,
            "stdout_lines": stdout.splitlines(),
            "stderr": stderr,
            "start": "2026-12-06 21:50:01.104920",
            "end": "2026-12-06 21:50:02.311876",
            "delta": "0:00:01.206956",
            "failed": rc != 0,
            "item": item,
            "ansible_loop_var": "item",
        },
        failed=False,
    )


def test_the_wrapper_runs_the_command_encoded_with_its_timeout() -> None:
    """The command reaches PowerShell as -EncodedCommand (UTF-16LE base64: no quoting), never in
    plain text, with the hook's timeout in milliseconds and the tree killed after it.

    Seen failing with ``b64encode`` given no encoding (UTF-8: PowerShell would read garbage)."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar

    loader = DataLoader()
    internals = loader.load_from_file(
        str(paths.roles_dir() / "patch_apply_windows" / "vars" / "main.yml"), trusted_as_template=True
    )
    command = "Invoke-RestMethod -Uri 'https://lb.example/drain?host=web1' -Headers @{x = \"$env:LB_TOKEN\"}"
    text = Templar(
        loader=loader,
        variables={**internals, "item": {"command": command, "timeout": 45}},
    ).template(internals["__patch_apply_windows_hook_wrapper"])
    encoded = re.search(r"-EncodedCommand ' \+\s+'([A-Za-z0-9+/=]+)'", str(text))
    assert encoded is not None, text
    assert base64.b64decode(encoded.group(1)).decode("utf-16-le") == command
    assert command not in str(text)
    assert "WaitForExit(45000)" in str(text)
    assert "taskkill.exe /PID $p.Id /T /F" in str(text)
    assert "exit 124" in str(text)


def _replay(tmp_path: Path, phase: str, items: list[dict[str, Any]]) -> tuple[list[HostEvent], int]:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "children": {
                        "windows": {
                            "hosts": {
                                "win-local": {
                                    "ansible_connection": "local",
                                    "ansible_python_interpreter": sys.executable,
                                }
                            }
                        }
                    }
                }
            }
        )
    )
    playbook = tmp_path / "replay.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Replay recorded hook results",
                    "hosts": "windows",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": "Judge the hooks",
                            "ansible.builtin.include_role": {
                                "name": "patch_apply_windows",
                                "tasks_from": "hooks_result.yml",
                            },
                            "vars": {
                                "__patch_apply_windows_hook_phase": phase,
                                "__patch_apply_windows_hook_runs": shapes.loop_result(items),
                            },
                        }
                    ],
                }
            ]
        )
    )
    events: list[HostEvent] = []
    result = PlaybookRunner().run(playbook, inventory=str(inventory), extravars={}, on_event=events.append)
    return events, result.rc


def _outcome(events: list[HostEvent]) -> ApplyOutcome:
    got: list[ApplyOutcome] = []
    handler = _BatchHandler({"win-local": [ENTRY]}, lambda o, _p: got.append(o))
    for e in events:
        handler(e)
    handler.finish()
    (outcome,) = got
    return outcome


def test_failing_pre_install_hook_fails_the_host_with_its_output_and_nothing_installed(tmp_path: Path) -> None:
    """A pre_install hook exiting 5 fails the host before win_updates runs; its output is the
    host's error and the hooks go to the outcome; a hook with an environment (a secret) keeps
    its output out of every result.

    Seen failing with the judging task's ``selectattr('must_succeed')`` dropped (the optional
    hook failed the host first) and with the hidden-output condition removed (the token shown)."""
    items = [
        shell_item({"name": "optional", "command": "exit 1", "must_succeed": False}, 1, "not fatal"),
        shell_item(
            {"name": "token", "command": "Get-Token", "environment": {"LB_TOKEN": "s3cr3t"}}, 0, "token s3cr3t ok"
        ),
        shell_item({"name": "drain", "command": "Stop-WebAppPool app"}, 5, "draining", "pool app is locked"),
    ]
    events, rc = _replay(tmp_path, "pre_install", items)
    assert rc != 0
    outcome = _outcome(events)
    assert outcome.status == "failed"
    assert outcome.installed == []
    assert outcome.failed == {ENTRY["uid"]: "win_updates did not run"}
    assert outcome.error is not None
    assert "pre_install hook drain failed (exit 5): draining" in outcome.error
    assert "pool app is locked" in outcome.error
    assert "nothing installed" in outcome.error
    assert [(h["name"], h["rc"], h["ok"], h["must_succeed"]) for h in outcome.hooks] == [
        ("optional", 1, False, False),
        ("token", 0, True, True),
        ("drain", 5, False, True),
    ]
    assert "s3cr3t" not in str(outcome.hooks) + str(outcome.error)


def test_hooks_that_pass_or_may_fail_do_not_fail_the_host(tmp_path: Path) -> None:
    items = [
        shell_item({"command": "Start-WebAppPool app"}, 0, "started"),
        shell_item({"command": "exit 2", "must_succeed": False}, 2, ""),
    ]
    events, rc = _replay(tmp_path, "post_install", items)
    assert rc == 0
    assert not [e for e in events if e.status == "failed"]
    facts = [
        e.result["ansible_facts"]["patch_apply_windows_hook_results"] for e in events if "ansible_facts" in e.result
    ]
    assert [(h["phase"], h["name"], h["ok"]) for h in facts[-1]] == [
        ("post_install", "post_install[0]", True),
        ("post_install", "post_install[1]", False),
    ]
