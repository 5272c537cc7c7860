"""Fixtures general to every test suite. Keep this small: suite-specific fixtures live with the suite."""

from __future__ import annotations

from pathlib import Path

import pytest

# Variables that point patchctl at a user's real state; tests start without them.
PATCHCTL_ENV = (
    "PATCHCTL_CONFIG",
    "PATCHCTL_DB",
    "PATCHCTL_INVENTORY",
    "PATCHCTL_POLICY",
    "PATCHCTL_HOME",
)


@pytest.fixture
def patchctl_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated patchctl: state in ``tmp_path/home``, config under ``tmp_path/config``.

    Clears the ``PATCHCTL_*`` variables that would point at a real database, inventory, policy
    or config file. Lab and cache locations are left alone (the lab's image cache is expensive).
    """
    for name in PATCHCTL_ENV:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("PATCHCTL_HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return home
