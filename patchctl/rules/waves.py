"""Rollout rules: which hosts a wave holds, how it is cut into batches, when it halts, what state
it shows and whether the next wave may be promoted. Pure: no I/O, no click, no store.

A wave's recorded progress is a :class:`WaveRecord` (the store keeps it); what it shows is
derived here at a given moment:

- ``pending``: not started (``promoted`` when the rule allowed it to start);
- ``deploying``: started and not finished (also a deploy that was interrupted);
- ``halted``: failures passed ``max_fail_percent``; no further host was started;
- ``baking``: finished, until ``finished_at + bake_days``;
- ``done``: finished and baked.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from patchctl.rules.policy import Wave

# Recorded states (the store's rollout_waves.state).
PENDING = "pending"
DEPLOYING = "deploying"
FINISHED = "finished"
HALTED = "halted"
RECORDED_STATES = (PENDING, DEPLOYING, FINISHED, HALTED)

# Shown states.
BAKING = "baking"
DONE = "done"

# Per-host deploy results.
HOST_OK = "ok"
HOST_FAILED = "failed"
HOST_UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class WaveRecord:
    """What the store knows of one wave of one rollout."""

    position: int
    wave: Wave
    state: str = PENDING  # one of RECORDED_STATES
    hosts: tuple[str, ...] = ()  # fixed when the wave first deploys
    promoted_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    results: dict[str, str] = field(default_factory=dict)  # host -> last result (ok | failed | unreachable | blocked)

    @property
    def ok_hosts(self) -> int:
        return sum(1 for h in self.hosts if self.results.get(h) == HOST_OK)

    @property
    def failed_hosts(self) -> int:
        return sum(1 for h in self.hosts if self.results.get(h) in (HOST_FAILED, HOST_UNREACHABLE))

    @property
    def bake_until(self) -> datetime | None:
        if self.finished_at is None:
            return None
        return self.finished_at + timedelta(days=self.wave.bake_days)

    def shown_state(self, now: datetime) -> str:
        if self.state == FINISHED:
            until = self.bake_until
            return BAKING if until is not None and now < until else DONE
        return self.state


def percent(part: int, total: int) -> float:
    return 100.0 * part / total if total else 0.0


def assign_hosts(
    waves: Sequence[Wave],
    matched: Sequence[Iterable[str]],
    fixed: dict[int, tuple[str, ...]] | None = None,
) -> list[tuple[str, ...]]:
    """The hosts of each wave: those its pattern matched (``matched[i]``) minus the hosts of every
    earlier wave. ``fixed`` holds waves whose hosts were already recorded (they are kept)."""
    taken: set[str] = set()
    out: list[tuple[str, ...]] = []
    for i, _wave in enumerate(waves):
        hosts = (fixed or {}).get(i)
        if hosts is None:
            hosts = tuple(sorted(set(matched[i]) - taken))
        taken |= set(hosts)
        out.append(hosts)
    return out


def batches(hosts: Sequence[str], wave: Wave, total: int | None = None) -> list[list[str]]:
    """``hosts`` cut into batches of the wave's ``max_concurrency`` (a percentage is of ``total``,
    the wave's size, which defaults to ``len(hosts)``)."""
    size = wave.max_concurrency.hosts(total if total is not None else len(hosts))
    if size <= 0:
        return []
    return [list(hosts[i : i + size]) for i in range(0, len(hosts), size)]


def over_fail_threshold(wave: Wave, failed: int, total: int) -> bool:
    """True when ``failed`` hosts (unreachable ones included) of ``total`` pass ``max_fail_percent``."""
    return total > 0 and percent(failed, total) > wave.max_fail_percent


def next_due(records: Sequence[WaveRecord]) -> WaveRecord | None:
    """The wave ``patchctl deploy`` works on without ``--wave``: an interrupted or halted one,
    else the first pending wave that may start (the first wave, or one that was promoted)."""
    for rec in records:
        if rec.state in (DEPLOYING, HALTED):
            return rec
    for rec in records:
        if rec.state == PENDING:
            return rec if rec.position == 0 or rec.promoted_at is not None else None
    return None


@dataclass(frozen=True)
class Promotion:
    """The promotion rule's answer: ``wave`` may start when ``allowed``; else ``reason`` says why not.
    ``complete`` means every wave has finished (nothing to promote)."""

    allowed: bool
    reason: str
    wave: WaveRecord | None = None
    complete: bool = False
    already: bool = False


def can_promote(records: Sequence[WaveRecord], open_incidents: int, now: datetime) -> Promotion:
    """May the wave after the last started one start now? See the module docstring."""
    started = [r for r in records if r.state != PENDING or r.promoted_at is not None or r.position == 0]
    if not records:
        return Promotion(False, "the rollout has no waves")
    current = started[-1] if started else records[0]
    if current.state == PENDING:
        return Promotion(
            True,
            f"wave {current.wave.name} is due and not deployed yet: run 'patchctl deploy'",
            current,
            already=True,
        )
    if current.state == DEPLOYING:
        return Promotion(
            False, f"wave {current.wave.name} is still deploying (or was interrupted: run 'patchctl deploy')"
        )
    if current.state == HALTED and current.ok_hosts < len(current.hosts) and not current.failed_hosts:
        # halted by hosts that wait (a freeze, an install window), none failed: deploy resumes it
        return Promotion(
            True, f"wave {current.wave.name} waits for hosts, none failed: run 'patchctl deploy'", current, already=True
        )
    if current.state == HALTED:
        return Promotion(
            False,
            f"wave {current.wave.name} is halted: {current.failed_hosts} of {len(current.hosts)} hosts failed "
            f"(max_fail_percent {current.wave.max_fail_percent:g})",
        )
    nxt = next((r for r in records if r.position == current.position + 1), None)
    if nxt is None:
        return Promotion(False, "every wave of the rollout has been deployed", complete=True)
    success = percent(current.ok_hosts, len(current.hosts)) if current.hosts else 100.0
    if success < current.wave.min_success_percent:
        return Promotion(
            False,
            f"wave {current.wave.name} succeeded on {success:.0f}% of its hosts "
            f"({current.ok_hosts} of {len(current.hosts)}), below min_success_percent "
            f"{current.wave.min_success_percent:g}",
        )
    until = current.bake_until
    if until is not None and now < until:
        return Promotion(
            False,
            f"wave {current.wave.name} is baking until {until.isoformat(timespec='minutes')} "
            f"({_left(until - now)} left of {current.wave.bake_days:g} days)",
        )
    if open_incidents:
        return Promotion(False, f"{open_incidents} open incident(s) on the rollout: close them first")
    return Promotion(
        True,
        f"wave {current.wave.name} finished with {success:.0f}% success and baked "
        f"{current.wave.bake_days:g} days without incident",
        nxt,
    )


def _left(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {rest // 60}m"
