"""Shell completion (click's own): command names, options, and --limit from the inventory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

INVENTORY = """\
all:
  children:
    web:
      hosts:
        web-01: {}
        web-02: {}
    db:
      hosts:
        db-01: {}
"""


def complete(words: str, env: dict[str, str] | None = None) -> list[str]:
    """What bash's completion gets for the command line ``words`` (the cursor after the last)."""
    parts = words.split(" ")
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("PATCHCTL_")}
    run_env.update(env or {})
    run_env.update(COMP_WORDS=words, COMP_CWORD=str(len(parts) - 1), _PATCHCTL_COMPLETE="bash_complete")
    done = subprocess.run(
        [sys.executable, "-c", "from patchctl.cli import main; main()"],
        capture_output=True, text=True, env=run_env, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return [line.split(",", 1)[1] for line in done.stdout.splitlines() if "," in line]


def test_command_names_and_options() -> None:
    assert complete("patchctl sc") == ["scan", "schedule"]
    assert "--limit" in complete("patchctl scan --l")


def test_limit_completes_host_and_group_names_of_the_inventory(tmp_path: Path) -> None:
    """Seen failing without the limit option's shell_complete (nothing offered)."""
    inv = tmp_path / "inventory.yml"
    inv.write_text(INVENTORY)
    assert complete(f"patchctl -i {inv} scan --limit w") == ["web", "web-01", "web-02"]
    # the last term of a union, with an exclusion
    assert complete(f"patchctl -i {inv} verify -l web-01,!d") == ["web-01,!db", "web-01,!db-01"]
    # the inventory the environment names
    assert complete("patchctl reboot --limit db", {"PATCHCTL_INVENTORY": str(inv)}) == ["db", "db-01"]


def test_an_unreadable_inventory_offers_nothing_and_prints_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yml"
    bad.write_text("all: [\n")
    assert complete(f"patchctl -i {bad} scan --limit w") == []


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_each_shell_gets_its_script(shell: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from patchctl.cli import main; main()"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "_PATCHCTL_COMPLETE": f"{shell}_source"},
    )
    assert done.returncode == 0, done.stderr
    assert "_PATCHCTL_COMPLETE" in done.stdout
