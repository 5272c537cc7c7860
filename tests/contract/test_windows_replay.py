"""Contract: recorded win_updates output streams (tests/data/windows/recordings/, written by
patchctl in the upstream format, see tests/contract/replay.py) replayed through the pinned
ansible.windows action plugin's real code, with only the connection and the module execution
replaced, then through patchctl's deploy path (the event shaped by the role's
``failed_when: false`` as Ansible's task executor shapes it) and scan normalization."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from patchctl.ansible.runner import HostEvent
from patchctl.deploy import _BatchHandler
from patchctl.rules.model import HOST_FAILED, HOST_OK, ApplyOutcome
from patchctl.rules.normalize import ScanResultError
from patchctl.rules.normalize_windows import normalize_win_updates
from tests.contract import replay, shapes
from tests.contract.test_windows_deploy_events import fixture, report_event

CU = "3c1b8a52-6f0e-4d21-9a47-1e5f2b7c9d01"
DEFENDER = "8f2d4e61-0b3a-4c5d-9e7f-6a1b2c3d4e5f"
DOTNET = "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"
FEATURE = "7d8e9f0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a"
HIDDEN = "2a3b4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c6d"
BROWSE_ONLY = "9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
INSTALL_TASK = "Install the approved Windows updates"
CHECK_TASK = "Fail the host unless every approved update and application was installed"


def install_args() -> dict[str, Any]:
    """The role's install task's arguments (roles/patch_apply_windows/tasks/windows_updates.yml),
    with the values a plan gives them."""
    return {
        "state": "installed",
        "category_names": ["*"],
        "accept_list": ["^CU$", "^Defender$"],
        "reject_list": [],
        "server_selection": "default",
        "reboot": False,
    }


def entry(update_id: str, name: str) -> dict[str, Any]:
    return {"uid": f"windows:{update_id}", "source": "windows", "name": name, "version": "1", "update_id": update_id}


def deploy(approved: list[dict[str, Any]], installed: dict[str, Any], check_fails: bool) -> ApplyOutcome:
    """The host's outcome from the install event, the role's result fact and its check."""
    recorded: list[ApplyOutcome] = []
    handler = _BatchHandler({"ws1": approved}, lambda o, _p: recorded.append(o))
    events = [
        HostEvent("ws1", "ok", INSTALL_TASK, "ansible.windows.win_updates", installed),
        report_event("ws1", installed, None),
    ]
    if check_fails:
        events.append(HostEvent("ws1", "failed", CHECK_TASK, "ansible.builtin.assert", {"msg": "not installed"}))
    for event in events:
        handler(event)
    handler.finish()
    assert len(recorded) == 1
    return recorded[0]


def test_every_recording_names_what_it_models() -> None:
    names = sorted(p.name for p in replay.RECORDINGS.glob("*.txt"))
    assert names
    for name in names:
        assert replay.load(name).models, name


def test_replayed_search_error() -> None:
    """A search error (0x80240032): the real plugin's result is the fixture's
    (tests/data/windows/win_updates_search_failed.json); the scan refuses it naming the HRESULT;
    the deploy says per update that win_updates failed, with the message. Breaking it: the deploy
    reading only ``failed`` (as it once did) made every update "not offered by Windows
    Update on this host" under the role's failed_when: false."""
    run = replay.run(replay.load("search_error.txt"), install_args())
    assert run.operations == ["start", "poll", "cancel"]
    result = {k: v for k, v in run.result.items() if k not in ("exception", "invocation")}
    assert result == fixture("win_updates_search_failed.json")["result"]
    with pytest.raises(ScanResultError, match="WU_E_INVALID_CRITERIA 0x80240032"):
        normalize_win_updates(copy.deepcopy(result), host="ws1")
    approved = [entry(CU, "CU"), entry(DEFENDER, "Defender")]
    outcome = deploy(approved, shapes.under_failed_when(run.result), check_fails=True)
    assert outcome.status == HOST_FAILED
    assert outcome.failed == {e["uid"]: f"win_updates failed: {result['msg']}" for e in approved}
    assert outcome.error is not None and outcome.error.startswith(result["msg"])
    assert outcome.reboot_required is True


