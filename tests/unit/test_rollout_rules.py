"""Rollout rules: wave hosts, batches, the failure threshold, shown states and promotion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from patchctl.rules.policy import Concurrency, Wave
from patchctl.rules.waves import (
    BAKING,
    DEPLOYING,
    DONE,
    FINISHED,
    HALTED,
    PENDING,
    Promotion,
    WaveRecord,
    assign_hosts,
    batches,
    can_promote,
    next_due,
    over_fail_threshold,
    percent,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
PILOT = Wave("pilot", "pilot", bake_days=7, max_concurrency=Concurrency(1), max_fail_percent=0, min_success_percent=100)
FLEET = Wave("fleet", "all", bake_days=0, max_concurrency=Concurrency(50, True), max_fail_percent=10,
             min_success_percent=90)  # fmt: skip


def finished_pilot(**kw: object) -> WaveRecord:
    base: dict[str, Any] = {
        "position": 0,
        "wave": PILOT,
        "state": FINISHED,
        "hosts": ("srv-01",),
        "started_at": T0,
        "finished_at": T0,
        "results": {"srv-01": "ok"},
    }
    base.update(kw)
    return WaveRecord(**base)


def fleet(**kw: object) -> WaveRecord:
    base: dict[str, Any] = {"position": 1, "wave": FLEET}
    base.update(kw)
    return WaveRecord(**base)


def test_later_waves_exclude_earlier_hosts() -> None:
    hosts = assign_hosts([PILOT, FLEET], [["srv-01", "cli-01"], ["cli-01", "cli-02", "srv-01", "srv-02"]])
    assert hosts == [("cli-01", "srv-01"), ("cli-02", "srv-02")]


def test_recorded_hosts_are_kept() -> None:
    hosts = assign_hosts([PILOT, FLEET], [["srv-01", "cli-01"], ["cli-01", "srv-01", "new-01"]], {0: ("srv-01",)})
    assert hosts == [("srv-01",), ("cli-01", "new-01")]


def test_batches_by_count_and_percent() -> None:
    assert batches(["a", "b", "c"], PILOT) == [["a"], ["b"], ["c"]]
    assert batches(["a", "b", "c", "d", "e"], FLEET) == [["a", "b", "c"], ["d", "e"]]
    # a percentage is of the whole wave, also when only some hosts are left to do
    assert batches(["d", "e"], FLEET, total=10) == [["d", "e"]]
    assert batches([], FLEET) == []


def test_fail_threshold_is_strictly_above() -> None:
    assert not over_fail_threshold(FLEET, 1, 10)  # 10% is allowed
    assert over_fail_threshold(FLEET, 2, 10)
    assert over_fail_threshold(PILOT, 1, 100)  # 0%: any failure halts
    assert not over_fail_threshold(PILOT, 0, 1)


def test_shown_states() -> None:
    pilot = finished_pilot()
    assert pilot.shown_state(T0 + timedelta(days=6)) == BAKING
    assert pilot.shown_state(T0 + timedelta(days=7)) == DONE
    assert fleet().shown_state(T0) == PENDING
    assert fleet(state=HALTED).shown_state(T0) == HALTED


def test_promotion_refused_while_baking_with_the_reason() -> None:
    p = can_promote([finished_pilot(), fleet()], 0, T0 + timedelta(days=6, hours=23))
    assert not p.allowed
    assert "baking until 2025-03-08T12:00" in p.reason


def test_promotion_at_the_end_of_the_bake() -> None:
    p = can_promote([finished_pilot(), fleet()], 0, T0 + timedelta(days=7))
    assert p.allowed and not p.already
    assert p.wave is not None and p.wave.wave.name == "fleet"


def test_open_incident_blocks_promotion_after_the_bake() -> None:
    p = can_promote([finished_pilot(), fleet()], 1, T0 + timedelta(days=30))
    assert not p.allowed and "incident" in p.reason


def test_min_success_percent_blocks_promotion() -> None:
    pilot = finished_pilot(hosts=("srv-01", "cli-01"), results={"srv-01": "ok", "cli-01": "failed"})
    p = can_promote([pilot, fleet()], 0, T0 + timedelta(days=30))
    assert not p.allowed and "min_success_percent" in p.reason


def test_halted_and_deploying_waves_block_promotion() -> None:
    assert "halted" in can_promote([finished_pilot(state=HALTED), fleet()], 0, T0 + timedelta(days=30)).reason
    assert "deploying" in can_promote([finished_pilot(state=DEPLOYING), fleet()], 0, T0).reason


def test_promoted_but_not_deployed_and_complete() -> None:
    promoted = fleet(promoted_at=T0 + timedelta(days=7))
    p = can_promote([finished_pilot(), promoted], 0, T0 + timedelta(days=8))
    assert p.allowed and p.already
    done = fleet(state=FINISHED, hosts=("cli-01",), finished_at=T0, results={"cli-01": "ok"}, promoted_at=T0)
    assert can_promote([finished_pilot(), done], 0, T0).complete


def test_next_due_wave() -> None:
    assert next_due([finished_pilot(state=PENDING, finished_at=None), fleet()]) is not None
    assert next_due([finished_pilot(), fleet()]) is None  # fleet not promoted
    due = next_due([finished_pilot(), fleet(promoted_at=T0)])
    assert due is not None and due.wave.name == "fleet"
    due = next_due([finished_pilot(state=HALTED), fleet()])
    assert due is not None and due.wave.name == "pilot"


def test_a_one_host_wave_halts_on_its_failure_and_an_empty_one_never() -> None:
    """Found by mutation testing: ``total > 1`` in over_fail_threshold and ``percent`` of nothing
    (``1.0``, or dividing by zero) survived. ``total >= 0`` is equivalent (0 of 0 is 0%, never
    past a threshold, which the policy keeps at 0 or more)."""
    assert over_fail_threshold(PILOT, 1, 1)
    assert not over_fail_threshold(PILOT, 0, 0)
    assert percent(0, 0) == 0.0
    assert percent(1, 4) == 25.0


def test_every_promotion_answer_whole() -> None:
    """Each branch of the promotion rule, its whole answer compared (allowed, reason, wave,
    complete, already), the reasons operators read included. Found by mutation testing: 29
    mutants of ``can_promote`` survived the substring checks above (``None`` for ``False``, a
    reason dropped or changed, ``records[1]`` for the first wave, 101% for an empty wave)."""
    later = T0 + timedelta(days=30)
    pilot, nothing_yet = finished_pilot(), finished_pilot(state=PENDING, finished_at=None, started_at=None)
    assert can_promote([], 0, T0) == Promotion(False, "the rollout has no waves")
    assert can_promote([nothing_yet, fleet()], 0, T0) == Promotion(
        True, "wave pilot is due and not deployed yet: run 'patchctl deploy'", nothing_yet, already=True
    )
    assert can_promote([finished_pilot(state=DEPLOYING), fleet()], 0, T0) == Promotion(
        False, "wave pilot is still deploying (or was interrupted: run 'patchctl deploy')"
    )
    halted = finished_pilot(state=HALTED, results={"srv-01": "failed"})
    assert can_promote([halted, fleet()], 0, later) == Promotion(
        False, "wave pilot is halted: 1 of 1 hosts failed (max_fail_percent 0)"
    )
    done = fleet(state=FINISHED, hosts=("cli-01",), finished_at=T0, results={"cli-01": "ok"}, promoted_at=T0)
    assert can_promote([pilot, done], 0, T0) == Promotion(
        False, "every wave of the rollout has been deployed", complete=True
    )
    half = finished_pilot(hosts=("srv-01", "cli-01"), results={"srv-01": "ok", "cli-01": "failed"})
    assert can_promote([half, fleet()], 0, later) == Promotion(
        False, "wave pilot succeeded on 50% of its hosts (1 of 2), below min_success_percent 100"
    )
    assert can_promote([pilot, fleet()], 0, T0 + timedelta(days=6, hours=23)) == Promotion(
        False, "wave pilot is baking until 2025-03-08T12:00+00:00 (1h 0m left of 7 days)"
    )
    assert can_promote([pilot, fleet()], 2, later) == Promotion(
        False, "2 open incident(s) on the rollout: close them first"
    )
    nxt = fleet()
    assert can_promote([pilot, nxt], 0, later) == Promotion(
        True, "wave pilot finished with 100% success and baked 7 days without incident", nxt
    )
    # a finished wave of no hosts counts as 100% successful
    empty = finished_pilot(hosts=(), results={})
    assert can_promote([empty, nxt], 0, later).reason == (
        "wave pilot finished with 100% success and baked 7 days without incident"
    )
    # the time left of a bake: days and hours, else hours and minutes
    assert can_promote([pilot, nxt], 0, T0 + timedelta(days=6)).reason.endswith("(1d 0h left of 7 days)")
    left = can_promote([pilot, nxt], 0, T0 + timedelta(days=7, minutes=-30)).reason
    assert left.endswith("(0h 30m left of 7 days)")


def test_each_later_wave_excludes_every_earlier_waves_hosts() -> None:
    """Found by mutation testing: ``taken = set(hosts)`` (only the previous wave's hosts kept out)
    survived, every case having two waves."""
    assert assign_hosts([PILOT, FLEET, FLEET], [["a"], ["b"], ["a", "b", "c"]]) == [("a",), ("b",), ("c",)]
