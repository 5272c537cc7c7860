"""The scan benchmark in its CI mode: 4 lab hosts, patchctl and a plain playbook must agree.

Benchmarks are not tests: this only checks that bench/scan_bench.py works and that both sides find
the same missing updates. Its lab has its own directory and subnet (PATCHCTL_BENCH_SUBNET, default
127.88), apart from the integration tests' lab.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.lab]


def test_scan_bench_smoke(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("the benchmark's lab needs root")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATCHCTL_") or k == "PATCHCTL_BENCH_SUBNET"}
    cmd = [sys.executable, str(ROOT / "bench" / "scan_bench.py"), "--smoke", "--csv", str(tmp_path / "scan.csv")]
    cmd += ["--lab-dir", str(tmp_path / "lab"), "--work-dir", str(tmp_path / "work")]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, f"scan_bench --smoke failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "DISAGREE" not in proc.stdout
    rows = (tmp_path / "scan.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].split(",")[1] == "4"
