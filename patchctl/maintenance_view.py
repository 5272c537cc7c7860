"""The maintenance windows as ``patchctl windows`` shows them (``maintenance`` means maintenance
windows here, never the Windows operating system).

For each window of the policy: whether it is open at the (possibly simulated) current time and
until when, whether a reboot is still allowed in it (``min_left``), its next starts in UTC and in
its own time zone, and the inventory hosts whose ``patch_window`` names it; then the windows the
inventory names but the policy does not define (a configuration error: exit 2), and the hosts
without a window (never rebooted automatically); then the policy's freezes, active now or next.
Each window also says who installs only inside it (its install window,
:mod:`patchctl.rules.install_windows`): the waves naming it, and the hosts naming it by their
``patch_install_window`` or their ``patch_role``'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from patchctl.ansible.inventory import load_inventory
from patchctl.errors import EXIT_OK, EXIT_USAGE
from patchctl.rules.clock import iso_utc
from patchctl.rules.durations import format_duration
from patchctl.rules.freezes import active_and_next
from patchctl.rules.install_windows import HOST_VAR, install_window_for
from patchctl.rules.maintenance import hosts_by_window
from patchctl.rules.policy import Policy


@dataclass(frozen=True)
class WindowsView:
    policy: str  # where the policy came from
    now: datetime
    windows: list[dict[str, Any]]  # per window, by name
    undefined: dict[str, list[str]]  # window name -> the hosts naming it
    hosts_without_window: list[str]
    freezes: list[dict[str, Any]] = field(default_factory=list)  # each with its active and next span

    @property
    def exit_code(self) -> int:
        """2 when a host's ``patch_window`` names a window the policy does not define."""
        return EXIT_USAGE if self.undefined else EXIT_OK

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "now": iso_utc(self.now),
            "windows": self.windows,
            "undefined": self.undefined,
            "hosts_without_window": self.hosts_without_window,
            "freezes": [{k: iso_utc(v) if isinstance(v, datetime) else v for k, v in f.items()} for f in self.freezes],
        }


def windows_view(policy: Policy, inventory_path: str, now: datetime, count: int) -> WindowsView:
    """Every window of ``policy`` at ``now`` with its next ``count`` starts and its hosts."""
    inventory = load_inventory(inventory_path)
    used = hosts_by_window({h: inventory.var(h, "patch_window") for h in inventory.hosts})
    installs: dict[str, list[str]] = {}
    for h in inventory.hosts:
        chosen = install_window_for(
            inventory.var(h, HOST_VAR), None, inventory.var(h, "patch_role"), policy.role_install_windows
        )
        if chosen is not None:
            installs.setdefault(chosen.name, []).append(f"{h} ({chosen.source})")
    undefined = {name: hosts for name, hosts in used.items() if name not in policy.windows}
    for name, hosts in installs.items():
        if name not in policy.windows:
            undefined.setdefault(name, []).extend(h.split(" ")[0] for h in hosts)
    rows = []
    for name, w in sorted(policy.windows.items()):
        span = w.current(now)
        starts = w.next_starts(now, count)
        rows.append(
            {
                **w.as_dict(),
                "open": span is not None,
                "open_until": iso_utc(span.end) if span else None,
                "open_until_local": span.end.astimezone(w.tz).isoformat() if span else None,
                "remaining": format_duration(span.end - now) if span else None,
                "reboot_allowed": w.allows_reboot(now),
                "next_starts": [iso_utc(s) for s in starts],
                "next_starts_local": [s.astimezone(w.tz).isoformat() for s in starts],
                "hosts": used.get(name, []),
                "install_waves": [wv.name for wv in policy.waves if wv.install_window == name],
                "install_hosts": sorted(installs.get(name, [])),
            }
        )
    return WindowsView(
        policy=policy.source,
        now=now,
        windows=rows,
        undefined=undefined,
        hosts_without_window=sorted(h for h in inventory.hosts if not inventory.var(h, "patch_window")),
        freezes=active_and_next(policy.freezes, now),
    )
