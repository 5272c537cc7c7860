"""Contract: the reboot flow reads the patch_reboot role's result fact, not its task names.

No Windows host runs here, so the Windows reboot is replayed: ansible-runner events in the order
and shape Ansible's task executor gives them (``runner_on_ok`` with the module's result,
``runner_on_unreachable`` with ``unreachable: true`` and the connection's message), the
``set_fact`` results templated by Ansible from the role's own task files, all through patchctl's
event translation (:class:`patchctl.ansible.runner.EventTranslator`) into
:func:`patchctl.reboot.run_reboots` and a real SQLite store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from patchctl.ansible.inventory import Inventory
from patchctl.ansible.runner import EventTranslator, HostEvent, PlaybookRunner, RunResult
from patchctl.reboot import HostPlan, run_reboots
from patchctl.rules.reboot_policy import ACTION_REBOOT
from patchctl.store import Store
from patchctl.store.reboots import REBOOT_FAILED, REBOOT_OK, REBOOT_UNREACHABLE, RebootStore
from tests.contract import shapes

NOW = datetime(2025, 6, 1, 2, 0, tzinfo=UTC)
# win_shell's result for the role's boot time command (ansible.windows 3.3.0 win_shell RETURN)
BOOT_TIME = "133931916054375000"


def win_shell_result(stdout: str) -> dict[str, Any]:
    return {
        "changed": False,
        "cmd": "(Get-CimInstance -ClassName Win32_OperatingSystem).LastBootUpTime.ToFileTimeUtc()",
        "rc": 0,
        "stdout": stdout + "\r\n",
        "stdout_lines": [stdout],
        "stderr": "",
        "stderr_lines": [],
        "start": "2025-06-01 02:00:01.000000",
        "end": "2025-06-01 02:00:01.500000",
        "delta": "0:00:00.500000",
    }


def set_fact_result(platform: str, task_name: str, registered: Mapping[str, Any]) -> dict[str, Any]:
    return shapes.set_fact_result(f"patch_reboot/tasks/{platform}.yml", task_name, registered)


def event(kind: str, host: str, task: str, action: str, res: dict[str, Any], n: int) -> dict[str, Any]:
    """One ansible-runner event (``event``, ``event_data``) as the runner's callback writes it."""
    return {
        "event": kind,
        "event_data": {"host": host, "task": task, "task_action": action, "task_uuid": f"task-{n}", "res": res},
    }


