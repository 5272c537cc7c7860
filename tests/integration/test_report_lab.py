"""Every report format on a store filled by a real lab scan and a pilot deploy; the HTML report
rendered in headless Chromium, its numbers checked against the JSON report; a scheduled run."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from patchctl.render.report_html import WORST_FIRST

from .conftest import CliResult, LabEnv
from .test_rollout_lab import PILOT, write_policy

pytestmark = [pytest.mark.integration, pytest.mark.lab]

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def ok(result: CliResult) -> CliResult:
    assert result.code == 0, f"exit {result.code}: {result.stdout}\n{result.stderr}"
    return result


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("chromium is not installed (make deps installs Debian's chromium)")


def browse(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class Dom(HTMLParser):
    """What the rendered page shows: KPI values, host rows in order, chart segments, trend points."""

    def __init__(self) -> None:
        super().__init__()
        self.kpi: dict[str, str] = {}
        self.hosts: list[dict[str, str]] = []
        self.donut: dict[str, int] = {}
        self.points: list[dict[str, str]] = []
        self.waves: dict[str, dict[str, str]] = {}
        self._metric: str | None = None
        self._value = False
        self._cell: tuple[dict[str, str], str] | None = None
        self._row: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "data-metric" in a:
            self._metric = a["data-metric"]
        if tag == "span" and a.get("class") == "v" and self._metric:
            self._value = True
        if tag == "tr":
            self._row = None
            if "data-host" in a:
                self._row = {"name": a["data-host"], "state": a["data-state"]}
                self.hosts.append(self._row)
            elif "data-wave" in a:
                self._row = self.waves[a["data-wave"]] = {}
        if tag == "td" and "data-k" in a and self._row is not None:
            self._cell = (self._row, a["data-k"])
        if tag == "circle" and a.get("class") == "seg":
            self.donut[a["data-state"]] = int(a["data-count"])
        if tag == "circle" and a.get("class") == "pt":
            self.points.append(a)

    def handle_data(self, data: str) -> None:
        if self._value and self._metric:
            self.kpi[self._metric] = data
            self._value, self._metric = False, None
        if self._cell is not None:
            row, key = self._cell
            row[key] = data.strip()
            self._cell = None


def test_every_format_on_a_scanned_and_deployed_lab(lab_env: LabEnv, tmp_path: Path) -> None:
    lab_env.lab.reset()
    db = tmp_path / "report.db"
    policy = write_policy(tmp_path / "policy.yml")

    def pc(*args: str) -> CliResult:
        return lab_env.cli("--policy", str(policy), *args, db=db)

    ok(pc("scan"))
    ok(pc("rollout", "create"))
    ok(pc("deploy"))  # the pilot wave
    ok(pc("scan"))  # a second point of history, after the pilot's updates

    data: Any = ok(pc("report", "--json")).json()
    assert data == ok(pc("report", "--format", "json")).json() | {"generated_at": data["generated_at"]}
    hosts = {h["name"]: h for h in data["hosts"]}
    names = [h.name for h in lab_env.lab.hosts()]
    assert sorted(hosts) == sorted(names)
    assert all(h["reachability"] == "ok" for h in hosts.values())
    assert hosts[PILOT]["wave"] == "pilot"
    pilot = data["compliance"]["by_wave"][0]
    assert (pilot["wave"], pilot["hosts"], pilot["hosts_ok"], pilot["state"]) == ("pilot", [PILOT], 1, "finished")
    # The pilot got the approved updates: it misses fewer than any fleet host.
    assert all(hosts[PILOT]["missing"]["total"] < h["missing"]["total"] for n, h in hosts.items() if n != PILOT)
    assert sum(data["compliance"]["by_state"].values()) == len(names)
    assert [p["hosts"] for p in data["history"]] == [len(names), len(names)]
    assert data["history"][0]["missing_total"] > data["history"][1]["missing_total"]
    widest = data["top_missing"][0]
    assert widest["hosts"] == max(m["hosts"] for m in data["top_missing"])

    # CSV: the same hosts and figures.
    rows = list(csv.DictReader(io.StringIO(ok(pc("report", "--format", "csv")).stdout)))
    assert {r["host"]: (r["state"], int(r["missing"])) for r in rows} == {
        n: (h["state"], h["missing"]["total"]) for n, h in hosts.items()
    }
    history = list(csv.DictReader(io.StringIO(ok(pc("report", "-f", "csv", "--section", "history")).stdout)))
    assert [int(r["missing_total"]) for r in history] == [p["missing_total"] for p in data["history"]]

    # Not a TTY: plain tab-separated lines, one per host, then the sections.
    lines = ok(pc("report")).stdout.splitlines()
    assert lines[0].split("\t")[0] == "host"
    assert [ln.split("\t")[0] for ln in lines[1 : 1 + len(names)]] == sorted(names)
    assert "# waves" in lines and "# history" in lines

    table = tmp_path / "report.txt"
    ok(pc("report", "--format", "table", "--output", str(table)))
    text = table.read_text()
    assert "Rollout 1: waves" in text and all(n in text for n in names)

    # HTML, opened in a real headless Chromium.
    page = tmp_path / "report.html"
    ok(pc("report", "--format", "html", "--output", str(page)))
    dumped = browse(page, tmp_path / "chromium-dom", "--dump-dom", f"file://{page}#sort=missing-desc")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = Dom()
    dom.feed(dumped.stdout)
    t = data["totals"]
    assert dom.kpi == {
        "hosts": str(t["hosts"]),
        "compliant_percent": f"{data['compliance']['percent']:g}%",
        "hosts_with_missing": str(t["hosts_with_missing"]),
        "missing_total": str(t["missing"]["total"]),
        "missing_security": str(t["missing"]["by_classification"]["security"]),
        "reboot_pending": str(t["reboot_pending"]),
        "failures": str(len({f["host"] for f in data["failures"]})),
    }
    # The page lists the worst states first; its script then sorted the host table by approved
    # missing updates, most first (a stable sort).
    worst_first = sorted(data["hosts"], key=lambda h: (WORST_FIRST.index(h["state"]), h["name"]))
    expected = sorted(worst_first, key=lambda h: -h["missing_approved"])
    assert [h["name"] for h in dom.hosts] == [h["name"] for h in expected]
    assert 'aria-sort="descending"' in dumped.stdout
    for row in dom.hosts:
        assert row["state"] == hosts[row["name"]]["state"]
        assert int(row["missing"]) == hosts[row["name"]]["missing_approved"]
        assert int(row["not_approved"]) == hosts[row["name"]]["missing"]["total"] - int(row["missing"])
        assert int(row["security"]) == hosts[row["name"]]["missing"]["by_classification"]["security"]
    assert dom.donut == {s: n for s, n in data["compliance"]["by_state"].items() if n}
    assert [int(p["data-missing"]) for p in dom.points] == [p["missing_total"] for p in data["history"]]
    assert dom.waves["pilot"]["hosts_ok"] == "1"

    shot = tmp_path / "report.png"
    taken = browse(
        page, tmp_path / "chromium-shot", "--window-size=1280,1600", f"--screenshot={shot}", f"file://{page}"
    )
    assert taken.returncode == 0, taken.stderr[-2000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    if os.environ.get("PATCHCTL_REPORT_SCREENSHOT"):  # how docs/report.png is made
        shutil.copy(shot, os.environ["PATCHCTL_REPORT_SCREENSHOT"])


def test_a_scheduled_scan_logs_to_its_file(lab_env: LabEnv, tmp_path: Path) -> None:
    env = dict(lab_env.env, PATCHCTL_LOG_DIR=str(tmp_path / "logs"))
    db = tmp_path / "sched.db"
    proc = subprocess.run(
        [sys.executable, "-m", "patchctl", "--db", f"sqlite:///{db}", "schedule", "run", "scan", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["job"], result["exit_code"], result["skipped"]) == ("scan", 0, False)
    log = (tmp_path / "logs" / "scan.log").read_text()
    hosts = len(lab_env.lab.hosts())
    assert f"{hosts} ok, 0 failed, 0 unreachable of {hosts}" in log
    assert "scan: end, exit 0" in log
    assert (tmp_path / "logs" / "locks" / "scan.lock").exists()
