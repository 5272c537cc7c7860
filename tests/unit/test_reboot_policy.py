"""The reboot policy: whether a host reboots (by role, or patch_reboot), and whether its window lets it now."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from patchctl.rules.maintenance import Window, parse_windows
from patchctl.rules.reboot_policy import (
    ACTION_NONE,
    ACTION_PENDING,
    ACTION_REBOOT,
    REBOOT_ALWAYS,
    REBOOT_IF_REQUIRED,
    REBOOT_NEVER,
    reboot_decision,
    reboot_mode,
)


def window(start: str, duration: str) -> Window:
    return parse_windows([{"name": "w", "start": start, "duration": duration}], "test.yml")["w"]


def utc(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def test_reboot_mode_by_role_and_override() -> None:
    assert reboot_mode("server") == REBOOT_IF_REQUIRED
    assert reboot_mode("client") == REBOOT_NEVER
    assert reboot_mode(None) == REBOOT_NEVER
    assert reboot_mode("client", "always") == REBOOT_ALWAYS
    assert reboot_mode("server", "never") == REBOOT_NEVER
    assert reboot_mode("server", "") == REBOOT_IF_REQUIRED
    with pytest.raises(ValueError, match="patch_reboot must be one of"):
        reboot_mode("server", "sometimes")


def test_reboot_decision() -> None:
    w = window("0 1 * * *", "4h")
    inside, outside, late = utc(2025, 6, 1, 2), utc(2025, 6, 1, 12), utc(2025, 6, 1, 4, 50)
    assert reboot_decision(REBOOT_IF_REQUIRED, True, w, inside).action == ACTION_REBOOT
    d = reboot_decision(REBOOT_IF_REQUIRED, True, w, outside)
    assert d.action == ACTION_PENDING
    assert d.reason == "window w is closed: next opens 2025-06-02T01:00+00:00"
    d = reboot_decision(REBOOT_IF_REQUIRED, True, w, late)
    assert (d.action, d.reason) == (ACTION_PENDING, "window w has 10m left, less than min_left 30m")
    assert reboot_decision(REBOOT_IF_REQUIRED, False, w, inside).action == ACTION_NONE
    assert reboot_decision(REBOOT_NEVER, True, w, inside).action == ACTION_PENDING
    assert reboot_decision(REBOOT_ALWAYS, False, w, inside, changed=True).action == ACTION_REBOOT
    assert reboot_decision(REBOOT_ALWAYS, False, w, inside, changed=False).action == ACTION_NONE
    d = reboot_decision(REBOOT_IF_REQUIRED, True, None, inside, window_name="lab-nightly")
    assert (d.action, d.reason) == (ACTION_PENDING, "maintenance window 'lab-nightly' is not defined in the policy")
    assert reboot_decision(REBOOT_IF_REQUIRED, True, None, inside).action == ACTION_PENDING
