"""The deploy flow's event routing for Windows hosts: recorded win_updates / win_chocolatey result
shapes, delivered as runner events in the order Ansible emits them, end as one ApplyOutcome."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from patchctl.ansible.runner import HostEvent
from patchctl.deploy import WIN_INSTALL_TASK, _BatchHandler
from patchctl.rules.model import HOST_FAILED, HOST_OK, HOST_UNREACHABLE, ApplyOutcome

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
        HostEvent("ws1", "ok", WIN_INSTALL_TASK, "ansible.windows.win_updates", result),
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
    run(handler, [HostEvent("ws1", "ok", WIN_INSTALL_TASK, "ansible.windows.win_updates", result)])
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
