"""A deploy's result as text lines, from the document ``patchctl deploy --json`` prints.

Both ``patchctl deploy`` and ``patchctl rollout promote --deploy`` print these; nothing here
prints. ``data`` is :meth:`patchctl.deploy.DeployReport.as_dict`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from patchctl.render.escape import printable


def deploy_lines(data: Mapping[str, Any], quiet: bool = False, only_not_ok: bool = False) -> list[str]:
    """Per host (unless ``quiet``; with ``only_not_ok`` only the hosts that were not ok): its
    result, then the hosts left alone and the reboots; last, the wave's one-line summary. A deploy
    that had nothing to do is its one message."""
    head = f"rollout {data['rollout']} wave {data['wave']}"
    if data["message"]:
        return [f"{head}: {data['message']}"]
    lines: list[str] = []
    hosts = data["hosts"]
    if not quiet:
        lines += [_host_line(h) for h in hosts if not (only_not_ok and h["status"] == "ok")]
        if data["already_done"]:
            lines.append(f"already done before: {', '.join(data['already_done'])}")
        lines += [f"{host}: {why}" for host, why in data.get("waiting", {}).items()]
        if data["not_started"]:
            lines.append(f"not started: {', '.join(data['not_started'])}")
        lines += reboot_lines(data["reboots"])
        lines += restart_lines(data.get("restarts") or [])
    ok = sum(1 for h in hosts if h["status"] == "ok")
    summary = f"{head}: {data['state']}, {ok} ok of {len(hosts)} run"
    if data["halted_reason"]:
        summary += f"; halted: {data['halted_reason']}"
    lines.append(summary)
    if data.get("follow_up_rollout") is not None:
        lines.append(
            f"follow-up rollout {data['follow_up_rollout']} holds the successors of the blocked updates "
            "(successors: repilot): it goes through the pilot first"
        )
    # host names, errors and update ids come from hosts: nothing of them reaches a terminal raw
    return [printable(line) for line in lines]


def _host_line(h: Mapping[str, Any]) -> str:
    line = f"{h['host']}: {h['status']}"
    if h["installed"]:
        line += f", installed {', '.join(h['installed'])}"
    if h["failed"]:
        line += "; failed " + "; ".join(f"{uid}: {why}" for uid, why in h["failed"].items())
    elif h["error"]:
        line += f": {h['error']}"
    if h["reboot_required"]:
        line += " (reboot pending)"
    return line


def reboot_lines(reboots: list[Mapping[str, Any]]) -> list[str]:
    """One line per host the deploy left needing a reboot: rebooted, failed, or reboot pending.
    ``reboots`` are the ``reboots`` of the deploy's document (a reboot plan with its result)."""
    lines = []
    for plan in reboots:
        result = plan["result"]
        if result is None:
            lines.append(f"{plan['host']}: reboot pending ({plan['role'] or 'no role'}: {plan['reason']})")
        elif result["status"] == "ok":
            lines.append(f"{plan['host']}: rebooted ({plan['reason']})")
        else:
            lines.append(f"{plan['host']}: reboot {result['status']}: {result['error']}; still reboot pending")
    return lines


def restart_lines(restarts: list[Mapping[str, Any]]) -> list[str]:
    """One line per host the deploy left running replaced files: restarted (and what still runs
    them), failed, or ``restart pending: nginx, sshd`` with the reason."""
    lines = []
    for r in restarts:
        services = ", ".join(r["services"])
        if r["action"] == "restart" and r["status"] == "ok":
            line = f"{r['host']}: restarted {', '.join(r['restarted']) or 'nothing'}"
            if r["still_pending"]:
                line += f"; restart pending: {', '.join(r['still_pending'])}"
        elif r["action"] == "restart":
            line = f"{r['host']}: restart {r['status']}: {r['error']}"
        elif r["action"] == "rebooted":
            line = f"{r['host']}: rebooted, runs the new files of {services}"
        else:
            line = f"{r['host']}: restart pending: {services} ({r['reason']})"
        lines.append(line)
    return lines
