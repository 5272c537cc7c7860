"""The live progress display, seen in a real terminal: patchctl scan runs in a tmux pane.

tmux gives the command a real pseudo-terminal; its raw output (``pipe-pane``) shows the redrawn
progress line, and the pane's screen afterwards (``capture-pane``) is what the operator is left
with: the summary, then only the hosts that were not ok.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path

import yaml

from .conftest import LabEnv

GHOST = "ghost-01"  # an inventory host nothing answers for (127.0.0.1, port 9): unreachable


def _tmux(sock: str, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["tmux", "-L", sock, "-f", "/dev/null", *args], capture_output=True, text=True, env=env, check=True, timeout=30
    )
    return done.stdout


def test_scan_on_a_terminal_redraws_one_line_then_lists_only_the_hosts_not_ok(lab_env: LabEnv, tmp_path: Path) -> None:
    """Seen failing with the display disabled (App.live returning None: every host listed, no
    redrawn line) and with the display not transient (its last frame stayed on the screen)."""
    inventory = yaml.safe_load(lab_env.inventory.read_text())
    hosts = inventory["all"]["hosts"]
    first = sorted(hosts)[0]
    hosts[GHOST] = {**hosts[first], "ansible_host": "127.0.0.1", "ansible_port": 9}
    inv = tmp_path / "inventory.yml"
    inv.write_text(yaml.safe_dump(inventory))
    go, raw = tmp_path / "go", tmp_path / "raw.log"
    cmd = [sys.executable, "-m", "patchctl", "--db", f"sqlite:///{tmp_path / 'tty.db'}", "-i", str(inv), "scan"]
    script = tmp_path / "run.sh"
    script.write_text(
        f"while [ ! -e {shlex.quote(str(go))} ]; do sleep 0.1; done\n"
        f"{shlex.join(cmd)}\necho \"exit=$?\"\nsleep 600\n"
    )
    sock = f"patchctl-test-{tmp_path.name}"
    env = {**lab_env.env, "TERM": "xterm-256color"}
    _tmux(sock, "new-session", "-d", "-x", "150", "-y", "40", "-s", "p", f"bash {shlex.quote(str(script))}", env=env)
    try:
        _tmux(sock, "pipe-pane", "-t", "p", "-o", f"cat >> {shlex.quote(str(raw))}")
        go.touch()
        deadline = time.monotonic() + 300
        screen = ""
        while time.monotonic() < deadline:
            screen = _tmux(sock, "capture-pane", "-p", "-t", "p")
            if "exit=" in screen:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"scan did not finish in the pane:\n{screen}")
    finally:
        subprocess.run(["tmux", "-L", sock, "kill-server"], capture_output=True, check=False)
    drawn = raw.read_bytes().decode("utf-8", "replace")
    total = len(hosts)
    ok = total - 1
    # while it ran: one line, redrawn in place (carriage return + erase line), with the counts
    assert "\r\x1b[2K" in drawn, drawn[:2000]
    assert f"{total}/{total}" in drawn
    assert f"{ok} ok, 0 failed, 1 unreachable" in drawn
    # what stays on the screen: the summary, the host that was not ok, the final count; no ok host
    lines = [line.rstrip() for line in screen.splitlines() if line.strip()]
    assert "exit=1" in lines, screen
    summary = [line for line in lines if line.startswith(f"scan: {total} of {total} hosts in ")]
    assert summary and summary[0].endswith(f"hosts/min): {ok} ok, 0 failed, 1 unreachable"), screen
    assert any(line.startswith(f"{GHOST}: unreachable") for line in lines), screen
    assert not any(line.startswith(f"{h}:") for h in hosts if h != GHOST for line in lines), screen
    assert any(line.endswith(f"{ok} ok, 0 failed, 1 unreachable of {total}") for line in lines), screen
    assert "━" not in screen  # the bar went away with the run
