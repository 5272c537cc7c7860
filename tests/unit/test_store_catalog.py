"""The catalog and its decisions, the audit trail and verify's results, on SQLite and PostgreSQL
(store modules catalog, audit and verify, through the RolloutStore and RebootStore the flows use)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from patchctl.rules.policy import Wave
from patchctl.store import Store
from patchctl.store.reboots import RebootStore, VerifyRow
from patchctl.store.rollouts import Decision, RolloutStore
from tests.unit.test_store import CURL, OPENSSL, T0, T1, T2, ok_scan


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store.open(db_url) as s:
        run = s.start_run("scan", "inv", None, 1, now=T0)
        s.record_host_scan(run, ok_scan("web01", T0, [OPENSSL, CURL]))
        s.finish_run(run, "ok", now=T0)
        yield s


def test_catalog_gives_each_update_its_latest_decision_by_an_operator_and_by_the_policy(store: Store) -> None:
    """An operator's decision and the policy's are kept apart, each the latest of its kind.

    Broken on purpose: taking the latest decision per update only (``group_by(update_id)``) loses
    the older kind; keying them by ``automatic`` the wrong way round swaps them.
    """
    rs = RolloutStore(store)
    openssl, curl = (next(e for e in rs.catalog() if e.name == name) for name in ("openssl", "curl"))
    rs.record_decisions([(openssl, Decision("approved", "policy", "security", T0), True)])
    rs.record_decisions([(openssl, Decision("declined", "ops", "breaks the app", T1), False)])
    rs.record_decisions([(openssl, Decision("pending", "policy", "too young", T2), True)])
    rs.record_decisions([])  # nothing to write: no transaction

    entries = {e.name: e for e in rs.catalog()}
    assert entries["openssl"].manual == Decision("declined", "ops", "breaks the app", T1)
    assert entries["openssl"].automatic == Decision("pending", "policy", "too young", T2)
    assert (entries["curl"].manual, entries["curl"].automatic) == (None, None)
    assert entries["curl"].id == curl.id
    assert {e.name: e.hosts_missing for e in entries.values()} == {"openssl": 1, "curl": 1}


def test_audit_log_puts_an_instants_decisions_first_filters_by_rollout_and_keeps_the_last(store: Store) -> None:
    """The trail: at one instant decisions come before events (a rollout freezes what was just
    approved), whatever the insertion order; ``rollout_id`` keeps that rollout's events; ``limit``
    the last ones.

    Broken on purpose: ordering without ``source`` puts T1's rollout event before T1's decision;
    ``out[:limit]`` keeps the first events instead of the last.
    """
    rs = RolloutStore(store)
    openssl, curl = (next(e for e in rs.catalog() if e.name == name) for name in ("openssl", "curl"))
    rs.record_decisions([(openssl, Decision("approved", "ops", "CVE", T0), False)])
    rid = rs.create_rollout(T1, "ops", "policy.yml", [Wave("pilot", "web01", bake_days=0)], [openssl])
    rs.record_decisions([(curl, Decision("declined", "ops", "later", T1), False)])  # after, at the same instant
    rs.audit(T2, "ops", "note", "rollout", rid, "by hand")

    trail = [(a.at, a.action, a.subject, a.rollout_id) for a in rs.audit_log()]
    assert trail == [
        (T0, "approved", OPENSSL.uid, None),
        (T1, "declined", CURL.uid, None),
        (T1, "rollout create", f"rollout {rid}", rid),
        (T2, "note", "rollout", rid),
    ]
    assert [a.action for a in rs.audit_log(rollout_id=rid)] == ["rollout create", "note"]
    assert [a.action for a in rs.audit_log(limit=2)] == ["rollout create", "note"]
    (last,) = rs.audit_log(rollout_id=rid, limit=1)
    assert (last.actor, last.detail) == ("ops", "by hand")


def test_host_states_are_each_hosts_latest_verify_result_with_what_it_lacks(store: Store) -> None:
    """``v_host_state`` gives each host's latest result with its missing and failed updates, as
    written (JSON columns on PostgreSQL, text on SQLite).

    Broken on purpose: reading ``failed`` as ``{}`` or ``missing`` as ``()`` loses them; reading
    ``verify_results`` instead of the view gives web01 twice.
    """
    run = store.start_run("scan", "inv", None, 1, now=T1)
    rs = RebootStore(store)
    rs.record_verify([])
    rs.record_verify([VerifyRow("web01", "compliant", "ok", T0)])
    rs.record_verify(
        [
            VerifyRow("web01", "failed", "1 failed", T1, missing=(OPENSSL.uid,), failed={CURL.uid: "dpkg"}, run_id=run),
            VerifyRow("db01", "reboot_pending", None, T1),
        ]
    )
    assert rs.host_states() == [
        VerifyRow("db01", "reboot_pending", None, T1),
        VerifyRow("web01", "failed", "1 failed", T1, missing=(OPENSSL.uid,), failed={CURL.uid: "dpkg"}, run_id=run),
    ]
