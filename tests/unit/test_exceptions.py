"""Exceptions (``patchctl except``, table ``update_exceptions``): the rule, and the commands
through the real store on SQLite and PostgreSQL, read back by ``patchctl report`` and the audit
trail. An exception ends by itself exactly at ``--until``."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from click.testing import CliRunner
from rich.console import Console

from patchctl.cli import cli
from patchctl.render.text import full_report_tables
from patchctl.report import full_report
from patchctl.rules.compliance import COMPLIANT, MISSING
from patchctl.rules.exceptions import MissingOnHost, UpdateException, excepted, excepted_on_host, state_label
from patchctl.rules.model import Update
from patchctl.store import Store
from tests.unit.test_store import T0, ok_scan

UNTIL = T0 + timedelta(days=5)


def exc(target: str = "web01", pattern: str = "openssl", **kw: Any) -> UpdateException:
    base: dict[str, Any] = {
        "id": 1,
        "target": target,
        "pattern": pattern,
        "reason": "vendor certifies 3.0 only",
        "owner": "ops",
        "until": UNTIL,
        "created_at": T0,
        "created_by": "alice",
    }
    return UpdateException(**{**base, **kw})


# --- the rule ----------------------------------------------------------------------------------------


def test_an_exception_ends_exactly_at_until() -> None:
    """Valid from its making up to the microsecond before --until; at --until it has ended.
    Seen failing with valid_at's ``now < until`` made ``<=``: valid at UNTIL itself."""
    e = exc()
    assert not e.valid_at(T0 - timedelta(microseconds=1))
    assert e.valid_at(T0)
    assert e.valid_at(UNTIL - timedelta(microseconds=1))
    assert not e.valid_at(UNTIL)
    removed = exc(ended_at=T0 + timedelta(days=1), end_reason="removed")
    assert removed.valid_at(T0 + timedelta(hours=23)) and not removed.valid_at(T0 + timedelta(days=1))


def test_hosts_groups_and_update_patterns() -> None:
    e = exc(target="web*", pattern="LIBSSL*")
    assert e.covers_host("web01", ()) and e.covers_host("db01", ("web-backends",))
    assert not e.covers_host("db01", ("pilot",))
    assert e.covers_update("apt:libssl3:3.0.15-1", "libssl3")  # name, any case
    assert exc(pattern="KB5034441").covers_update("windows:abc", "Security update", ("kb5034441",))
    assert exc(pattern="apt:openssl:*").covers_update("apt:openssl:3.0.15-1", "openssl")
    missing = [
        MissingOnHost("web01", ("web",), "apt:openssl:3", "openssl"),
        MissingOnHost("web01", ("web",), "apt:curl:8", "curl"),
        MissingOnHost("web02", ("web",), "apt:openssl:3", "openssl"),
    ]
    assert excepted([exc()], missing, T0 + timedelta(days=1)) == {"web01": {"apt:openssl:3": 1}}
    assert excepted([exc()], missing, UNTIL) == {}
    kept = excepted_on_host([exc(target="web")], "web02", ("web",), [("apt:openssl:3", "openssl", ())])
    assert list(kept) == ["apt:openssl:3"]
    assert state_label(COMPLIANT, 2) == "compliant (2 excepted)"
    assert state_label(MISSING, 0) == "missing"


# --- the commands, the store and the report ----------------------------------------------------------


def scan(db_url: str, at_days: float) -> None:
    """web01 misses openssl and curl; web02 misses openssl (both in group web; no decision was
    ever made, so every missing update counts)."""
    at = T0 + timedelta(days=at_days)
    with Store.open(db_url) as store:
        run = store.start_run("scan", "inv", None, 2, now=at)
        both = [Update("apt", "openssl", "3.0.15-1", "security"), Update("apt", "curl", "7.88.1-10", "security")]
        store.record_host_scan(run, ok_scan("web01", at, both))
        store.record_host_scan(run, ok_scan("web02", at, both[:1]))
        store.finish_run(run, "ok", now=at)


def run(db_url: str, days: float, *args: str) -> Any:
    now = (T0 + timedelta(days=days)).isoformat()
    return CliRunner().invoke(cli, ["--db", db_url, "--now", now, *args])


