"""How many Ansible forks a scan uses when neither --forks nor the config says."""

from __future__ import annotations

import pytest

from patchctl.scan import SCAN_FORKS_MAX, scan_forks


@pytest.mark.parametrize(("hosts", "forks"), [(0, 1), (1, 1), (60, 60), (100, 100), (5000, SCAN_FORKS_MAX)])
def test_scan_forks_sized_to_the_hosts(hosts: int, forks: int) -> None:
    assert scan_forks(hosts) == forks