class ReplayRunner(PlaybookRunner):
    """Delivers recorded ansible-runner events through patchctl's own event translation."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        super().__init__()
        self.events = events

    def run(
        self,
        playbook: Path,
        inventory: str,
        limit: str | None = None,
        extravars: Mapping[str, Any] | None = None,
        on_event: Callable[[HostEvent], None] | None = None,
        timeout: int | None = None,
        forks: int | None = None,
        *,
        require_hosts: bool = True,
    ) -> RunResult:
        translate = EventTranslator(on_event)
        for raw in self.events:
            translate(raw)
        translate.flush()
        if translate.exception is not None:
            raise translate.exception
        return RunResult(status="failed", rc=4, hosts_seen=translate.hosts_seen)


def reboot(db_url: str, events: list[dict[str, Any]], host: str = "ws1") -> Any:
    inventory = Inventory.from_ansible_json("inv.yml", {"_meta": {"hostvars": {host: {"patch_role": "server"}}}})
    plan = HostPlan(host, "server", "always", "nightly", ACTION_REBOOT, "in its window")
    results = run_reboots(
        inventory_path="inv.yml",
        inventory=inventory,
        db_url=db_url,
        plans=[plan],
        waves=(),
        now=NOW,
        trigger="cron",
        runner=ReplayRunner(events),
    )
    with Store.open(db_url) as store:
        rows = RebootStore(store).reboots(host)
    return results[host], rows


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'patchctl.db'}"


def windows_until_the_boot_time_was_read() -> list[dict[str, Any]]:
    before = win_shell_result(BOOT_TIME)
    return [
        event("runner_on_ok", "ws1", "Set the platform", "ansible.builtin.set_fact",
              {"ansible_facts": {"__patch_reboot_platform": "windows"}, "changed": False}, 1),
        event("runner_on_ok", "ws1", "Read the boot time before the reboot", "ansible.windows.win_shell", before, 2),
        event("runner_on_ok", "ws1", "Report the boot time before the reboot", "ansible.builtin.set_fact",
              set_fact_result("windows", "Report the boot time before the reboot",
                              {"__patch_reboot_before": before}), 3),
    ]  # fmt: skip


def test_windows_host_that_drops_during_its_reboot_is_failed_with_its_boot_id(sqlite_url: str) -> None:
    """The bug this guards: a Windows host read its boot time, then dropped while rebooting. It was
    touched, so it is ``failed`` (not ``unreachable``, "never touched") and keeps its boot id.
    On the code before the fact (the boot id read from the task "Read the boot id before the
    reboot", a name the Windows task does not have) it was ``unreachable`` without a boot id.
    Breaking it: not taking ``boot_id_before`` from the ``started`` fact records it
    ``unreachable`` again, and this test fails."""
    events = [
        *windows_until_the_boot_time_was_read(),
        event("runner_on_unreachable", "ws1", "Reboot and wait until the host is back", "ansible.windows.win_reboot",
              {"unreachable": True, "changed": False,
               "msg": "psrp: Failed to connect to ws1:5986: [Errno 111] Connection refused"}, 4),
    ]  # fmt: skip
    outcome, rows = reboot(sqlite_url, events)
    assert (outcome.status, outcome.boot_id_before, outcome.boot_id_after) == (REBOOT_FAILED, BOOT_TIME, None)
    assert "Connection refused" in (outcome.error or "")
    assert [(r.status, r.boot_id_before) for r in rows] == [(REBOOT_FAILED, BOOT_TIME)]


def test_windows_host_unreachable_before_its_boot_time_was_read_is_unreachable(sqlite_url: str) -> None:
    """Never touched: unreachable on the first task that needs the host. Breaking it: counting
    any event of the host as touched records it ``failed``."""
    events = [
        *windows_until_the_boot_time_was_read()[:1],
        event("runner_on_unreachable", "ws1", "Read the boot time before the reboot", "ansible.windows.win_shell",
              {"unreachable": True, "changed": False, "msg": "psrp: Connection refused"}, 2),
    ]  # fmt: skip
    outcome, rows = reboot(sqlite_url, events)
    assert (outcome.status, outcome.boot_id_before) == (REBOOT_UNREACHABLE, None)
    assert [r.status for r in rows] == [REBOOT_UNREACHABLE]


def test_windows_host_back_with_a_new_boot_time_is_ok(sqlite_url: str) -> None:
    """The role's last fact (``status: done``) with both boot times ends the attempt ``ok``.
    Breaking it: finishing on the first ``patch_reboot_result`` (``status: started``) records
    the host ``failed`` ("the boot id did not change") before it even rebooted."""
    after_time = "133931917000000000"
    before, after = win_shell_result(BOOT_TIME), win_shell_result(after_time)
    done = {"rebooted": True, "elapsed": 74, "failed": False, "changed": True}
    events = [
        *windows_until_the_boot_time_was_read(),
        event("runner_on_ok", "ws1", "Reboot and wait until the host is back", "ansible.windows.win_reboot", done, 4),
        event("runner_on_ok", "ws1", "Read the boot time after the reboot", "ansible.windows.win_shell", after, 5),
        event("runner_on_ok", "ws1", "Report the reboot", "ansible.builtin.set_fact",
              set_fact_result("windows", "Report the reboot", {"__patch_reboot_before": before,
                                                               "__patch_reboot_after": after,
                                                               "__patch_reboot_done": done}), 6),
    ]  # fmt: skip
    outcome, rows = reboot(sqlite_url, events)
    assert (outcome.status, outcome.boot_id_before, outcome.boot_id_after, outcome.elapsed) == (
        REBOOT_OK,
        BOOT_TIME,
        after_time,
        74.0,
    )
    assert [(r.status, r.boot_id_before, r.boot_id_after) for r in rows] == [(REBOOT_OK, BOOT_TIME, after_time)]


@pytest.mark.parametrize("platform", ["linux", "windows"])
def test_both_platforms_report_the_boot_id_before_the_reboot(platform: str) -> None:
    """The Linux and Windows task files set the same fact the same way before rebooting.
    Breaking it: dropping the report task from one platform's file fails here."""
    word = "id" if platform == "linux" else "time"
    res = set_fact_result(platform, f"Report the boot {word} before the reboot",
                          {"__patch_reboot_before": win_shell_result(BOOT_TIME)})  # fmt: skip
    assert res["ansible_facts"] == {"patch_reboot_result": {"status": "started", "boot_id_before": BOOT_TIME}}
