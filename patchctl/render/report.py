"""Presenting a :class:`patchctl.rules.report.FleetReport`: a rich table, plain text lines, JSON.

Nothing here prints: the CLI decides where the output goes (a rich table on a terminal,
:func:`report_lines` when stdout is not a TTY, :func:`report_json` for ``--json``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.table import Table
from rich.text import Text

from patchctl.rules.clock import iso_utc
from patchctl.rules.compliance import (
    COMPLIANT,
    FAILED,
    MISSING,
    NEVER_SCANNED,
    REBOOT_PENDING,
    STALE,
    STATES,
    UNREACHABLE,
)
from patchctl.rules.model import CLASSIFICATIONS, HOST_FAILED, HOST_OK, HOST_UNREACHABLE
from patchctl.rules.report import (
    HISTORY_STATES,
    FleetReport,
    HostReport,
    MissingCounts,
    Report,
    WaveSummary,
)

REPORT_JSON_SCHEMA = "patchctl.report/1"

_REACH_STYLE = {
    HOST_OK: "green",
    HOST_FAILED: "red",
    HOST_UNREACHABLE: "red",
}



def _short_time(value: datetime | None) -> str:
    if value is None:
        return "-"
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M UTC")


def _reach_word(reachability: str) -> str:
    return reachability.replace("_", " ")


def _missing_json(m: MissingCounts) -> dict[str, Any]:
    return {"total": m.total, "major": m.major, "by_classification": dict(m.by_class)}


def _host_json(h: HostReport) -> dict[str, Any]:
    return {
        "name": h.name,
        "os": h.os or None,
        "pkg_mgr": h.pkg_mgr,
        "patch_role": h.patch_role,
        "last_scan_at": iso_utc(h.last_scan_at),
        "reachability": h.reachability,
        "error": h.error,
        "reboot_pending": h.reboot_pending,
        "missing": _missing_json(h.missing),
    }


def report_json(report: FleetReport) -> dict[str, Any]:
    """The report as a JSON-able dict. The keys are stable; new keys may be added.

    ::

        {
          "schema": "patchctl.report/1",
          "generated_at": "2024-06-01T10:00:00Z",
          "hosts": [                                    # sorted by name
            {
              "name": "web01",
              "os": "Debian 12" | null,                 # null when never learned
              "pkg_mgr": "apt" | null,
              "patch_role": "server" | "client" | null,
              "last_scan_at": "2024-06-01T09:58:12Z" | null,
              "reachability": "ok" | "failed" | "unreachable" | "never_scanned",
              "error": "..." | null,                    # only when failed/unreachable
              "reboot_pending": false,
              "missing": {
                "total": 3,
                "major": 1,
                "by_classification": {"security": 1, "critical": 0, "bugfix": 2, ...}
              }
            }
          ],
          "totals": {
            "hosts": 1,
            "reachability": {"ok": 1, "failed": 0, "unreachable": 0, "never_scanned": 0},
            "hosts_with_missing": 1,
            "reboot_pending": 0,
            "missing": {"total": 3, "major": 1, "by_classification": {...}}
          }
        }

    ``by_classification`` always holds every classification of
    :data:`patchctl.rules.model.CLASSIFICATIONS`, in that order. Timestamps are ISO 8601 UTC.
    """
    t = report.totals
    return {
        "schema": REPORT_JSON_SCHEMA,
        "generated_at": iso_utc(report.generated_at),
        "hosts": [_host_json(h) for h in report.hosts],
        "totals": {
            "hosts": t.hosts,
            "reachability": dict(t.by_reachability),
            "hosts_with_missing": t.hosts_with_missing,
            "reboot_pending": t.reboot_pending,
            "missing": _missing_json(t.missing),
        },
    }


def _count_cell(n: int, style: str) -> Text:
    return Text(str(n), style=style if n else "dim")


def report_table(report: FleetReport, extra: Mapping[str, Callable[[HostReport], Text | str]] | None = None) -> Table:
    """A rich table: one row per host, the totals in the footer; ``extra`` adds columns."""
    t = report.totals
    reach_summary = ", ".join(f"{n} {_reach_word(r)}" for r, n in t.by_reachability.items() if n)
    table = Table(
        title="Patch compliance",
        caption=f"generated {_short_time(report.generated_at)}",
        show_footer=bool(report.hosts),
    )
    table.add_column("Host", footer=f"{t.hosts} hosts", no_wrap=True)
    table.add_column("OS", footer="")
    table.add_column("Last scan", footer="", no_wrap=True)
    table.add_column("Reachability", footer=reach_summary)
    table.add_column("Missing", justify="right", footer=str(t.missing.total))
    table.add_column("Security", justify="right", footer=str(t.missing.security))
    table.add_column("Critical", justify="right", footer=str(t.missing.critical))
    table.add_column("Other", justify="right", footer=str(t.missing.others))
    table.add_column("Major", justify="right", footer=str(t.missing.major))
    table.add_column("Reboot", footer=f"{t.reboot_pending} pending")
    for title in extra or {}:
        table.add_column(title, footer="")
    for h in report.hosts:
        reach = Text(_reach_word(h.reachability), style=_REACH_STYLE.get(h.reachability, "dim"))
        if h.error:
            reach.append(f" ({h.error})", style="dim")
        table.add_row(
            h.name,
            h.os or "-",
            _short_time(h.last_scan_at),
            reach,
            _count_cell(h.missing.total, "bold"),
            _count_cell(h.missing.security, "red"),
            _count_cell(h.missing.critical, "red"),
            _count_cell(h.missing.others, ""),
            _count_cell(h.missing.major, "yellow"),
            Text("pending", style="yellow") if h.reboot_pending else Text("-", style="dim"),
            *(cell(h) for cell in (extra or {}).values()),
        )
    return table


_LINE_FIELDS = (
    "host",
    "os",
    "last_scan",
    "reachability",
    "missing",
    "security",
    "critical",
    "other",
    "major",
    "reboot",
)


def _clean(value: str) -> str:
    return value.replace("\t", " ").replace("\n", " ") or "-"


def report_lines(report: FleetReport) -> list[str]:
    """Plain text for pipes and logs: a header, one tab-separated line per host, a total line.

    Columns: host, os, last_scan (ISO UTC or ``-``), reachability, missing, security,
    critical, other (neither security nor critical), major, reboot (``pending`` or ``-``).
    Empty values are ``-``; the last line starts with ``TOTAL``.
    """
    lines = ["\t".join(_LINE_FIELDS)]
    for h in report.hosts:
        m = h.missing
        cells = [
            h.name,
            h.os,
            iso_utc(h.last_scan_at) or "",
            h.reachability,
            str(m.total),
            str(m.security),
            str(m.critical),
            str(m.others),
            str(m.major),
            "pending" if h.reboot_pending else "",
        ]
        lines.append("\t".join(_clean(c) for c in cells))
    t = report.totals
    reach = ",".join(f"{r}={n}" for r, n in t.by_reachability.items())
    total_cells = [
        f"TOTAL {t.hosts} hosts",
        "",
        "",
        reach,
        str(t.missing.total),
        str(t.missing.security),
        str(t.missing.critical),
        str(t.missing.others),
        str(t.missing.major),
        f"{t.reboot_pending} pending",
    ]
    lines.append("\t".join(_clean(c) for c in total_cells))
    return lines


# --- the full report (patchctl report): JSON, rich tables, plain lines, CSV --------------------


def _age_hours(age: timedelta | None) -> float | None:
    return None if age is None else round(age.total_seconds() / 3600, 1)


def _age_text(age: timedelta | None) -> str:
    if age is None:
        return "-"
    hours = age.total_seconds() / 3600
    return f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.1f} d"


def _wave_json(w: WaveSummary) -> dict[str, Any]:
    r = w.row
    return {
        "wave": r.wave,
        "position": r.position,
        "state": r.state,
        "hosts": list(r.hosts),
        "hosts_total": r.hosts_total,
        "hosts_ok": r.hosts_ok,
        "hosts_failed": r.hosts_failed,
        "hosts_unreachable": r.hosts_unreachable,
        "hosts_pending": r.hosts_pending,
        "started_at": iso_utc(r.started_at),
        "finished_at": iso_utc(r.finished_at),
        "bake_days": r.bake_days,
        "bake_until": iso_utc(w.bake_until),
        "halted_reason": r.halted_reason,
        "by_state": dict(w.by_state),
    }


def full_report_json(rep: Report) -> dict[str, Any]:
    """``patchctl report --json``: :func:`report_json` of the fleet, with more keys.

    Every key of ``patchctl.report/1`` stays as :func:`report_json` documents it; each host
    also gets ``state`` and ``wave``, and the document gets::

        "stale_days": 7,
        "compliance": {
          "percent": 50.0,                                   # compliant hosts / hosts
          "by_state": {"compliant": 1, "missing": 1, "reboot_pending": 0, "failed": 0,
                       "unreachable": 0, "stale": 0, "never_scanned": 0},
          "by_role": {"server": {<state>: n, ...}, "client": {...}, "none": {...}},
          "by_wave": [{"wave": "pilot", "position": 0, "state": "finished",
                       "hosts": ["web01"], "hosts_total": 1, "hosts_ok": 1, "hosts_failed": 0,
                       "hosts_unreachable": 0, "hosts_pending": 0, "started_at": ...,
                       "finished_at": ..., "bake_days": 7.0, "bake_until": ...,
                       "halted_reason": null, "by_state": {<state>: n, ...}}]
        },
        "rollout_id": 3 | null,                              # the rollout by_wave describes
        "top_missing": [{"uid": "apt:openssl:3.0.13", "source": "apt", "name": "openssl",
                         "version": "3.0.13", "classification": "security", "severity": null,
                         "major": false, "cves": [], "hosts": 2}],
        "pending_reboots": [{"host": "web01", "patch_role": "server", "patch_window": "sun-02",
                             "since": "2024-06-01T10:00:00Z", "age_hours": 2.0}],
        "failures": [{"host": "db01", "stage": "scan" | "deploy", "status": "unreachable",
                      "reason": "timed out", "at": ..., "rollout_id": null, "wave": null}],
        "history": [{"run_id": 1, "at": ..., "hosts": 3, "compliant_percent": 33.3,
                     "missing_total": 6, "by_state": {<state but never_scanned>: n}}],
        "nodes": [{"node": "exec-paris-01" | "(control node)", "kind": "scan" | "deploy",
                   "parts": 4, "parts_failed": 0, "hosts": 120, "seconds": 95.2,
                   "hosts_per_minute": 75.6, "last_hosts": 30, "last_hosts_per_minute": 80.1,
                   "last_forks": 16, "last_error": null, "last_finished_at": ...}]
    """
    data = report_json(rep.fleet)
    for host in data["hosts"]:
        host["state"] = rep.states.get(host["name"])
        host["wave"] = rep.waves_of.get(host["name"])
    data["stale_days"] = rep.stale_days
    data["compliance"] = {
        "percent": rep.compliant_percent,
        "by_state": dict(rep.by_state),
        "by_role": {role: dict(c) for role, c in rep.by_role.items()},
        "by_wave": [_wave_json(w) for w in rep.waves],
    }
    data["rollout_id"] = rep.rollout_id
    data["top_missing"] = [
        {
            "uid": m.uid,
            "source": m.source,
            "name": m.name,
            "version": m.version,
            "classification": m.classification,
            "severity": m.severity,
            "major": m.major,
            "cves": list(m.cves),
            "hosts": m.hosts,
        }
        for m in rep.top_missing
    ]
    data["pending_reboots"] = [
        {
            "host": r.host,
            "patch_role": r.patch_role,
            "patch_window": r.patch_window,
            "since": iso_utc(r.since),
            "age_hours": _age_hours(r.age),
        }
        for r in rep.pending_reboots
    ]
    data["failures"] = [
        {
            "host": f.host,
            "stage": f.stage,
            "status": f.status,
            "reason": f.reason,
            "at": iso_utc(f.at),
            "rollout_id": f.rollout_id,
            "wave": f.wave,
        }
        for f in rep.failures
    ]
    data["history"] = [
        {
            "run_id": p.run_id,
            "at": iso_utc(p.at),
            "hosts": p.hosts,
            "compliant_percent": p.compliant_percent,
            "missing_total": p.missing_total,
            "by_state": dict(p.by_state),
        }
        for p in rep.history
    ]
    data["nodes"] = [
        {
            "node": n.node,
            "kind": n.kind,
            "parts": n.parts,
            "parts_failed": n.parts_failed,
            "hosts": n.hosts,
            "seconds": n.seconds,
            "hosts_per_minute": n.hosts_per_minute,
            "last_hosts": n.last_hosts,
            "last_hosts_per_minute": n.last_hosts_per_minute,
            "last_forks": n.last_forks,
            "last_error": n.last_error,
            "last_finished_at": iso_utc(n.last_finished_at),
        }
        for n in rep.nodes
    ]
    return data


def _state_word(state: str) -> str:
    return state.replace("_", " ")


_STATE_STYLE = {
    COMPLIANT: "green",
    MISSING: "yellow",
    REBOOT_PENDING: "yellow",
    FAILED: "red",
    UNREACHABLE: "red",
    STALE: "magenta",
    NEVER_SCANNED: "dim",
}


def full_report_tables(rep: Report) -> list[Table]:
    """The rich tables of ``patchctl report`` on a terminal, in order."""
    out: list[Table] = []
    summary = Table(title=f"Compliance: {rep.compliant_percent:g}% of {rep.fleet.totals.hosts} hosts compliant")
    summary.add_column("State")
    summary.add_column("Hosts", justify="right")
    roles = list(rep.by_role)
    for role in roles:
        summary.add_column(role, justify="right")
    for state in STATES:
        summary.add_row(
            Text(_state_word(state), style=_STATE_STYLE[state]),
            str(rep.by_state.get(state, 0)),
            *(str(rep.by_role[r].get(state, 0)) for r in roles),
        )
    out.append(summary)
    if rep.waves:
        waves = Table(title=f"Rollout {rep.rollout_id}: waves")
        for col in ("Wave", "State", "Hosts", "OK", "Failed", "Unreachable", "Pending", "Bake until", "Compliant"):
            waves.add_column(col, justify="right" if col not in ("Wave", "State", "Bake until") else "left")
        for w in rep.waves:
            r = w.row
            waves.add_row(
                r.wave,
                r.state + (f" ({r.halted_reason})" if r.halted_reason else ""),
                str(r.hosts_total),
                str(r.hosts_ok),
                str(r.hosts_failed),
                str(r.hosts_unreachable),
                str(r.hosts_pending),
                _short_time(w.bake_until),
                f"{w.by_state.get(COMPLIANT, 0)}/{len(r.hosts)}",
            )
        out.append(waves)

    def state_cell(h: HostReport) -> Text:
        state = rep.states.get(h.name, NEVER_SCANNED)
        return Text(_state_word(state), style=_STATE_STYLE.get(state, ""))

    extra: dict[str, Callable[[HostReport], Text | str]] = {"State": state_cell}
    if rep.waves_of:
        extra["Wave"] = lambda h: rep.waves_of.get(h.name, "-")
    out.append(report_table(rep.fleet, extra))
    if rep.top_missing:
        top = Table(title="Most widespread missing updates")
        for col in ("Update", "Version", "Class", "Major", "Hosts"):
            top.add_column(col, justify="right" if col == "Hosts" else "left")
        for m in rep.top_missing:
            top.add_row(
                f"{m.source}:{m.name}", m.version, m.classification, "yes" if m.major else "", str(m.hosts)
            )
        out.append(top)
    if rep.pending_reboots:
        reboots = Table(title="Pending reboots")
        for col in ("Host", "Role", "Window", "Since", "Age"):
            reboots.add_column(col)
        for pr in rep.pending_reboots:
            reboots.add_row(
                pr.host, pr.patch_role or "-", pr.patch_window or "-", _short_time(pr.since), _age_text(pr.age)
            )
        out.append(reboots)
    if rep.failures:
        failures = Table(title="Failures")
        for col in ("Host", "Stage", "Status", "Reason", "When"):
            failures.add_column(col)
        for f in rep.failures:
            stage = f.stage if f.wave is None else f"{f.stage} ({f.wave})"
            failures.add_row(f.host, stage, Text(f.status, style="red"), f.reason, _short_time(f.at))
        out.append(failures)
    if rep.history:
        hist = Table(title="Compliance over time (by scan run)")
        for col in ("Run", "When", "Hosts", "Compliant %", "Missing updates", *map(_state_word, HISTORY_STATES[1:])):
            hist.add_column(col, justify="left" if col == "When" else "right")
        for p in rep.history:
            hist.add_row(
                str(p.run_id),
                _short_time(p.at),
                str(p.hosts),
                f"{p.compliant_percent:g}",
                str(p.missing_total),
                *(str(p.by_state.get(s, 0)) for s in HISTORY_STATES[1:]),
            )
        out.append(hist)
    if rep.nodes:
        nodes = Table(title="Throughput per execution node")
        for col in ("Node", "Kind", "Runs", "Hosts", "Hosts/min", "Last: hosts", "Last: hosts/min", "Forks", "Last"):
            nodes.add_column(col, justify="left" if col in ("Node", "Kind", "Last") else "right")
        for n in rep.nodes:
            nodes.add_row(
                n.node,
                n.kind,
                str(n.parts) + (f" ({n.parts_failed} failed)" if n.parts_failed else ""),
                str(n.hosts),
                _rate(n.hosts_per_minute),
                str(n.last_hosts),
                _rate(n.last_hosts_per_minute),
                "-" if n.last_forks is None else str(n.last_forks),
                Text(n.last_error, style="red") if n.last_error else _short_time(n.last_finished_at),
            )
        out.append(nodes)
    return out


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _row(cells: Iterable[object]) -> str:
    return "\t".join(_clean("" if c is None else str(c)) for c in cells)


CSV_SECTIONS = ("hosts", "missing", "reboots", "failures", "history", "waves", "summary", "nodes")


def section_rows(rep: Report, section: str) -> tuple[list[str], list[list[object]]]:
    """One section of the report as a header and rows of plain values (CSV and plain lines)."""
    if section == "hosts":
        header = [
            "host",
            "os",
            "patch_role",
            "wave",
            "state",
            "last_scan",
            "reachability",
            "missing",
            *(f"missing_{c}" for c in CLASSIFICATIONS),
            "major",
            "reboot_pending",
            "error",
        ]
        hosts_rows: list[list[object]] = [
            [
                h.name,
                h.os,
                h.patch_role or "",
                rep.waves_of.get(h.name, ""),
                rep.states.get(h.name, NEVER_SCANNED),
                iso_utc(h.last_scan_at) or "",
                h.reachability,
                h.missing.total,
                *(h.missing.by_class.get(c, 0) for c in CLASSIFICATIONS),
                h.missing.major,
                "yes" if h.reboot_pending else "no",
                h.error or "",
            ]
            for h in rep.fleet.hosts
        ]
        return header, hosts_rows
    if section == "summary":
        roles = list(rep.by_role)
        return ["state", "hosts", *roles], [
            [s, rep.by_state.get(s, 0), *(rep.by_role[r].get(s, 0) for r in roles)] for s in STATES
        ]
    if section == "missing":
        return ["uid", "source", "name", "version", "classification", "major", "hosts"], [
            [
                m.uid,
                m.source,
                m.name,
                m.version,
                m.classification,
                "yes" if m.major else "no",
                m.hosts,
            ]
            for m in rep.top_missing
        ]
    if section == "reboots":
        return ["host", "patch_role", "patch_window", "since", "age_hours"], [
            [r.host, r.patch_role or "", r.patch_window or "", iso_utc(r.since) or "", _age_hours(r.age)]
            for r in rep.pending_reboots
        ]
    if section == "failures":
        return ["host", "stage", "status", "reason", "at", "rollout_id", "wave"], [
            [f.host, f.stage, f.status, f.reason, iso_utc(f.at) or "", f.rollout_id, f.wave] for f in rep.failures
        ]
    if section == "history":
        return ["run_id", "at", "hosts", "compliant_percent", "missing_total", *HISTORY_STATES], [
            [
                p.run_id,
                iso_utc(p.at),
                p.hosts,
                p.compliant_percent,
                p.missing_total,
                *(p.by_state.get(s, 0) for s in HISTORY_STATES),
            ]
            for p in rep.history
        ]
    if section == "waves":
        return [
            "rollout_id",
            "position",
            "wave",
            "state",
            "hosts_total",
            "hosts_ok",
            "hosts_failed",
            "hosts_unreachable",
            "hosts_pending",
            "bake_until",
            "compliant_hosts",
        ], [
            [
                w.row.rollout_id,
                w.row.position,
                w.row.wave,
                w.row.state,
                w.row.hosts_total,
                w.row.hosts_ok,
                w.row.hosts_failed,
                w.row.hosts_unreachable,
                w.row.hosts_pending,
                iso_utc(w.bake_until) or "",
                w.by_state.get(COMPLIANT, 0),
            ]
            for w in rep.waves
        ]
    if section == "nodes":
        return [
            "node",
            "kind",
            "parts",
            "parts_failed",
            "hosts",
            "seconds",
            "hosts_per_minute",
            "last_hosts",
            "last_hosts_per_minute",
            "last_forks",
            "last_error",
            "last_finished_at",
        ], [
            [
                n.node,
                n.kind,
                n.parts,
                n.parts_failed,
                n.hosts,
                n.seconds,
                n.hosts_per_minute,
                n.last_hosts,
                n.last_hosts_per_minute,
                n.last_forks,
                n.last_error or "",
                iso_utc(n.last_finished_at) or "",
            ]
            for n in rep.nodes
        ]
    raise ValueError(f"unknown report section {section!r} (known: {', '.join(CSV_SECTIONS)})")


def report_csv(rep: Report, section: str = "hosts") -> str:
    """One section of the report as CSV (RFC 4180, a header row, ``\\r\\n`` line ends)."""
    header, rows = section_rows(rep, section)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows([["" if c is None else c for c in row] for row in rows])
    return buf.getvalue()


def full_report_lines(rep: Report) -> list[str]:
    """Plain text of the whole report for pipes and logs.

    First exactly :func:`report_lines` (the per-host lines and the ``TOTAL`` line); then, for
    each other section that has rows, an empty line, ``# <section>``, a tab-separated header
    and one tab-separated line per row. Sections: summary, waves, missing, reboots, failures,
    history, nodes (see :func:`section_rows`).
    """
    lines = report_lines(rep.fleet)
    for section in ("summary", "waves", "missing", "reboots", "failures", "history", "nodes"):
        header, rows = section_rows(rep, section)
        if not rows:
            continue
        lines += ["", f"# {section}", _row(header), *(_row(r) for r in rows)]
    return lines