def test_replayed_failed_install() -> None:
    """One update installs, one fails with 0x80070643, one is filtered: each says so, and the
    reboot the installed one needs is kept. Breaking it: dropping the plugin's ``failure_msg``
    from the reason (leaving "HRESULT 2147944003") fails here."""
    run = replay.run(replay.load("failed_install.txt"), install_args())
    assert run.result["failed"] is True
    approved = [entry(CU, "CU"), entry(DEFENDER, "Defender"), entry(DOTNET, ".NET")]
    outcome = deploy(approved, shapes.under_failed_when(run.result), check_fails=True)
    assert outcome.status == HOST_FAILED
    assert outcome.installed == [f"windows:{CU}"]
    assert outcome.failed == {
        f"windows:{DEFENDER}": "install failed: Unknown WUA HRESULT 2147944003 (UNKNOWN 0x80070643)",
        f"windows:{DOTNET}": "filtered by win_updates (accept_list)",
    }
    assert outcome.reboot_required is True


def test_replayed_failing_poll_script() -> None:
    """The poll script fails (rc 1) before any progress: the host's error is its message and no
    update is called "not offered". Breaking it: as for the search error."""
    run = replay.run(replay.load("fail_poll_script.txt"), install_args())
    assert run.operations == ["start", "poll", "cancel"]
    assert run.result["rc"] == 1
    approved = [entry(CU, "CU")]
    outcome = deploy(approved, shapes.under_failed_when(run.result), check_fails=True)
    assert outcome.failed == {f"windows:{CU}": f"win_updates failed: {run.result['msg']}"}
    assert outcome.error is not None and run.result["msg"] in outcome.error


def test_replayed_dropped_poll() -> None:
    """A dropped poll is retried by the plugin; the install then succeeds and the host is ok."""
    run = replay.run(replay.load("dropped_poll.txt"), install_args())
    assert run.operations == ["start", "poll", "poll", "poll", "cancel"]
    outcome = deploy([entry(CU, "CU")], shapes.under_failed_when(run.result), check_fails=False)
    assert (outcome.status, outcome.installed, outcome.failed, outcome.error) == (
        HOST_OK,
        [f"windows:{CU}"],
        {},
        None,
    )
    assert outcome.reboot_required is False


def test_install_args_are_the_roles() -> None:
    """The replayed task's arguments are the role's install task's (and the plugin accepts them)."""
    import yaml

    from tests.contract import collection

    tasks = yaml.safe_load((shapes.ROLES / "patch_apply_windows" / "tasks" / "windows_updates.yml").read_text())
    install = next(t for t in tasks if t["name"] == INSTALL_TASK)["ansible.windows.win_updates"]
    assert set(install) - {"log_path"} == set(install_args())
    assert set(install) <= set(collection.win_updates_action().ActionModule._VALID_ARGS)


def test_replayed_scan_hidden_browse_only_feature() -> None:
    """A scan's search through the real plugin and the scan normalization: the feature update in
    ``Upgrades`` (no KB) is major, the hidden update is filtered with its reason, the browse-only
    preview is an ordinary offered update. Breaking it: dropping ``upgrades`` from
    CATEGORY_CLASSIFICATION made the feature update "other" here."""
    args = {"state": "searched", "category_names": ["*"], "server_selection": "default", "skip_optional": False}
    run = replay.run(replay.load("search_hidden_browse_only_feature.txt"), args)
    assert run.operations == ["start", "poll", "cancel"]
    updates, filtered, reboot = normalize_win_updates(run.result, host="ws1")
    by_id = {u.update_id: u for u in updates}
    assert set(by_id) == {CU, FEATURE, BROWSE_ONLY}
    assert (by_id[FEATURE].classification, by_id[FEATURE].major, by_id[FEATURE].kbs) == ("feature", True, ())
    assert (by_id[BROWSE_ONLY].classification, by_id[BROWSE_ONLY].major) == ("bugfix", False)
    assert by_id[CU].classification == "security" and by_id[CU].kbs == ("KB5034129",)
    assert [(f.update_id, f.reasons) for f in filtered] == [(HIDDEN, ("hidden",))]
    assert reboot is False


