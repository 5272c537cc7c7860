"""Install windows, as pure rules: the maintenance window inside which a host installs updates.

A host's install window is, first found: its inventory variable ``patch_install_window``, the
``install_window:`` of the wave deploying it, the ``install_window:`` of its ``patch_role`` in the
policy's ``roles:``::

    roles:
      server: {install_window: sun-02}
    waves:
      - {name: pilot, hosts: pilot, install_window: tue-20}

Each names a window of the policy's ``windows:`` (:mod:`patchctl.rules.maintenance`, with its DST
rules). Outside it, ``deploy`` installs nothing on the host: it is ``waiting for install window``
with the window's next opening. A host without one installs at any time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from patchctl.rules.clock import iso_utc
from patchctl.rules.maintenance import Window

WAITING = "waiting for install window"
HOST_VAR = "patch_install_window"
FROM_HOST = "host"
FROM_WAVE = "wave"
FROM_ROLE = "role"


@dataclass(frozen=True)
class InstallWindow:
    name: str
    source: str  # FROM_HOST, FROM_WAVE or FROM_ROLE: where the name came from


def install_window_for(
    host_var: str | None, wave_window: str | None, role: str | None, role_windows: Mapping[str, str]
) -> InstallWindow | None:
    """The host's install window: host variable > wave > role; None: installs at any time."""
    if host_var:
        return InstallWindow(str(host_var), FROM_HOST)
    if wave_window:
        return InstallWindow(wave_window, FROM_WAVE)
    if role and role in role_windows:
        return InstallWindow(role_windows[role], FROM_ROLE)
    return None


@dataclass(frozen=True)
class Waiting:
    window: str
    next_open: datetime | None

    @property
    def reason(self) -> str:
        when = f"opens {iso_utc(self.next_open)}" if self.next_open else "no opening ahead"
        return f"{WAITING} {self.window} ({when})"


def waiting(window: Window, now: datetime) -> Waiting | None:
    """None when ``window`` is open at ``now`` (the host may install), else when it opens next."""
    if window.is_open_at(now):
        return None
    starts = window.next_starts(now, 1)
    return Waiting(window.name, starts[0] if starts else None)
