"""The live progress display (patchctl/cli/progress.py) and what is listed after it."""

from __future__ import annotations

import io

from rich.console import Console

from patchctl.cli.app import App
from patchctl.cli.progress import LiveProgress
from patchctl.render.deploy import deploy_lines


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=160, color_system=None), out


def test_the_line_counts_each_outcome_and_names_the_batch() -> None:
    """Seen failing with every status counted as ok, and with stage() not redrawing the line."""
    console, out = _console()
    with LiveProgress(console, "deploy") as live:
        live.stage("wave pilot, batch 2 of 3")
        live.host("ok", 1, 4)
        live.host("failed", 2, 4)
        live.host("unreachable", 3, 4)
        live.host("blocked", 4, 4)  # any other non-ok status counts as failed
        live._progress.refresh()
        drawn = out.getvalue()
    assert "deploy wave pilot, batch 2 of 3" in drawn
    assert "4/4" in drawn
    assert "1 ok, 2 failed, 1 unreachable" in drawn
    assert "hosts/min" in drawn
    summary = live.summary()
    assert summary.startswith("deploy: 4 of 4 hosts in ")
    assert summary.endswith("hosts/min): 1 ok, 2 failed, 1 unreachable")
    # the summary is what stays after the line is gone (erased: cursor up, clear line, summary)
    last = out.getvalue().rstrip().rsplit("\x1b[2K", 1)[-1]
    assert last.startswith("deploy: 4 of 4 hosts in ")
    assert last.endswith("hosts/min): 1 ok, 2 failed, 1 unreachable")


def test_no_summary_when_nothing_ran_or_the_run_raised() -> None:
    console, out = _console()
    with LiveProgress(console, "scan"):
        pass
    assert "scan:" not in out.getvalue()
    console, out = _console()
    try:
        with LiveProgress(console, "scan") as live:
            live.host("ok", 1, 2)
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert "scan: 1 of 2 hosts" not in out.getvalue()


def test_after_a_live_display_only_the_hosts_not_ok_are_listed_unless_verbose() -> None:
    """Seen failing with shows_host() returning True for every host."""
    console, _ = _console()
    live = LiveProgress(console, "scan")
    app = App(overrides={}, json_output=False, quiet=False, debug=False)
    assert app.shows_host("ok", None) and app.shows_host("failed", None)  # no display: every host
    assert not app.shows_host("ok", live)
    assert app.shows_host("unreachable", live)
    verbose = App(overrides={}, json_output=False, quiet=False, debug=False, verbose=True)
    assert verbose.shows_host("ok", live)


def test_deploy_lines_can_leave_out_the_ok_hosts() -> None:
    host = {"installed": [], "failed": {}, "error": None, "reboot_required": False}
    data = {
        "rollout": 3,
        "wave": "fleet",
        "message": None,
        "hosts": [
            {**host, "host": "a", "status": "ok", "installed": ["apt:x:1"]},
            {**host, "host": "b", "status": "failed", "error": "dpkg was interrupted"},
        ],
        "already_done": [],
        "not_started": [],
        "reboots": [],
        "state": "finished",
        "halted_reason": None,
    }
    every = deploy_lines(data)
    assert every[:2] == ["a: ok, installed apt:x:1", "b: failed: dpkg was interrupted"]
    only = deploy_lines(data, only_not_ok=True)
    assert only == ["b: failed: dpkg was interrupted", "rollout 3 wave fleet: finished, 1 ok of 2 run"]
