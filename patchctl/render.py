"""Presenting a :class:`patchctl.report.FleetReport`: a rich table, plain text lines, JSON.

Nothing here prints: the CLI decides where the output goes (a rich table on a terminal,
:func:`report_lines` when stdout is not a TTY, :func:`report_json` for ``--json``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.table import Table
from rich.text import Text

from patchctl.model import HOST_FAILED, HOST_OK, HOST_UNREACHABLE
from patchctl.report import FleetReport, HostReport, MissingCounts

REPORT_JSON_SCHEMA = "patchctl.report/1"

_REACH_STYLE = {
    HOST_OK: "green",
    HOST_FAILED: "red",
    HOST_UNREACHABLE: "red",
}


def _iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z`` suffix (naive datetimes are taken as UTC)."""
    if value is None:
        return None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.isoformat().replace("+00:00", "Z")


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
        "last_scan_at": _iso(h.last_scan_at),
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
    :data:`patchctl.model.CLASSIFICATIONS`, in that order. Timestamps are ISO 8601 UTC.
    """
    t = report.totals
    return {
        "schema": REPORT_JSON_SCHEMA,
        "generated_at": _iso(report.generated_at),
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


def report_table(report: FleetReport) -> Table:
    """A rich table: one row per host, the totals in the footer."""
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
            _iso(h.last_scan_at) or "",
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
