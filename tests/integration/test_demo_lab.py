"""`make demo` (tools/demo.sh): the whole story runs, and what it prints at the end opens what it left.

The demo runs as `make demo` runs it, with its own home and a small lab on PATCHCTL_TEST_SUBNET2
(default 127.79), so the session lab and a user's demo lab on 127.77 stay as they are.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from patchctl.lab.fleet import Lab

from .conftest import stop_stale_labs

pytestmark = [pytest.mark.integration, pytest.mark.lab]

ROOT = Path(__file__).resolve().parents[2]
SUBNET = os.environ.get("PATCHCTL_TEST_SUBNET2", "127.79")
HOSTS = 4  # srv-01 and cli-01 are the pilot; the fleet wave has hosts too


def test_demo_ends_with_exports_that_open_its_store_policy_and_inventory(tmp_path: Path) -> None:
    """The demo exits 0 (its own checks: exit 3 for the early promotion, 0 or 1 for verify), and
    the `export` lines it prints, pasted into a shell that has none of the demo's environment and
    stands in another directory, make `patchctl` read the demo's store (the lab's hosts, in the
    pilot and fleet waves), its policy (the rejected package) and the lab's inventory (the
    servers in lab-nightly); the HTML report it names is there.

    Breaking it: the demo printing the default store instead of $PATCHCTL_DB makes the report
    have no hosts; dropping the PATCHCTL_POLICY line fails the names of the exports (and through
    the others patchctl-demo-broken reads "new", not "rejected"); a relative PATCHCTL_HOME left
    relative makes the exports open an empty store from another directory (the report has no
    hosts); not writing the HTML report fails the last assertions.
    """
    if os.geteuid() != 0:
        pytest.fail("the demo's lab needs root")
    home = tmp_path / "home"
    lab = Lab(lab_dir=home / "lab")
    patchctl = Path(sys.executable).parent / "patchctl"
    assert patchctl.is_file(), f"no patchctl beside {sys.executable}"
    # nothing of patchctl's own configuration leaks in from the test run
    base = {k: v for k, v in os.environ.items() if not k.startswith("PATCHCTL")}
    (tmp_path / "patchctl.yml").write_text("{}\n")
    base["PATCHCTL_CONFIG"] = str(tmp_path / "patchctl.yml")  # an empty one: none of the machine's
    # a relative PATCHCTL_HOME is relative to where the demo runs: the repository's root
    demo_env = dict(base, PATCHCTL=str(patchctl), PATCHCTL_HOME=os.path.relpath(home, ROOT))
    demo_env.update(DEMO_HOSTS=str(HOSTS), DEMO_SUBNET=SUBNET)
    stop_stale_labs(SUBNET)
    try:
        demo = subprocess.run(
            [str(ROOT / "tools" / "demo.sh")],
            cwd=tmp_path,
            env=demo_env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert demo.returncode == 0, f"demo failed:\n{demo.stdout[-3000:]}\n{demo.stderr[-3000:]}"
        ending = demo.stdout.split("== Explore what the demo left", 1)[1]
        exports = [line for line in ending.splitlines() if line.startswith("export ")]
        names = [line.split("=", 1)[0].removeprefix("export ") for line in exports]
        assert [n for n in names if n != "PATH"] == ["PATCHCTL_DB", "PATCHCTL_POLICY", "PATCHCTL_INVENTORY"]
        for command in ("patchctl report", "patchctl updates", "patchctl audit", "patchctl rollout status"):
            assert re.search(rf"^\s+{command}\b", ending, re.MULTILINE), command
        html = re.search(r"^The report as HTML \(open it in a browser\): (\S+)$", ending, re.MULTILINE)
        assert html is not None, ending

        elsewhere = tmp_path / "elsewhere"  # not "/": from there a path "../../x" still reaches /x
        elsewhere.mkdir()

        def pasted(command: str) -> object:
            script = "\n".join([*exports, command])
            proc = subprocess.run(
                ["bash", "-c", script],
                cwd=elsewhere,
                env=base,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert proc.returncode == 0, f"{command}: {proc.stderr}"
            return json.loads(proc.stdout)

        servers = sorted(h.name for h in lab.hosts() if h.role == "server")
        everyone = sorted(h.name for h in lab.hosts())
        assert len(everyone) == HOSTS and servers

        report = pasted("patchctl report --json")
        assert isinstance(report, dict)
        assert sorted(h["name"] for h in report["hosts"]) == everyone
        assert {h["wave"] for h in report["hosts"]} == {"pilot", "fleet"}

        updates = pasted("patchctl updates --json")
        assert isinstance(updates, list)
        assert {u["name"]: u["state"] for u in updates}["patchctl-demo-broken"] == "rejected"

        windows = pasted("patchctl windows --json")
        assert isinstance(windows, dict)
        assert {w["name"]: sorted(w["hosts"]) for w in windows["windows"]}["lab-nightly"] == servers

        page = Path(html.group(1))
        assert page.is_absolute() and page.parent == home
        text = page.read_text(encoding="utf-8")
        assert text.startswith("<!DOCTYPE html>")
        assert all(name in text for name in everyone)
    finally:
        lab.down()
    assert lab.leftovers() == []
