"""Temporary: captures the text output of the repilot scenario for docs/waves-and-successors.md."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from .conftest import LabEnv
from .test_lineage_lab import lineage_lab, start  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.lab]
OUT = Path("/tmp/lineage-doc-capture.txt")


def test_capture(lineage_lab: LabEnv, tmp_path: Path) -> None:  # noqa: F811
    lines: list[str] = []
    run, later = start(lineage_lab, tmp_path, "repilot", "1.9-1", "1.10-1")
    lines += ["### policy", run.policy.read_text()]

    def show(*args: str, now=None) -> None:
        res = run(*args, now=now, code=None)
        lines.extend([f"### patchctl {' '.join(args)}  (now={now}) exit {res.code}", res.stdout, res.stderr])

    show("rollout", "promote", "--deploy", now=later)
    show("rollout", "status", now=later)
    show("rollout", "status", "1", now=later)
    show("verify", now=later)
    show("report", "--json", now=later)
    show("audit", "--rollout", "1")
    show("rollout", "promote", "--deploy", now=later)
    show("rollout", "promote", now=later + timedelta(days=1))
    show("rollout", "promote", "--deploy", now=later + timedelta(days=3))
    show("rollout", "status", now=later + timedelta(days=3))
    for h in (run.pilot, *run.fleet):
        lines.append(f"{h}: {run.version(h)}")
    OUT.write_text("\n".join(lines))
