"""The :class:`~patchctl.rules.report.Report` as text: rich tables for a terminal, plain
tab-separated lines for pipes and logs.

Nothing here prints: the CLI decides where the output goes (the rich tables on a terminal,
:func:`full_report_lines` when stdout is not a TTY).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from rich.table import Table
from rich.text import Text

from patchctl.render.escape import printable
from patchctl.render.report_csv import section_rows
from patchctl.render.words import age_text, short_time, state_word
from patchctl.rules.clock import iso_utc
from patchctl.rules.compliance import (
    BLOCKED,
    COMPLIANT,
    FAILED,
    MISSING,
    NEVER_SCANNED,
    REBOOT_PENDING,
    STALE,
    STATES,
    UNREACHABLE,
)
from patchctl.rules.exceptions import covered_by
from patchctl.rules.model import HOST_FAILED, HOST_OK, HOST_UNREACHABLE
from patchctl.rules.report import HISTORY_STATES, HealthCheck, HostReport, Report, RestartPending
from patchctl.rules.sla import WITHIN, Tracked

_REACH_STYLE = {
    HOST_OK: "green",
    HOST_FAILED: "red",
    HOST_UNREACHABLE: "red",
}


def _text(value: object, style: str = "") -> Text:
    """A table cell of text from hosts, policy or the store: a :class:`Text`, so rich markup in
    it (``[red]``) prints literally, with control characters escaped (:func:`printable`), so an
    ANSI sequence in a host name or update title never reaches the terminal raw."""
    return Text(printable("" if value is None else str(value)), style=style)


def _reach_word(reachability: str) -> str:
    return reachability.replace("_", " ")


def _count_cell(n: int, style: str) -> Text:
    return Text(str(n), style=style if n else "dim")


def report_table(report: Report, extra: Mapping[str, Callable[[HostReport], Text | str]] | None = None) -> Table:
    """A rich table: one row per host, the totals in the footer; ``extra`` adds columns."""
    t = report.totals
    reach_summary = ", ".join(f"{n} {_reach_word(r)}" for r, n in t.by_reachability.items() if n)
    table = Table(
        title="Patch compliance",
        caption=f"generated {short_time(report.generated_at)}",
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
            reach.append(f" ({printable(h.error)})", style="dim")
        table.add_row(
            _text(h.name),
            _text(h.os or "-"),
            short_time(h.last_scan_at),
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
    """A plain-text cell: tabs and newlines as spaces, other control characters escaped."""
    return printable(value.replace("\t", " ").replace("\n", " ")) or "-"


def report_lines(report: Report) -> list[str]:
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


_STATE_STYLE = {
    COMPLIANT: "green",
    MISSING: "yellow",
    REBOOT_PENDING: "yellow",
    FAILED: "red",
    BLOCKED: "red",
    UNREACHABLE: "red",
    STALE: "magenta",
    NEVER_SCANNED: "dim",
}


def full_report_tables(rep: Report) -> list[Table]:
    """The rich tables of ``patchctl report`` on a terminal, in order."""
    out: list[Table] = []
    summary = Table(title=f"Compliance: {rep.compliant_percent:g}% of {rep.totals.hosts} hosts compliant")
    summary.add_column("State")
    summary.add_column("Hosts", justify="right")
    roles = list(rep.by_role)
    for role in roles:
        summary.add_column(_text(role), justify="right")
    for state in STATES:
        summary.add_row(
            Text(state_word(state), style=_STATE_STYLE[state]),
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
                _text(r.wave),
                _text(r.state + (f" ({r.halted_reason})" if r.halted_reason else "")),
                str(r.hosts_total),
                str(r.hosts_ok),
                str(r.hosts_failed),
                str(r.hosts_unreachable),
                str(r.hosts_pending),
                short_time(w.bake_until),
                f"{w.by_state.get(COMPLIANT, 0)}/{len(r.hosts)}",
            )
        out.append(waves)

    def state_cell(h: HostReport) -> Text:
        state = rep.states.get(h.name, NEVER_SCANNED)
        return Text(rep.state_label(h.name, state_word), style=_STATE_STYLE.get(state, ""))

    extra: dict[str, Callable[[HostReport], Text | str]] = {"State": state_cell}
    if rep.waves_of:
        extra["Wave"] = lambda h: _text(rep.waves_of.get(h.name, "-"))

    def exposed(h: HostReport) -> Text | str:
        e = rep.oldest_exposure.get(h.name)
        return "-" if e is None else _text(f"{e.days(rep.generated_at):g}d {e.lineage}")

    extra["Oldest exposure"] = exposed
    out.append(report_table(rep, extra))
    if rep.top_missing:
        top = Table(title="Most widespread missing updates")
        for col in ("Update", "Version", "Class", "Severity", "CVEs", "Major", "Hosts", "Exposed"):
            top.add_column(col, justify="right" if col in ("Hosts", "Exposed", "CVEs") else "left")
        for m in rep.top_missing:
            days = rep.exposure_days(m.source, m.name)
            top.add_row(
                _text(f"{m.source}:{m.name}"),
                _text(m.version),
                _text(m.classification),
                _text(m.severity or m.urgency or ""),
                str(len(m.cves)) if m.cves else "",
                "yes" if m.major else "",
                str(m.hosts),
                "-" if days is None else f"{days:g}d",
            )
        out.append(top)
    if rep.starved:
        starved = Table(title="Starved lineages (never beyond the pilot)")
        for col in ("Lineage", "Since", "Days", "Rollouts", "Versions"):
            starved.add_column(col)
        for x in rep.starved:
            starved.add_row(
                _text(f"{x.source}:{x.name}"),
                short_time(x.since),
                f"{x.days:g}",
                ", ".join(map(str, x.rollouts)),
                _text(", ".join(x.versions) + " (consider successors: install)"),
            )
        out.append(starved)
    if rep.freezes:
        freezes = Table(title="Change freezes")
        for col in ("Freeze", "Span", "Scope", "Stops", "Now"):
            freezes.add_column(col)
        for fz in rep.freezes:
            span = f"{fz['from']} to {fz['to']}" if "from" in fz else f"{fz['schedule']} for {fz['duration']}"
            now_text = (
                f"ACTIVE until {short_time(fz['active_until'])}"
                if fz["active"]
                else f"next {short_time(fz['next_start'])} to {short_time(fz['next_end'])}"
            )
            freezes.add_row(
                _text(fz["name"]),
                _text(f"{span} {fz['timezone']}"),
                _text(fz["scope"]),
                ", ".join(fz["stops"]),
                now_text,
            )
        out.append(freezes)
    held = [u for hh in rep.holds.values() for u in hh.updates]
    if held:
        holds = Table(title="Held updates (a package hold keeps them back: never deployed)")
        for col in ("Host", "Update", "Installed", "Hold"):
            holds.add_column(col)
        for u in held:
            holds.add_row(_text(u.host), _text(u.uid), _text(u.installed_version or "-"), _text(f"held by {u.by}"))
        out.append(holds)
    if rep.exceptions:
        excepted = Table(title="Exceptions in force")
        for col in ("Id", "Hosts", "Updates", "Owner", "Until", "Reason", "Covers now"):
            excepted.add_column(col)
        for e in rep.exceptions:
            cov = covered_by(rep.excepted, e.id)
            excepted.add_row(
                str(e.id),
                _text(e.target),
                _text(e.pattern),
                _text(e.owner),
                short_time(e.until),
                _text(e.reason),
                _text(", ".join(f"{h} ({len(u)})" for h, u in cov.items()) or "-"),
            )
        out.append(excepted)
    if rep.pending_reboots:
        reboots = Table(title="Pending reboots")
        for col in ("Host", "Role", "Window", "Since", "Age"):
            reboots.add_column(col)
        for pr in rep.pending_reboots:
            reboots.add_row(
                _text(pr.host),
                _text(pr.patch_role or "-"),
                _text(pr.patch_window or "-"),
                short_time(pr.since),
                age_text(pr.age),
            )
        out.append(reboots)
    out.extend(safety_tables(rep))
    if rep.failures:
        failures = Table(title="Failures")
        for col in ("Host", "Stage", "Status", "Reason", "When"):
            failures.add_column(col)
        for f in rep.failures:
            stage = f.stage if f.wave is None else f"{f.stage} ({f.wave})"
            failures.add_row(_text(f.host), _text(stage), _text(f.status, "red"), _text(f.reason), short_time(f.at))
        out.append(failures)
    if rep.history:
        hist = Table(title="Compliance over time (by scan run)")
        for col in ("Run", "When", "Hosts", "Compliant %", "Missing updates", *map(state_word, HISTORY_STATES[1:])):
            hist.add_column(col, justify="left" if col == "When" else "right")
        for p in rep.history:
            hist.add_row(
                str(p.run_id),
                short_time(p.at),
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
                _text(n.node),
                _text(n.kind),
                str(n.parts) + (f" ({n.parts_failed} failed)" if n.parts_failed else ""),
                str(n.hosts),
                _rate(n.hosts_per_minute),
                str(n.last_hosts),
                _rate(n.last_hosts_per_minute),
                "-" if n.last_forks is None else str(n.last_forks),
                _text(n.last_error, "red") if n.last_error else short_time(n.last_finished_at),
            )
        out.append(nodes)
    return out + sla_tables(rep)


def _sla_rows(rep: Report) -> tuple[list[list[str]], list[list[str]], list[list[str]]]:
    """The SLA section as rows: per host (tracked, at risk, breached), the items at risk or
    breached, the time to patch per class."""
    sla = rep.sla
    if sla is None:
        return [], [], []
    doc = sla.as_dict()
    hosts = [[h["host"], str(h["tracked"]), str(h["at_risk"]), str(h["breached"])] for h in doc["hosts"]]
    fleet = doc["fleet"]
    hosts.append(["(fleet)", str(fleet["tracked"]), str(fleet["at_risk"]), str(fleet["breached"])])
    items = [[i["host"], i["uid"], f"{i['sla_days']:g}", short_time(t.due), i["state"]] for t, i in _sla_items(rep)]
    since = "all" if sla.since is None else short_time(sla.since)
    ttp = [[p.classification, str(p.count), f"{p.mean_days:g}", f"{p.p90_days:g}", since] for p in sla.time_to_patch]
    return hosts, items, ttp


def _sla_items(rep: Report) -> list[tuple[Tracked, dict[str, Any]]]:
    tracked = rep.sla.tracked if rep.sla is not None else ()
    return [(t, t.as_dict()) for t in tracked if t.state != WITHIN]


_SLA_HEADERS = (
    ("Host", "Tracked", "At risk", "Breached"),
    ("Host", "Update", "SLA days", "Due", "State"),
    ("Class", "Patched", "Mean days", "P90 days", "Since"),
)
_SLA_TITLES = ("SLA: days to patch", "SLA: at risk or breached", "SLA: time to patch")


def sla_tables(rep: Report) -> list[Table]:
    """The SLA section (the policy's sla:), when the policy has one."""
    if rep.sla is None:
        return []
    out = []
    for title, header, rows in zip(_SLA_TITLES, _SLA_HEADERS, _sla_rows(rep), strict=True):
        table = Table(title=title)
        for col in header:
            table.add_column(col)
        for row in rows:
            table.add_row(*(_text(c) for c in row))
        out.append(table)
    return out


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _row(cells: Iterable[object]) -> str:
    return "\t".join(_clean("" if c is None else str(c)) for c in cells)


def full_report_lines(rep: Report) -> list[str]:
    """Plain text of the whole report for pipes and logs.

    First exactly :func:`report_lines` (the per-host lines and the ``TOTAL`` line); then, for
    each other section that has rows, an empty line, ``# <section>``, a tab-separated header
    and one tab-separated line per row. Sections: summary, waves, missing, reboots, failures,
    history, nodes, held, exceptions (see :func:`section_rows`).
    """
    lines = report_lines(rep)
    for section in ("summary", "waves", "missing", "held", "exceptions", "reboots", "failures", "history", "nodes"):
        header, rows = section_rows(rep, section)
        if not rows:
            continue
        lines += ["", f"# {section}", _row(header), *(_row(r) for r in rows)]
    sla_sections = zip(("sla", "sla at risk", "sla time to patch"), _SLA_HEADERS, _sla_rows(rep), strict=True)
    for name, sla_header, sla_rows in sla_sections:
        if sla_rows:
            lines += ["", f"# {name}", _row(sla_header), *(_row(r) for r in sla_rows)]
    return lines + safety_lines(rep)


# --- change safety: health checks and services pending restart ---------------------------------


def health_line(c: HealthCheck) -> str:
    """``web1: webd failed (before: passed, deploy): 127.0.0.1:80 refused a connection``."""
    before = f"before: {c.before}, " if c.before else ""
    return _clean(f"{c.host}: {c.name} {c.state} ({before}{c.context}): {c.message}")


def restart_line(r: RestartPending) -> str:
    """``web1: restart pending: nginx, sshd``."""
    return _clean(f"{r.host}: restart pending: {', '.join(r.services)}")


def safety_lines(rep: Report) -> list[str]:
    """The plain-text sections ``# health`` (the checks not passed in each host's latest run)
    and ``# restart pending``, each only when it has lines."""
    lines: list[str] = []
    bad = [c for c in rep.health if c.state != "passed"]
    if bad:
        lines += ["", "# health", *(health_line(c) for c in bad)]
    if rep.restart_pending:
        lines += ["", "# restart pending", *(restart_line(r) for r in rep.restart_pending)]
    return lines


def safety_tables(rep: Report) -> list[Table]:
    out: list[Table] = []
    if rep.health:
        health = Table(title="Health checks (each host's latest run)")
        for col in ("Host", "Check", "State", "Before", "Run", "Message", "When"):
            health.add_column(col)
        style = {"passed": "green", "failed": "red", "pre_existing": "yellow"}
        for c in rep.health:
            health.add_row(
                _text(c.host),
                _text(c.name),
                _text(c.state, style.get(c.state, "")),
                _text(c.before or "-"),
                _text(c.context),
                _text(c.message),
                short_time(c.at),
            )
        out.append(health)
    if rep.restart_pending:
        restart = Table(title="Restart pending (services still running replaced files)")
        for col in ("Host", "Services", "Since"):
            restart.add_column(col)
        for r in rep.restart_pending:
            restart.add_row(_text(r.host), _text(", ".join(r.services)), short_time(r.since))
        out.append(restart)
    return out
