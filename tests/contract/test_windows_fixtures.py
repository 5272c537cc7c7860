"""Contract: the Windows fixtures (tests/data/windows/) have the shapes the real code gives.

The HRESULT texts are the pinned ansible.windows action plugin's own (its ``_get_hresult_error``
imported from ``.collections/``, run here), and the results the patch_apply_windows role
registers with ``failed_when: false`` are shaped as Ansible's task executor leaves them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.contract import collection, shapes

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "windows"
# the fixtures holding results registered by a task with failed_when: false (the deploy role's)
UNDER_FAILED_WHEN = ("win_updates_installed_failed.json", "win_chocolatey_items.json")


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def hresult_error() -> Callable[[int], str]:
    """The pinned collection's ``_get_hresult_error`` (ansible.windows plugins/action/win_updates.py)."""
    error: Callable[[int], str] = collection.win_updates_action()._get_hresult_error
    return error


def _update_infos(result: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in ("updates", "filtered_updates"):
        yield from (result.get(key) or {}).values()


def test_every_fixture_names_its_source() -> None:
    for path in sorted(DATA.glob("*.json")):
        assert json.loads(path.read_text(encoding="utf-8"))["_source"], path.name


def test_failure_messages_are_the_action_plugins(hresult_error: Callable[[int], str]) -> None:
    """Each failed update's failure_msg is what the action plugin makes of its HRESULT ("0x" and
    eight hex digits). Breaking it: the fixture's old "(UNKNOWN 80070643)" fails here."""
    checked = 0
    for path in sorted(DATA.glob("win_updates_*.json")):
        for info in _update_infos(fixture(path.name)["result"]):
            if "failure_hresult_code" in info:
                assert info["failure_msg"] == hresult_error(info["failure_hresult_code"]), path.name
                checked += 1
    assert checked > 0


def test_search_failure_is_the_action_plugins_shape(hresult_error: Callable[[int], str]) -> None:
    """The search failure's msg ends as the action plugin words an HRESULT, and it keeps the
    exit progress's reboot_required (true). Breaking it: the old fixture's "80240032" without 0x
    and its reboot_required false fail here."""
    result = fixture("win_updates_search_failed.json")["result"]
    assert result["msg"].endswith(" - " + hresult_error(0x80240032))
    assert result["failed"] is True and "failed_when_result" not in result  # the scan task: no failed_when
    assert result["reboot_required"] is True
    assert (result["updates"], result["filtered_updates"], result["found_update_count"]) == ({}, {}, 0)


@pytest.mark.parametrize("name", UNDER_FAILED_WHEN)
def test_deploy_results_are_shaped_by_failed_when_false(name: str) -> None:
    """The deploy role registers win_updates and win_chocolatey with failed_when: false: never
    failed: true, always failed_when_result. Breaking it: the old fixtures' failed: true fail here."""
    data = fixture(name)
    results = data["results"] if "results" in data else [data["result"]]
    for result in results:
        assert result == shapes.under_failed_when(result), name