def test_replayed_install_leaving_a_reboot_required() -> None:
    """Both updates install with ``reboot: false``: the host is ok and its reboot is required
    (patchctl's reboot step takes it). Breaking it: ignoring the result's reboot_required (taking
    it as false) failed here."""
    run = replay.run(replay.load("install_reboot_required.txt"), install_args())
    approved = [entry(CU, "CU"), entry(DEFENDER, "Defender")]
    outcome = deploy(approved, shapes.under_failed_when(run.result), check_fails=False)
    assert (outcome.status, sorted(outcome.installed), outcome.failed) == (
        HOST_OK,
        sorted(e["uid"] for e in approved),
        {},
    )
    assert outcome.reboot_required is True


def test_replayed_reboot_pending_before_the_install() -> None:
    """The module stops before searching because a reboot is required: each update says why, the
    host's error carries it and its reboot is required. Breaking it: as for the search error, each
    update was "not offered by Windows Update on this host"."""
    run = replay.run(replay.load("reboot_pending_first.txt"), install_args())
    msg = "A reboot is required before more updates can be installed"
    assert run.result["msg"] == msg and run.result["reboot_required"] is True
    outcome = deploy([entry(CU, "CU")], shapes.under_failed_when(run.result), check_fails=True)
    assert outcome.failed == {f"windows:{CU}": f"win_updates failed: {msg}"}
    assert outcome.error is not None and outcome.error.startswith(msg)
    assert outcome.reboot_required is True


def test_replayed_install_without_a_reboot() -> None:
    """Both updates install and neither asks for a reboot: the host is ok with no reboot
    required. Breaking it: taking every install as leaving a reboot required (``reboot_required``
    set True in ``apply_outcome``) failed here."""
    run = replay.run(replay.load("install_no_reboot.txt"), install_args())
    assert run.operations == ["start", "poll", "poll", "poll", "poll", "poll", "cancel"]
    approved = [entry(DEFENDER, "Defender"), entry(DOTNET, ".NET")]
    outcome = deploy(approved, shapes.under_failed_when(run.result), check_fails=False)
    assert (outcome.status, sorted(outcome.installed), outcome.failed, outcome.error) == (
        HOST_OK,
        sorted(e["uid"] for e in approved),
        {},
        None,
    )
    assert outcome.reboot_required is False


def test_replayed_full_run_with_the_plugins_own_reboot() -> None:
    """With ``reboot: true`` the plugin installs, reboots the host and searches again: the host is
    ok, both updates installed, no reboot left required. (patchctl's role runs ``reboot: false``;
    this is what patchctl records from a run that rebooted by itself.) Breaking it: reading
    ``rebooted`` as a reboot still required (in ``apply_outcome``) failed here."""
    run = replay.run(replay.load("full_run.txt"), {**install_args(), "reboot": True})
    assert run.operations == [
        "start",
        "poll",
        "poll",
        "poll",
        "poll",
        "poll",
        "cancel",
        "reboot",
        "start",
        "poll",
        "cancel",
    ]
    assert (run.result["rebooted"], run.result["reboot_required"]) == (True, False)
    approved = [entry(CU, "CU"), entry(DEFENDER, "Defender")]
    outcome = deploy(approved, shapes.under_failed_when(run.result), check_fails=False)
    assert (outcome.status, sorted(outcome.installed), outcome.failed, outcome.error) == (
        HOST_OK,
        sorted(e["uid"] for e in approved),
        {},
        None,
    )
    assert outcome.reboot_required is False


def test_replayed_reboot_failure() -> None:
    """The updates installed but the plugin's reboot timed out: patchctl records both updates
    installed (the host said so), the host failed with the plugin's message, and its reboot still
    required. Breaking it: dropping the result's msg when nothing failed per update (the branch
    of ``apply_outcome`` that keeps ``failure`` only when updates were unseen) left the host ok
    here (``if failure and unseen``)."""
    run = replay.run(replay.load("reboot_failure.txt"), {**install_args(), "reboot": True})
    assert run.operations == ["start", "poll", "poll", "poll", "cancel", "reboot"]
    msg = "Failed to reboot host: Timed out waiting for last boot time check (timeout=1200)"
    assert run.result["msg"] == msg
    approved = [entry(CU, "CU"), entry(DEFENDER, "Defender")]
    outcome = deploy(approved, shapes.under_failed_when(run.result), check_fails=False)
    assert (outcome.status, sorted(outcome.installed), outcome.failed) == (
        HOST_FAILED,
        sorted(e["uid"] for e in approved),
        {},
    )
    assert outcome.error == msg
    assert outcome.reboot_required is True
