"""The reboot policy: whether a host reboots after patching, and whether it may do so now.

*Whether* is a small enum (:func:`reboot_mode`): by ``patch_role`` a ``server`` reboots
``if_required`` and a ``client`` ``never``; the host variable ``patch_reboot`` (``always``,
``if_required``, ``never``) overrides it. *When* is always the maintenance window's business
(:func:`reboot_decision`): a host reboots automatically only while its window is open with at
least ``min_left`` of it remaining; a host without a window is never rebooted automatically.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from patchctl.rules.durations import format_duration

if TYPE_CHECKING:  # the windows module re-exports this one's names: no import cycle at run time
    from patchctl.rules.maintenance import Window

REBOOT_ALWAYS = "always"
REBOOT_IF_REQUIRED = "if_required"
REBOOT_NEVER = "never"
REBOOT_MODES = (REBOOT_ALWAYS, REBOOT_IF_REQUIRED, REBOOT_NEVER)
ROLE_MODES = {"server": REBOOT_IF_REQUIRED, "client": REBOOT_NEVER}

# What to do about a host's reboot now.
ACTION_REBOOT = "reboot"
ACTION_PENDING = "pending"  # wanted, but not now (window closed, not enough left, or never automatic)
ACTION_NONE = "none"  # nothing to do


def reboot_mode(patch_role: str | None, override: str | None = None) -> str:
    """``always`` / ``if_required`` / ``never``: the host variable ``patch_reboot`` if set, else by
    role (server: ``if_required``, client and unknown roles: ``never``). ValueError on a bad value."""
    if override is not None and str(override).strip():
        mode = str(override).strip().lower()
        if mode not in REBOOT_MODES:
            raise ValueError(f"patch_reboot must be one of {', '.join(REBOOT_MODES)}, got {override!r}")
        return mode
    return ROLE_MODES.get(str(patch_role or "").lower(), REBOOT_NEVER)


@dataclass(frozen=True)
class RebootDecision:
    action: str  # ACTION_REBOOT | ACTION_PENDING | ACTION_NONE
    reason: str


def reboot_decision(
    mode: str,
    reboot_required: bool,
    window: Window | None,
    now: datetime,
    *,
    changed: bool = False,
    window_name: str | None = None,
) -> RebootDecision:
    """Reboot ``now``, leave ``reboot pending``, or nothing. ``changed``: a deploy just installed
    something (``always`` then wants a reboot even when the host does not say it needs one)."""
    wanted = reboot_required or (mode == REBOOT_ALWAYS and changed)
    if not wanted:
        return RebootDecision(ACTION_NONE, "no reboot required")
    if mode == REBOOT_NEVER:
        return RebootDecision(ACTION_PENDING, "reboot policy 'never': waits for its user or an operator")
    if window is None:
        if window_name:
            return RebootDecision(ACTION_PENDING, f"maintenance window {window_name!r} is not defined in the policy")
        return RebootDecision(ACTION_PENDING, "no maintenance window (patch_window) for this host")
    span = window.current(now)
    if span is None:
        nxt = window.next_starts(now, 1)
        when = f": next opens {nxt[0].isoformat(timespec='minutes')}" if nxt else ""
        return RebootDecision(ACTION_PENDING, f"window {window.name} is closed{when}")
    left = span.end - now  # aware datetimes: current() refused a naive one
    if left < window.min_left:
        return RebootDecision(
            ACTION_PENDING,
            f"window {window.name} has {format_duration(left)} left, less than min_left "
            f"{format_duration(window.min_left)}",
        )
    return RebootDecision(ACTION_REBOOT, f"window {window.name} is open ({format_duration(left)} left)")


# --- services pending restart (change safety) ---------------------------------------------------
# After an install, the services still running the files it replaced: ``patch_restart`` says what
# to do about them. ``services`` (a server's default) restarts them in the host's window (never a
# reboot for it); ``reboot`` leaves the host reboot pending (the window's reboot runs the new
# code); ``never`` (a client's default) only reports them.
RESTART_SERVICES = "services"
RESTART_REBOOT = "reboot"
RESTART_NEVER = "never"
RESTART_MODES = (RESTART_SERVICES, RESTART_REBOOT, RESTART_NEVER)
ROLE_RESTART_MODES = {"server": RESTART_SERVICES, "client": RESTART_NEVER}


def restart_mode(patch_role: str | None, override: str | None = None) -> str:
    """``services`` / ``reboot`` / ``never``: the host variable ``patch_restart`` if set, else by
    role (server: ``services``, client and unknown roles: ``never``). ValueError on a bad value."""
    if override is not None and str(override).strip():
        mode = str(override).strip().lower()
        if mode not in RESTART_MODES:
            raise ValueError(f"patch_restart must be one of {', '.join(RESTART_MODES)}, got {override!r}")
        return mode
    return ROLE_RESTART_MODES.get(str(patch_role or "").lower(), RESTART_NEVER)


def restart_decision(
    mode: str, window: Window | None, now: datetime, *, window_name: str | None = None
) -> RebootDecision:
    """Restart a host's pending services ``now`` (ACTION_REBOOT: act now), leave them pending, or
    nothing: ``services`` acts only while the window allows a reboot (the same rule), ``reboot``
    and ``never`` never restart services."""
    if mode == RESTART_NEVER:
        return RebootDecision(ACTION_PENDING, "patch_restart: never: services pending restart are only reported")
    if mode == RESTART_REBOOT:
        return RebootDecision(ACTION_PENDING, "patch_restart: reboot: the host's next reboot restarts them")
    d = reboot_decision(REBOOT_IF_REQUIRED, True, window, now, window_name=window_name)
    if d.action == ACTION_REBOOT:
        return RebootDecision(ACTION_REBOOT, d.reason)
    return d
