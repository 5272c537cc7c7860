"""A host's compliance state: THE one rule, pure, used by ``verify``, ``report`` and deploy.

The question it answers: *is the host compliant with its baseline's approvals?* Its inputs are
what the store knows of the host (:class:`ComplianceFacts`); the states, in order of precedence
(the first that holds wins):

``never_scanned``
    no scan of the host was ever recorded;
``unreachable``
    the host's last scan could not reach it;
``failed``
    the host's last scan failed on it, or its last deploy (in the latest rollout) failed;
``blocked``
    the host's last deploy (in any rollout) left it without an approved update that the
    repositories no longer offer (the baseline's ``successors``); the reason says which and what
    is offered instead, e.g. "approved 1.1-1 is no longer offered; the repositories offer 1.2-1";
``stale``
    the last scan was fine but is older than ``stale_after`` (config key ``stale_days``);
``missing``
    approved updates are not installed (``approved_missing`` > 0; when no policy was ever
    evaluated, nothing is known to be approved and every missing update counts), beyond those a
    valid exception covers (``excepted``, :mod:`patchctl.rules.exceptions`: they do not count);
``reboot_pending``
    everything approved is installed but the host waits for a reboot;
``compliant``
    everything approved is installed and no reboot is pending.

``verify`` also answers a second question, *did the started waves deliver what they froze?*;
its answer has its own names (:data:`DELIVERY_STATES`), never one of these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from patchctl.rules.model import HOST_FAILED, HOST_OK, HOST_UNREACHABLE

NEVER_SCANNED = "never_scanned"
# What a host's last scan was: the reachability column of v_host_compliance.
REACHABILITY = (HOST_OK, HOST_FAILED, HOST_UNREACHABLE, NEVER_SCANNED)

COMPLIANT = "compliant"
MISSING = "missing"
REBOOT_PENDING = "reboot_pending"
FAILED = "failed"
UNREACHABLE = "unreachable"
STALE = "stale"
BLOCKED = "blocked"
# Every compliance state, in the order reports show them (DESIGN.md, "compliance state").
STATES = (COMPLIANT, MISSING, REBOOT_PENDING, FAILED, BLOCKED, UNREACHABLE, STALE, NEVER_SCANNED)

# verify's second question: did the started waves deliver what they froze for the host?
DELIVERED = "delivered"  # every update they froze for it is installed
UNDELIVERED = "undelivered"  # some are not installed (the next deploy of its wave retries them)
DEPLOY_FAILED = "deploy_failed"  # some are not installed and the host's last deploy of them failed
NOTHING_STARTED = "nothing_started"  # no started wave holds the host
UNKNOWN = "unknown"  # the host's last scan was not ok: what is installed is not known
DELIVERY_STATES = (DELIVERED, UNDELIVERED, DEPLOY_FAILED, NOTHING_STARTED, UNKNOWN)


@dataclass(frozen=True)
class ComplianceFacts:
    """What the rule reads of one host."""

    last_scan: str  # one of REACHABILITY: the status of the host's last scan
    last_scan_at: datetime | None  # when it ran (None: never)
    approved_missing: int  # approved updates the host misses (every missing one when none decided)
    reboot_pending: bool
    deploy_failed: bool = False  # the host's last deploy in the latest rollout was not ok
    # the reason, when the host's last deploy in any rollout was blocked (rules.lineage)
    deploy_blocked: str | None = None
    # of approved_missing, how many a valid exception covers (rules.exceptions): not counted
    excepted: int = 0


def compliance_state(facts: ComplianceFacts, now: datetime, stale_after: timedelta) -> str:
    """The compliance state of one host at ``now``; see the module docstring for the order."""
    if facts.last_scan == NEVER_SCANNED or facts.last_scan_at is None:
        return NEVER_SCANNED
    if facts.last_scan == HOST_UNREACHABLE:
        return UNREACHABLE
    if facts.last_scan != HOST_OK or facts.deploy_failed:
        return FAILED
    if facts.deploy_blocked is not None:
        return BLOCKED
    if now - facts.last_scan_at > stale_after:
        return STALE
    if facts.approved_missing - facts.excepted > 0:
        return MISSING
    if facts.reboot_pending:
        return REBOOT_PENDING
    return COMPLIANT


def delivery_state(scan_ok: bool, frozen: int, undelivered: int, deploy_failed: int) -> str:
    """verify's answer for one host: ``frozen`` updates its started waves froze for it, of which
    ``undelivered`` are not installed and ``deploy_failed`` of those failed in its last deploy."""
    if not frozen:
        return NOTHING_STARTED
    if not scan_ok:
        return UNKNOWN
    if deploy_failed:
        return DEPLOY_FAILED
    return UNDELIVERED if undelivered else DELIVERED
