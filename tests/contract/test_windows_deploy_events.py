"""The deploy flow's event routing for Windows hosts: recorded win_updates / win_chocolatey result
shapes, registered by the patch_apply_windows role and reported in its ``patch_apply_windows_result``
fact (templated by Ansible from the role's task file), delivered as runner events in the order
Ansible emits them, end as one ApplyOutcome. The controller reads the fact, never task names."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from patchctl.ansible.runner import HostEvent
from patchctl.deploy import _BatchHandler
from patchctl.rules.model import HOST_FAILED, HOST_OK, HOST_UNREACHABLE, ApplyOutcome
from tests.contract import shapes

DATA = Path(__file__).resolve().parents[1] / "data" / "windows"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))
    return data


def updates_result() -> dict[str, Any]:
    return copy.deepcopy(fixture("win_updates_installed_failed.json")["result"])


def approved_for(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "uid": f"windows:{uid}",
            "source": "windows",
            "name": info.get("title", uid),
            "version": "1",
            "update_id": uid,
            "kbs": info.get("kb", []),
        }
        for uid, info in result["updates"].items()
    ]


def report_event(host: str, installed: dict[str, Any] | None, choco: list[dict[str, Any]] | None) -> HostEvent:
    """The role's "Report what was installed" task: its fact from the registered results."""
    registered: dict[str, Any] = {"patch_apply_windows_plan_only": False}
    if installed is not None:
        registered["__patch_apply_windows_installed"] = installed
    if choco is not None:
        registered["__patch_apply_windows_choco"] = shapes.loop_result(choco)
    task = "Report what was installed"
    res = shapes.set_fact_result("patch_apply_windows/tasks/main.yml", task, registered)
    return HostEvent(host, "ok", task, "ansible.builtin.set_fact", res)


def run(handler: _BatchHandler, events: list[HostEvent]) -> None:
    for event in events:
        handler(event)
    handler.finish()


def test_windows_host_outcome_comes_from_the_install_result_and_items() -> None:
    result = updates_result()
    approved = approved_for(result)
    items = fixture("win_chocolatey_items.json")["results"]
    approved += [
        {
            "uid": f"chocolatey:{it['item']['key']}:{it['item']['value']}",
            "source": "chocolatey",
            "name": it["item"]["key"],
            "version": it["item"]["value"],
        }
        for it in items
        if isinstance(it.get("item"), dict) and "key" in it["item"]
    ]
    recorded: list[ApplyOutcome] = []
    handler = _BatchHandler({"ws1": approved}, lambda o, _present: recorded.append(o))
    assert handler.windows_hosts == {"ws1"}
    search = copy.deepcopy(result)
    events = [
        HostEvent("ws1", "ok", "Search with the install's filters", "ansible.windows.win_updates", search),
        HostEvent("ws1", "ok", "Install the approved Windows updates", "ansible.windows.win_updates", result),
        *[
            HostEvent(
                "ws1",
                "ok",
                "Install the approved application versions",
                "chocolatey.chocolatey.win_chocolatey",
                it,
                item=True,
            )
            for it in items
        ],
        report_event("ws1", result, items),
        HostEvent(
            "ws1",
            "failed",
            "Fail the host unless every approved update and application was installed",
            "ansible.builtin.fail",
            {"msg": "not everything approved was installed"},
        ),
    ]
    run(handler, events)
    assert len(recorded) == 1
    outcome = recorded[0]
    assert outcome.host == "ws1"
    assert outcome.status == HOST_FAILED
    installed_ids = {u for u, info in result["updates"].items() if info.get("installed")}
    assert {f"windows:{u}" for u in installed_ids} <= set(outcome.installed)
    failed_ids = {u for u, info in result["updates"].items() if not info.get("installed")}
    assert {f"windows:{u}" for u in failed_ids} <= set(outcome.failed)
    assert outcome.reboot_required is bool(result.get("reboot_required"))


def test_windows_host_all_installed_is_ok_and_recorded_once() -> None:
    result = updates_result()
    for info in result["updates"].values():
        info["installed"] = True
        info.pop("failure_hresult_code", None)
    result.update(failed=False, failed_update_count=0)
    result.pop("msg", None)
    approved = approved_for(result)
    recorded: list[ApplyOutcome] = []
    handler = _BatchHandler(
        {"ws1": approved, "web1": [{"uid": "apt:x:1", "source": "apt"}]}, lambda o, _p: recorded.append(o)
    )
    assert handler.windows_hosts == {"ws1"}
    run(
        handler,
        [
            HostEvent("ws1", "ok", "Install the approved Windows updates", "ansible.windows.win_updates", result),
            report_event("ws1", result, None),
        ],
    )
    assert [(o.host, o.status, sorted(o.installed), o.failed) for o in recorded] == [
        ("ws1", HOST_OK, sorted(e["uid"] for e in approved), {})
    ]


def test_windows_host_unreachable_and_refused_plans() -> None:
    recorded: list[ApplyOutcome] = []
    approved = [{"uid": "windows:abc", "source": "windows", "name": "CU", "version": "1", "update_id": "abc"}]
    handler = _BatchHandler({"ws1": approved, "ws2": approved}, lambda o, _p: recorded.append(o))
    run(
        handler,
        [
            HostEvent("ws1", "unreachable", "Gathering", "", {"msg": "psrp: connection refused"}),
            HostEvent(
                "ws2",
                "failed",
                "Refuse Windows entries without an update id or title",
                "ansible.builtin.assert",
                {"msg": "entry without update id"},
            ),
        ],
    )
    by_host = {o.host: o for o in recorded}
    assert by_host["ws1"].status == HOST_UNREACHABLE and "connection refused" in (by_host["ws1"].error or "")
    assert by_host["ws2"].status == HOST_FAILED
    assert by_host["ws2"].failed == {"windows:abc": "win_updates did not run"}


