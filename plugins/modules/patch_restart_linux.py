#!/usr/bin/python
# Copyright: patchctl contributors
# Apache License 2.0 (see the LICENSE file of the patchctl project)
#
# Runs on the target host: Python 3.7+, standard library only. What it shares with
# patch_apply_linux (finding what still runs replaced files, health checks) is in
# plugins/module_utils/patchctl_safety.py.

DOCUMENTATION = r"""
---
module: patch_restart_linux
short_description: Restart the services still running files an update replaced, then check health
description:
  - Finds the processes still mapping deleted files (C(/proc/PID/maps); the units
    C(needrestart -b) names where it is installed), restarts each service with
    C(systemctl restart UNIT), or with the command O(commands) gives for its name when it has no
    unit, then looks again and runs the health checks against a baseline taken before.
  - Returns one result, C(patchctl_restart). Never reboots. Fails when a restart failed, a
    service still runs replaced files, or a health check that passed before fails after.
version_added: "0.1.0"
author:
  - patchctl contributors
options:
  commands:
    description:
      - Service name (a unit without C(.service), or a process name) -> the shell command that
        restarts it, for services without a systemd unit (or to restart a unit another way).
    type: dict
    default: {}
  health:
    description:
      - Health checks, as in M(patch_apply_linux) (kind, name, command, host, port, url, status,
        unit, timeout, no_log), run before the restarts (a baseline) and after them.
    type: list
    elements: dict
    default: []
attributes:
  check_mode:
    support: none
  diff_mode:
    support: none
notes:
  - Needs root.
"""

EXAMPLES = r"""
- name: Restart what still runs replaced libraries
  patch_restart_linux:
    commands:
      legacy-agent: /etc/init.d/legacy-agent restart
    health:
      - {kind: tcp, port: 443}
"""

RETURN = r"""
patchctl_restart:
  description: What the call did.
  returned: always
  type: dict
  contains:
    restarted:
      description: The services restarted (name, unit, how, pids before).
      type: list
      elements: dict
    failed:
      description: Service name -> why it was not restarted (or its restart failed).
      type: dict
    restart_pending:
      description: What still runs replaced files after the restarts (as patch_apply_linux returns it).
      type: list
      elements: dict
    health:
      description: Each health check after the restarts against its baseline.
      type: list
      elements: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.patchctl_safety import (
    compare,
    find_restart_pending,
    health_error,
    run_checks,
    run_shell,
)

RESTART_TIMEOUT = 120


def command_for(commands, group):
    """The operator's restart command for a service: by its name, its unit, or a process name."""
    names = [group.get("name"), group.get("unit")] + [p.get("comm") for p in group.get("processes") or []]
    for name in names:
        if name and name in commands:
            return commands[name]
    return None


def main():
    module = AnsibleModule(
        argument_spec={
            "commands": {"type": "dict", "default": {}},
            "health": {"type": "list", "elements": "dict", "default": []},
        },
        supports_check_mode=False,
    )
    commands = {str(k): str(v) for k, v in (module.params["commands"] or {}).items()}
    health = module.params["health"]

    def run(args):
        return module.run_command(args, environ_update={"LANG": "C", "LC_ALL": "C"})

    baseline = run_checks(health)
    pending = find_restart_pending(run)
    restarted, failed = [], {}
    for group in pending:
        cmd = command_for(commands, group)
        pids = [p["pid"] for p in group.get("processes") or []]
        if cmd is not None:
            rc, out, timed_out = run_shell(cmd, RESTART_TIMEOUT)
            how = "command"
        elif group.get("unit"):
            rc, out, timed_out = run_shell("systemctl restart -- '{}'".format(group["unit"]), RESTART_TIMEOUT)
            how = "systemctl"
        else:
            failed[group["name"]] = "no systemd unit and no restart command (patch_restart_commands)"
            continue
        if rc != 0:
            failed[group["name"]] = "restart failed ({}): {}".format(
                "timed out" if timed_out else f"exit {rc}", out.strip()[-300:] or "no output"
            )
            continue
        restarted.append({"name": group["name"], "unit": group.get("unit"), "how": how, "pids_before": pids})
    after = find_restart_pending(run)
    compared = compare(baseline, run_checks(health))
    res = {"restarted": restarted, "failed": failed, "restart_pending": after, "health": compared}
    errors = [f"{k}: {v}" for k, v in sorted(failed.items())]
    still = sorted({g["name"] for g in after} - set(failed))
    if still:
        errors.append("still running replaced files after the restart: " + ", ".join(still))
    problem = health_error(compared, "after the restart")
    if problem:
        errors.append(problem)
    if errors:
        module.fail_json(msg="; ".join(errors), changed=bool(restarted), patchctl_restart=res)
    module.exit_json(changed=bool(restarted), patchctl_restart=res)


if __name__ == "__main__":
    main()
