"""The one compliance rule (patchctl.rules.compliance): its order of precedence, state by state."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from patchctl.rules.compliance import (
    BLOCKED,
    COMPLIANT,
    DELIVERED,
    DEPLOY_FAILED,
    FAILED,
    MISSING,
    NEVER_SCANNED,
    NOTHING_STARTED,
    REBOOT_PENDING,
    STALE,
    STATES,
    UNDELIVERED,
    UNKNOWN,
    UNREACHABLE,
    ComplianceFacts,
    compliance_state,
    delivery_state,
)

NOW = datetime(2025, 6, 1, 2, 0, tzinfo=UTC)
WEEK = timedelta(days=7)
CLEAN = ComplianceFacts(last_scan="ok", last_scan_at=NOW - timedelta(hours=1), approved_missing=0, reboot_pending=False)

# Each condition, and the state it leads to when it is the strongest one that holds.
CONDITIONS = {
    NEVER_SCANNED: {"last_scan": NEVER_SCANNED, "last_scan_at": None},
    UNREACHABLE: {"last_scan": "unreachable"},
    FAILED: {"deploy_failed": True},
    BLOCKED: {"deploy_blocked": "approved 1.1-1 is no longer offered; the repositories offer 1.2-1"},
    STALE: {"last_scan_at": NOW - WEEK - timedelta(seconds=1)},
    MISSING: {"approved_missing": 2},
    REBOOT_PENDING: {"reboot_pending": True},
}
PRECEDENCE = (NEVER_SCANNED, UNREACHABLE, FAILED, BLOCKED, STALE, MISSING, REBOOT_PENDING, COMPLIANT)


def test_every_combination_of_conditions_gives_the_strongest_state() -> None:
    """Breaking it: moving the stale check above unreachable (verify's old order) turns an
    unreachable host with an old scan into stale; checking reboot before missing turns a host
    missing updates and waiting for a reboot into reboot_pending."""
    assert set(PRECEDENCE) == set(STATES)
    names = list(CONDITIONS)
    for n in range(len(names) + 1):
        for combo in itertools.combinations(names, n):
            facts = CLEAN
            for name in reversed(combo):  # the strongest last: never_scanned's fields win
                facts = replace(facts, **CONDITIONS[name])  # type: ignore[arg-type]  # fields by name
            expected = next((s for s in PRECEDENCE if s in combo), COMPLIANT)
            assert compliance_state(facts, NOW, WEEK) == expected, combo


def test_a_failed_scan_is_failed_and_the_stale_edge() -> None:
    """Breaking it: ``>=`` instead of ``>`` for stale makes a scan exactly stale_days old stale."""
    assert compliance_state(replace(CLEAN, last_scan="failed"), NOW, WEEK) == FAILED
    # a status this version does not know counts as failed, never as fine
    assert compliance_state(replace(CLEAN, last_scan="weird"), NOW, WEEK) == FAILED
    assert compliance_state(replace(CLEAN, last_scan_at=NOW - WEEK), NOW, WEEK) == COMPLIANT
    assert compliance_state(replace(CLEAN, last_scan_at=None), NOW, WEEK) == NEVER_SCANNED


def test_one_approved_missing_update_is_missing() -> None:
    """One approved update missing is enough. Found by mutation testing: ``approved_missing > 1``
    survived (every case here missed two or more or none)."""
    assert compliance_state(replace(CLEAN, approved_missing=1), NOW, WEEK) == MISSING
    assert compliance_state(replace(CLEAN, approved_missing=0), NOW, WEEK) == COMPLIANT


def test_delivery_state_answers_each_case() -> None:
    """verify's delivery answer, case by case. Found by mutation testing: every mutant of
    ``delivery_state`` had no unit test (each condition negated, ``undelivered`` ignored)."""
    assert delivery_state(True, 0, 0, 0) == NOTHING_STARTED
    assert delivery_state(False, 0, 0, 0) == NOTHING_STARTED
    assert delivery_state(False, 2, 1, 0) == UNKNOWN
    assert delivery_state(True, 2, 1, 1) == DEPLOY_FAILED
    assert delivery_state(True, 2, 1, 0) == UNDELIVERED
    assert delivery_state(True, 2, 0, 0) == DELIVERED
