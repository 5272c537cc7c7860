"""Per execution node throughput: recorded per part of a run (``node_runs``), added up by the view
``v_node_throughput`` and shown by ``patchctl report``, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from patchctl.ansible.fleet import PartStats, merge_parts
from patchctl.errors import StoreError
from patchctl.render.report_csv import report_csv
from patchctl.render.report_json import full_report_json
from patchctl.render.text import full_report_lines
from patchctl.report import full_report
from patchctl.store import Store

T0 = datetime(2024, 6, 28, 10, 0, tzinfo=UTC)
T1 = datetime(2024, 6, 28, 11, 0, tzinfo=UTC)


def _part(node: str, hosts: int, seconds: float, forks: int | None = 16, error: str | None = None) -> dict[str, object]:
    return PartStats(node, hosts, forks, seconds=seconds, cpu_seconds=0.5, error=error).as_dict()


def test_the_view_adds_up_each_node_and_keeps_its_latest_part(db_url: str) -> None:
    with Store.open(db_url) as store:
        first = store.start_run("scan", "inv", None, 50)
        store.record_node_parts(
            "scan",
            first,
            [_part("exec-a", 20, 30.0), _part("exec-b", 20, 60.0), _part("(control node)", 10, 20.0)],
            now=T0,
        )
        second = store.start_run("scan", "inv", None, 40)
        store.record_node_parts(
            "scan",
            second,
            [_part("exec-a", 30, 30.0, forks=8), _part("exec-b", 10, 15.0, error="execution node exec-b: refused")],
            now=T1,
        )
        store.record_node_parts("scan", second, [])  # nothing to record: no row, no error
        with pytest.raises(StoreError, match="unknown node run kind"):
            store.record_node_parts("verify", second, [_part("exec-a", 1, 1.0)])
        rows = {(r["node"], r["kind"]): r for r in store.node_throughput()}
    assert set(rows) == {("exec-a", "scan"), ("exec-b", "scan"), ("(control node)", "scan")}
    a = rows[("exec-a", "scan")]
    assert (a["parts"], a["parts_failed"], a["hosts"]) == (2, 0, 50)
    assert a["seconds"] == pytest.approx(60.0)
    assert a["hosts_per_minute"] == pytest.approx(50.0)  # 50 hosts in 60 s
    assert a["last_hosts"] == 30 and a["last_forks"] == 8
    assert a["last_hosts_per_minute"] == pytest.approx(60.0)
    assert a["last_finished_at"] == T1
    b = rows[("exec-b", "scan")]
    assert (b["parts"], b["parts_failed"], b["hosts"]) == (2, 1, 30)
    assert b["hosts_per_minute"] == pytest.approx(24.0)  # 30 hosts in 75 s
    assert b["last_error"] == "execution node exec-b: refused"

    # patchctl report reads the same view (SQLite: through the standard-library fast path)
    rep = full_report(db_url, None, T1)
    nodes = {(n.node, n.kind): n for n in rep.nodes}
    assert nodes[("exec-a", "scan")].hosts_per_minute == 50.0
    assert nodes[("exec-a", "scan")].last_hosts_per_minute == 60.0
    assert nodes[("exec-b", "scan")].parts_failed == 1
    assert nodes[("(control node)", "scan")].hosts_per_minute == 30.0
    data = full_report_json(rep)
    assert {(n["node"], n["hosts_per_minute"]) for n in data["nodes"]} == {
        ("exec-a", 50.0),
        ("exec-b", 24.0),
        ("(control node)", 30.0),
    }
    table = list(csv.DictReader(io.StringIO(report_csv(rep, "nodes"))))
    assert [r["node"] for r in table] == ["(control node)", "exec-a", "exec-b"]
    assert table[2]["last_error"] == "execution node exec-b: refused"
    lines = full_report_lines(rep)
    assert "# nodes" in lines
    assert any(line.startswith("exec-a\tscan\t2\t0\t50\t") for line in lines)


def test_merge_parts_adds_up_a_deploys_batches_per_node() -> None:
    batches = [
        PartStats("exec-a", 2, 16, seconds=10.0, cpu_seconds=1.0),
        PartStats("(control node)", 1, 3, seconds=8.0, cpu_seconds=2.0),
        PartStats("exec-a", 3, 16, seconds=5.0, cpu_seconds=0.5, error="execution node exec-a: gone"),
    ]
    merged = merge_parts(batches)
    assert [p.node for p in merged] == ["(control node)", "exec-a"]
    a = merged[1]
    assert (a.hosts, a.seconds, a.cpu_seconds, a.forks) == (5, 15.0, 1.5, 16)
    assert a.error == "execution node exec-a: gone"
    assert a.hosts_per_minute == 20.0
