"""``patchctl report --format csv``: one section of the :class:`~patchctl.rules.report.Report`
as CSV, and each section as a header and rows of plain values (also the plain text lines').
"""

from __future__ import annotations

import csv
import io

from patchctl.rules.clock import iso_utc
from patchctl.rules.compliance import COMPLIANT, NEVER_SCANNED, STATES
from patchctl.rules.exceptions import covered_by
from patchctl.rules.model import CLASSIFICATIONS
from patchctl.rules.report import HISTORY_STATES, Report

CSV_SECTIONS = (
    "hosts",
    "missing",
    "reboots",
    "failures",
    "history",
    "waves",
    "summary",
    "nodes",
    "exceptions",
    "held",
    "sla",
)


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
            for h in rep.hosts
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
            [r.host, r.patch_role or "", r.patch_window or "", iso_utc(r.since) or "", r.age_hours]
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
    if section == "exceptions":
        return ["id", "target", "pattern", "owner", "until", "reason", "hosts", "updates"], [
            [e.id, e.target, e.pattern, e.owner, iso_utc(e.until), e.reason, len(cov), sum(map(len, cov.values()))]
            for e in rep.exceptions
            for cov in [covered_by(rep.excepted, e.id)]
        ]
    if section == "held":
        return ["host", "uid", "name", "version", "installed_version", "hold"], [
            [u.host, u.uid, u.name, u.version, u.installed_version or "", u.by]
            for hh in rep.holds.values()
            for u in hh.updates
        ]
    if section == "sla":
        # per host, then the fleet as host "(fleet)"; no rows when the policy sets no sla
        header = ["host", "tracked", "at_risk", "breached"]
        if rep.sla is None:
            return header, []
        doc = rep.sla.as_dict()
        fleet = {"host": "(fleet)", **doc["fleet"]}
        return header, [[h[c] for c in header] for h in [*doc["hosts"], fleet]]
    raise ValueError(f"unknown report section {section!r} (known: {', '.join(CSV_SECTIONS)})")


def report_csv(rep: Report, section: str = "hosts") -> str:
    """One section of the report as CSV (RFC 4180, a header row, ``\\r\\n`` line ends)."""
    header, rows = section_rows(rep, section)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows([["" if c is None else c for c in row] for row in rows])
    return buf.getvalue()
