"""Scheduling: cron entries parsed field by field, systemd units verified by systemd-analyze,
and the lock and log of a scheduled run, with real processes."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from patchctl import schedule as sch
from patchctl.cli import cli

FIELD_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


def _cron_values(field: str, low: int, high: int) -> set[int]:
    """The values of one cron field (``*``, ``*/N``, ``A``, ``A-B``, ``A-B/N``, lists); ValueError if bad."""
    values: set[int] = set()
    for part in field.split(","):
        rng, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(field)
        if rng == "*":
            a, b = low, high
        elif "-" in rng:
            a, b = (int(x) for x in rng.split("-"))
        else:
            a = b = int(rng)
            if step_text:
                b = high
        if not (low <= a <= b <= high):
            raise ValueError(field)
        values.update(range(a, b + 1, step))
    return values


def parse_cron_d(text: str) -> list[tuple[list[set[int]], str, str]]:
    """An /etc/cron.d file: (field values, user, command) per entry; asserts every line is valid."""
    entries = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if "=" in line.split()[0]:
            name = line.split("=", 1)[0]
            assert name.replace("_", "").isalnum(), line
            continue
        parts = line.split(None, 6)
        assert len(parts) == 7, f"not an /etc/cron.d entry: {line!r}"
        fields = [_cron_values(f, lo, hi) for f, (lo, hi) in zip(parts[:5], FIELD_RANGES, strict=True)]
        entries.append((fields, parts[5], parts[6]))
    return entries


def test_cron_file_parses_and_runs_each_job_at_its_time() -> None:
    text = sch.cron_file({"PATCHCTL_CONFIG": "/etc/patchctl/patchctl.yml"}, "/opt/patchctl/bin/patchctl")
    assert "PATCHCTL_CONFIG=/etc/patchctl/patchctl.yml" in text.splitlines()
    entries = {cmd.rsplit(" ", 1)[1]: (fields, user, cmd) for fields, user, cmd in parse_cron_d(text)}
    assert set(entries) == {"scan", "verify", "promote", "reboot"}
    minute, hour, dom, month, dow = entries["scan"][0]
    assert (minute, hour) == ({0}, {2}) and len(dom) == 31 and len(month) == 12 and len(dow) == 8
    assert entries["verify"][0][:2] == [{0}, {6}]
    assert entries["promote"][0][:2] == [{15}, set(range(24))]  # hourly
    assert entries["reboot"][0][0] == {0, 15, 30, 45}
    assert all(user == "root" for _f, user, _c in entries.values())
    assert entries["promote"][2] == "/opt/patchctl/bin/patchctl schedule run promote"


def test_times_can_be_chosen_and_are_checked() -> None:
    times = sch.Times(scan_at="23:30", verify_at="05:05", promote_minute=0, reboot_every=5)
    (scan, verify, promote, reboot) = parse_cron_d(sch.cron_file({}, "patchctl", times))
    assert scan[0][:2] == [{30}, {23}] and verify[0][:2] == [{5}, {5}]
    assert promote[0][0] == {0} and reboot[0][0] == set(range(0, 60, 5))
    from patchctl.errors import ConfigError

    for bad in (sch.Times(scan_at="25:00"), sch.Times(reboot_every=7), sch.Times(promote_minute=60)):
        with pytest.raises(ConfigError):
            sch.jobs(bad)


def test_systemd_units_pass_systemd_analyze(tmp_path: Path) -> None:
    """Fails, never skips, without systemd-analyze (``make deps`` installs systemd): run with a
    PATH that lacks it, this test failed on the assertion below and the CLI test below failed on
    its "verify: ok" line, where both used to skip or pass with "not installed"."""
    assert shutil.which("systemd-analyze"), "systemd-analyze is missing: make deps installs systemd"
    units = sch.systemd_units({"PATCHCTL_CONFIG": "/etc/patchctl/patchctl.yml"}, sch.executable())
    assert set(units) == {
        f"patchctl-{j}.{k}" for j in ("scan", "verify", "promote", "reboot") for k in ("service", "timer")
    }
    for name, text in units.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    ok, output = sch.verify_units(tmp_path)
    assert ok is True, output
    assert "OnCalendar=*-*-* 02:00:00" in units["patchctl-scan.timer"]
    # The check can fail: a unit with a broken calendar is rejected.
    (tmp_path / "patchctl-scan.timer").write_text(
        units["patchctl-scan.timer"].replace("*-*-* 02:00:00", "every night at two"), encoding="utf-8"
    )
    ok, output = sch.verify_units(tmp_path)
    assert ok is False and "patchctl-scan.timer" in output


def test_cli_schedule_prints_and_installs(tmp_path: Path, patchctl_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATCHCTL_DB", f"sqlite:///{tmp_path}/p.db")
    runner = CliRunner()
    printed = runner.invoke(cli, ["schedule", "--cron"])
    assert printed.exit_code == 0, printed.output
    entries = parse_cron_d(printed.output)
    assert len(entries) == 4
    assert f"PATCHCTL_DB=sqlite:///{tmp_path}/p.db" in printed.output  # what the user's shell had
    target = tmp_path / "cron.d" / "patchctl"
    installed = runner.invoke(cli, ["schedule", "--cron", "--install", "--cron-file", str(target), "--json"])
    assert installed.exit_code == 0, installed.output
    data = json.loads(installed.output)
    assert data["schema"] == "patchctl.schedule/1" and data["installed"] == [str(target)]
    assert target.read_text() == printed.output
    units = runner.invoke(cli, ["schedule", "--systemd", "--install", "--unit-dir", str(tmp_path / "units")])
    assert units.exit_code == 0, units.output
    assert len(list((tmp_path / "units").glob("patchctl-*"))) == 8
    assert "systemd-analyze verify: ok" in units.output, units.output
    assert runner.invoke(cli, ["schedule"]).exit_code == 2


def _runner_script(log_dir: Path, seconds: float) -> list[str]:
    job = f"import time; print('working', flush=True); time.sleep({seconds})"
    code = (
        "import sys; from pathlib import Path; from patchctl.schedule import run_locked; "
        f"r = run_locked('scan', [sys.executable, '-c', {job!r}], Path({str(log_dir)!r})); sys.exit(r.code)"
    )
    return [sys.executable, "-c", code]


def _wait_for(predicate: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_run_logs_and_exits_with_the_jobs_code(tmp_path: Path) -> None:
    result = sch.run_locked("verify", [sys.executable, "-c", "print('hello'); raise SystemExit(3)"], tmp_path)
    assert (result.code, result.skipped) == (3, False)
    log = (tmp_path / "verify.log").read_text()
    lines = log.splitlines()
    assert lines[0].startswith("=== ") and "verify: start" in lines[0]
    assert lines[1] == "hello"
    assert "verify: end, exit 3" in lines[2]


def test_overlapping_runs_skip_and_a_crashed_run_leaves_no_lock(tmp_path: Path) -> None:
    log = tmp_path / "scan.log"
    first = subprocess.Popen(_runner_script(tmp_path, 60), start_new_session=True)
    try:
        _wait_for(lambda: log.exists() and "working" in log.read_text())
        second = sch.run_locked("scan", [sys.executable, "-c", "print('second')"], tmp_path)
        assert second.skipped and second.code == 0
        assert f"pid {first.pid}" in second.holder
        assert "skipped, the previous run still holds" in log.read_text()
        assert "second" not in log.read_text()
        # Kill the runner alone: its job still holds the lock (it inherited it).
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        assert sch.run_locked("scan", [sys.executable, "-c", "print('third')"], tmp_path).skipped
        # Now the whole run crashes (runner and job): the kernel drops the lock.
        os.killpg(first.pid, signal.SIGKILL)
        time.sleep(0.2)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGKILL)
    after = sch.run_locked("scan", [sys.executable, "-c", "print('after the crash')"], tmp_path)
    assert (after.skipped, after.code) == (False, 0)
    assert "after the crash" in log.read_text()


def test_cli_schedule_run_uses_the_log_dir(
    tmp_path: Path, patchctl_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`schedule run scan` runs the real scan command; with an inventory that does not exist it
    fails with exit 2, and the log shows why."""
    monkeypatch.setenv("PATCHCTL_LOG_DIR", str(tmp_path / "logs"))
    proc = subprocess.run(
        [sys.executable, "-m", "patchctl", "-i", str(tmp_path / "nope.yml"), "schedule", "run", "scan", "--json"],
        capture_output=True,
        text=True,
        check=False,
        env=os.environ.copy(),
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    data = json.loads(proc.stdout)
    assert data["exit_code"] == 2 and data["log"] == str(tmp_path / "logs" / "scan.log")
    log = (tmp_path / "logs" / "scan.log").read_text()
    assert "nope.yml" in log and "scan: end, exit 2" in log
