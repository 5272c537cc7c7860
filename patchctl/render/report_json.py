"""``patchctl report --json``: the :class:`~patchctl.rules.report.Report` as JSON-able dicts.

Nothing here writes: the CLI decides where the document goes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from patchctl.rules.clock import iso_utc
from patchctl.rules.exceptions import covered_by
from patchctl.rules.report import HostReport, MissingCounts, Report, WaveSummary

REPORT_JSON_SCHEMA = "patchctl.report/1"


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


def report_json(report: Report) -> dict[str, Any]:
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
        (each host also gets "exposure": {"lineage": "apt:openssl", "since": ..., "days": 12.5}
         or null: its oldest open exposure, v_host_exposure)
        "top_missing": [{"uid": "apt:openssl:3.0.13", "source": "apt", "name": "openssl",
                         "version": "3.0.13", "classification": "security", "severity": null,
                         "urgency": "high" | null,                  # apt: the Debian changelog's
                         "major": false, "cves": [], "hosts": 2,
                         "exposure_days": 12.5}],            # the oldest exposure of its lineage
        "starved": [{"lineage": "apt:chromium", "since": ..., "days": 41.0, "rollouts": [3, 5],
                     "versions": ["120.1", "120.2"], "reason": "..."}],
        "exceptions": [{"id": 1, "target": "web*", "pattern": "openssl", "reason": "...",
                        "owner": "ops", "until": ..., "created_at": ..., "created_by": "alice",
                        "covers": {"web01": ["apt:openssl:3.0.13"]}}],   # in force now
        (each host also gets "excepted": the uids of its missing updates exceptions cover;
         "held": [{"uid": ..., "state": "held", "hold": "apt-mark hold"}] and "holds":
         [{"name": "openssl", "by": "apt-mark hold"}], its package holds)
        "pending_reboots": [{"host": "web01", "patch_role": "server", "patch_window": "sun-02",
                             "since": "2024-06-01T10:00:00Z", "age_hours": 2.0}],
        "failures": [{"host": "db01", "stage": "scan" | "deploy", "status": "unreachable",
                      "reason": "timed out", "at": ..., "rollout_id": null, "wave": null}],
        "history": [{"run_id": 1, "at": ..., "hosts": 3, "compliant_percent": 33.3,
                     "missing_total": 6, "by_state": {<state but never_scanned>: n}}],
        "nodes": [{"node": "exec-paris-01" | "(control node)", "kind": "scan" | "deploy",
                   "parts": 4, "parts_failed": 0, "hosts": 120, "seconds": 95.2,
                   "hosts_per_minute": 75.6, "last_hosts": 30, "last_hosts_per_minute": 80.1,
                   "last_forks": 16, "last_error": null, "last_finished_at": ...}],
        "sla": null | {"policy": {"days": {"security": 14.0, ...}, "at_risk_days": 3.0},
                "since": ... | null, "fleet": {"tracked": 20, "at_risk": 9, "breached": 11},
                "hosts": [{"host", "tracked", "at_risk", "breached"}],
                "items": [{"host", "uid", "classification", "severity", "urgency", "sla_days",
                           "since", "due", "state": "at_risk" | "breached"}],
                "time_to_patch": [{"classification", "count", "mean_days", "p90_days"}],
                "breach_history": [{"run_id", "at", "breached", "hosts"}]}
    """
    data = report_json(rep)
    by_name = {h.name: h for h in rep.hosts}
    for host in data["hosts"]:
        host["state"] = rep.states.get(host["name"])
        # the missing updates valid exceptions cover (not counted by the compliance rule)
        host["excepted"] = sorted(rep.excepted.get(host["name"], {}))
        # updates a package hold keeps back (state held: not missing, never deployed), and the holds
        hh = rep.holds.get(host["name"])
        host["held"] = [] if hh is None else [{"uid": u.uid, "state": "held", "hold": u.by} for u in hh.updates]
        host["holds"] = [] if hh is None else [{"name": n, "by": by} for n, by in hh.holds]
        host["wave"] = rep.waves_of.get(host["name"])
        # of host["missing"]["total"]: how many are approved (the compliance rule counts these)
        host["missing_approved"] = rep.missing_approved(by_name[host["name"]])
        e = rep.oldest_exposure.get(host["name"])
        host["exposure"] = (
            None if e is None else {"lineage": e.lineage, "since": iso_utc(e.since), "days": e.days(rep.generated_at)}
        )
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
            "urgency": m.urgency,
            "major": m.major,
            "cves": list(m.cves),
            "hosts": m.hosts,
            "exposure_days": rep.exposure_days(m.source, m.name),
        }
        for m in rep.top_missing
    ]
    data["starved"] = [
        {
            "lineage": f"{x.source}:{x.name}",
            "since": iso_utc(x.since),
            "days": x.days,
            "rollouts": list(x.rollouts),
            "versions": list(x.versions),
            "reason": x.reason,
        }
        for x in rep.starved
    ]
    data["exceptions"] = [
        {
            "id": e.id,
            "target": e.target,
            "pattern": e.pattern,
            "reason": e.reason,
            "owner": e.owner,
            "until": iso_utc(e.until),
            "created_at": iso_utc(e.created_at),
            "created_by": e.created_by,
            "covers": covered_by(rep.excepted, e.id),
        }
        for e in rep.exceptions
    ]
    data["freezes"] = [{k: iso_utc(v) if isinstance(v, datetime) else v for k, v in f.items()} for f in rep.freezes]
    data["pending_reboots"] = [
        {
            "host": r.host,
            "patch_role": r.patch_role,
            "patch_window": r.patch_window,
            "since": iso_utc(r.since),
            "age_hours": r.age_hours,
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
    # the policy's days-to-patch (its sla: section), null without one
    data["sla"] = rep.sla.as_dict() if rep.sla is not None else None
    data.update(safety_json(rep))
    return data


def safety_json(rep: Report) -> dict[str, Any]:
    """``health`` (each host's latest checks) and ``restart_pending`` (hosts, services, since)."""
    return {
        "health": [
            {
                "host": c.host,
                "context": c.context,
                "name": c.name,
                "kind": c.kind,
                "state": c.state,
                "before": c.before,
                "message": c.message,
                "at": iso_utc(c.at),
            }
            for c in rep.health
        ],
        "restart_pending": [
            {"host": r.host, "services": list(r.services), "since": iso_utc(r.since)} for r in rep.restart_pending
        ],
    }