def test_windows_outcome_comes_from_the_result_fact_whatever_the_tasks_are_named() -> None:
    """The role's tasks may be renamed: the outcome comes from ``patch_apply_windows_result``.
    Breaking it: matching the win_updates result by the task name "Install the approved Windows
    updates" again (as before) finds no result here, and every update is "win_updates did not run"."""
    result = updates_result()
    approved = approved_for(result)
    recorded: list[ApplyOutcome] = []
    handler = _BatchHandler({"ws1": approved}, lambda o, _p: recorded.append(o))
    run(
        handler,
        [
            HostEvent("ws1", "ok", "Install Windows updates (renamed)", "ansible.windows.win_updates", result),
            report_event("ws1", result, None),
        ],
    )
    assert len(recorded) == 1
    installed_ids = {u for u, info in result["updates"].items() if info.get("installed")}
    assert {f"windows:{u}" for u in installed_ids} == set(recorded[0].installed)
    assert "win_updates did not run" not in recorded[0].failed.values()


def test_the_result_fact_holds_the_registered_results() -> None:
    """The role's report task puts the registered install result and the Chocolatey items in the
    fact as they are, and null when win_updates did not run. Breaking it: a typo in the registered
    name in roles/patch_apply_windows/tasks/main.yml leaves ``win_updates`` null here."""
    result = updates_result()
    items = fixture("win_chocolatey_items.json")["results"]
    fact = report_event("ws1", result, items).result["ansible_facts"]["patch_apply_windows_result"]
    assert fact == {"win_updates": result, "chocolatey": items}
    empty = report_event("ws1", None, None).result["ansible_facts"]["patch_apply_windows_result"]
    assert empty == {"win_updates": None, "chocolatey": []}


SEARCH_ERROR = (
    "Searching for updates: Exception from HRESULT: 0x80240032 - "
    "The search criteria string was invalid (WU_E_INVALID_CRITERIA 0x80240032)"
)
CHECK_TASK = "Fail the host unless every approved update and application was installed"


def search_failed_result() -> dict[str, Any]:
    """win_updates' final result when its search fails (the action plugin's run(): nothing
    selected, the HRESULT in msg), before any failed_when."""
    result = copy.deepcopy(fixture("win_updates_search_failed.json")["result"])
    assert result["msg"] == SEARCH_ERROR
    return result


def test_install_failing_before_selecting_keeps_its_message() -> None:
    """The install fails at its search (0x80240032): under the role's ``failed_when: false`` the
    event and the registered result carry ``failed: false`` + ``failed_when_result``, and the
    check task fails with its own message. Every approved update says win_updates failed (not
    "not offered"), the host's error holds the search error and the check task's message.
    Breaking it: reading only ``failed`` (as before) made every update "not offered by Windows
    Update on this host" and left the error empty; using the check task's message only for an
    otherwise ok host (as before) dropped it."""
    approved = approved_for(updates_result())
    installed = shapes.under_failed_when(search_failed_result())
    assert installed["failed"] is False and installed["failed_when_result"] is False
    recorded: list[ApplyOutcome] = []
    handler = _BatchHandler({"ws1": approved}, lambda o, _p: recorded.append(o))
    check_msg = f"not installed: {', '.join(e['update_id'] for e in approved)} (win_updates: {SEARCH_ERROR})"
    run(
        handler,
        [
            HostEvent(
                "ws1",
                "ok",
                "Search with the install's filters",
                "ansible.windows.win_updates",
                copy.deepcopy(fixture("win_updates_installed_failed.json")["result"]),
            ),
            HostEvent("ws1", "ok", "Install the approved Windows updates", "ansible.windows.win_updates", installed),
            report_event("ws1", installed, None),
            HostEvent("ws1", "failed", CHECK_TASK, "ansible.builtin.assert", {"msg": check_msg}),
        ],
    )
    assert len(recorded) == 1
    outcome = recorded[0]
    assert outcome.status == HOST_FAILED
    assert outcome.installed == []
    assert outcome.failed == {e["uid"]: f"win_updates failed: {SEARCH_ERROR}" for e in approved}
    assert outcome.error == f"{SEARCH_ERROR}; {CHECK_TASK}: {check_msg}"


def test_failing_pre_install_search_is_the_hosts_error() -> None:
    """The pre-install search ("Search with the install's filters", no failed_when) fails: the
    host stops there, no result fact is set. Each update "did not run", and the host's error is
    the search's message. Breaking it: keeping the failed task's message only for an otherwise ok
    host (as before) left the error empty."""
    approved = approved_for(updates_result())
    failed_search = copy.deepcopy(search_failed_result())
    recorded: list[ApplyOutcome] = []
    handler = _BatchHandler({"ws1": approved}, lambda o, _p: recorded.append(o))
    search_task = "Search with the install's filters"
    run(handler, [HostEvent("ws1", "failed", search_task, "ansible.windows.win_updates", failed_search)])
    assert len(recorded) == 1
    outcome = recorded[0]
    assert outcome.status == HOST_FAILED
    assert outcome.failed == {e["uid"]: "win_updates did not run" for e in approved}
    assert outcome.error == f"{search_task}: {SEARCH_ERROR}"