def report(db_url: str, days: float) -> dict[str, Any]:
    result = run(db_url, days, "report", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert isinstance(data, dict)
    return data


def states(data: dict[str, Any]) -> dict[str, str]:
    return {h["name"]: h["state"] for h in data["hosts"]}


def test_exceptions_keep_hosts_compliant_until_they_expire(db_url: str) -> None:
    """web01's openssl and curl excepted (by host and by group) until day 5: web01 reads
    ``compliant (2 excepted)``; web02 stays missing (the host exception is not its). At day 5
    exactly both end by themselves: web01 is missing again, and the next writing command records
    the expiries in the audit trail at day 5, by patchctl.
    Seen failing with excepted_now returning nothing (web01 missing at day 2), and with
    compliance_state ignoring ``excepted`` (the same)."""
    scan(db_url, 0)
    assert states(report(db_url, 0.5)) == {"web01": MISSING, "web02": MISSING}
    added = run(
        db_url,
        1,
        "except",
        "add",
        "web01",
        "openssl",
        "--reason",
        "vendor",
        "--owner",
        "ops",
        "--until",
        UNTIL.isoformat(),
    )
    assert added.exit_code == 0, added.output
    assert added.output.startswith("exception 1: openssl on web01 until 2024-06-06T10:00:00Z (owner ops)")
    group = run(
        db_url,
        1,
        "except",
        "add",
        "web",
        "curl",
        "--reason",
        "pinned",
        "--owner",
        "app-team",
        "--until",
        "2024-06-06T10:00:00Z",
    )
    assert group.exit_code == 0, group.output

    data = report(db_url, 2)
    assert states(data) == {"web01": COMPLIANT, "web02": MISSING}
    web01 = next(h for h in data["hosts"] if h["name"] == "web01")
    assert web01["excepted"] == ["apt:curl:7.88.1-10", "apt:openssl:3.0.15-1"]
    assert [(e["id"], e["owner"], e["covers"]) for e in data["exceptions"]] == [
        (1, "ops", {"web01": ["apt:openssl:3.0.15-1"]}),
        (2, "app-team", {"web01": ["apt:curl:7.88.1-10"]}),
    ]
    plain = run(db_url, 2, "report").output.split("\n\n")
    section = "# exceptions\nid\ttarget\tpattern\towner\tuntil\treason\thosts\tupdates\n1\tweb01\topenssl\tops\t"
    assert any(p.startswith(section) for p in plain), plain
    console = Console(record=True, width=200)
    for table in full_report_tables(full_report(db_url, None, T0 + timedelta(days=2))):
        console.print(table)
    terminal = console.export_text()
    assert "compliant (2 excepted)" in terminal and "Exceptions in force" in terminal
    listed = run(db_url, 2, "except", "list")
    assert listed.exit_code == 0
    assert listed.output.splitlines()[:2] == [
        "1: openssl on web01, owner ops, until 2024-06-06T10:00:00Z: vendor",
        "  web01: apt:openssl:3.0.15-1",
    ]

    # a microsecond before --until it holds; at --until it has ended by itself
    just_before = (UNTIL - timedelta(microseconds=1) - T0).total_seconds() / 86400
    assert states(report(db_url, just_before))["web01"] == COMPLIANT
    at_until = report(db_url, 5)
    assert states(at_until) == {"web01": MISSING, "web02": MISSING}
    assert at_until["exceptions"] == []

    assert run(db_url, 6, "except", "list").output == "no exceptions in force\n"
    audit = run(db_url, 6, "audit", "--json")
    assert audit.exit_code == 0, audit.output
    events = [(e["action"], e["actor"], e["at"]) for e in json.loads(audit.output) if "exception" in e["action"]]
    assert events[2:] == [
        ("exception expired", "patchctl", "2024-06-06T10:00:00Z"),
        ("exception expired", "patchctl", "2024-06-06T10:00:00Z"),
    ]
    assert [a for a, _, _ in events[:2]] == ["exception added", "exception added"]


def test_an_exception_without_until_is_refused_and_nothing_is_written(db_url: str) -> None:
    """One line, exit 2, no row. Seen failing with the --until check removed (a row written)."""
    scan(db_url, 0)
    refused = run(db_url, 1, "except", "add", "web01", "openssl", "--reason", "r", "--owner", "ops")
    assert refused.exit_code == 2
    assert refused.output == (
        "patchctl: error: except add: --until is required (an exception always ends: e.g. --until 2027-01-31)\n"
    )
    past = run(
        db_url, 1, "except", "add", "web01", "openssl", "--reason", "r", "--owner", "ops", "--until", "2024-06-01"
    )
    assert past.exit_code == 2 and "--until: '2024-06-01' is not in the future" in past.output
    assert run(db_url, 1, "except", "list", "--all").output == "no exceptions\n"


def test_remove_ends_an_exception_now(db_url: str) -> None:
    scan(db_url, 0)
    run(db_url, 1, "except", "add", "web01", "*", "--reason", "r", "--owner", "ops", "--until", "2024-07-01")
    assert states(report(db_url, 1.5))["web01"] == COMPLIANT
    removed = run(db_url, 2, "except", "remove", "1")
    assert removed.exit_code == 0, removed.output
    assert states(report(db_url, 2))["web01"] == MISSING
    again = run(db_url, 3, "except", "remove", "1")
    assert again.exit_code == 2 and "exception 1 has already ended (removed)" in again.output
    listed = run(db_url, 3, "except", "list", "--all")
    assert "ended 2024-06-03T10:00:00Z (removed)" in listed.output
