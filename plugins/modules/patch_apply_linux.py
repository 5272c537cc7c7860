#!/usr/bin/python
# Copyright: patchctl contributors
# Apache License 2.0 (see the LICENSE file of the patchctl project)
#
# Runs on the target host: Python 3.7+, standard library only (no python3-apt).
# The parsing functions are pure and importable, so the unit tests feed them recorded text.
# OS detection, the reboot flag, apt's integrity wording and the rpm query format come from
# plugins/module_utils/patchctl_linux.py, shared with patch_scan_linux.

DOCUMENTATION = r"""
---
module: patch_apply_linux
short_description: Install exactly the given package versions, in one call
description:
  - Installs exactly the pinned package versions it is given (and what the package manager needs
    for their dependencies), nothing else, and returns one result, C(patchctl_apply), that
    patchctl records per host.
  - Only upgrades packages that are installed; a package that is not installed fails with a
    reason instead of being installed.
  - Never reboots. It reports whether the host asks for a reboot.
  - Fails when any update failed; the result still carries C(patchctl_apply).
  - "Backends: C(apt), C(dnf) and C(zypper). For dnf and zypper the versions are
    C([epoch:]version-release) as their scans report them."
version_added: "0.1.0"
author:
  - patchctl contributors
options:
  updates:
    description:
      - The updates to install, as in patchctl's per-host C(patchctl_deploy) variable. Entries of
        other sources than O(pkg_mgr) are ignored.
      - An entry with C(install=false) is not installed; only its package's installed version is
        read after the run (in C(versions)), so the controller can check it against a floor.
    type: list
    elements: dict
    required: true
  pkg_mgr:
    description:
      - The package manager. C(auto) detects it on the host from the family in C(/etc/os-release)
        (Debian apt, RedHat dnf, SUSE zypper), else the first of C(apt-get), C(dnf), C(zypper) found.
    type: str
    choices: [auto, apt, dnf, zypper]
    default: auto
  refresh:
    description:
      - C(auto) refreshes the package metadata only when a requested version is unknown to the
        package manager; C(always) and C(never) do what they say.
    type: str
    choices: [auto, always, never]
    default: auto
  hooks:
    description:
      - Commands run around the install, only when something is to be installed. C(pre_install)
        hooks run before it, and one that fails and must succeed aborts the host with
        nothing installed. C(post_install) hooks run after it, and one that fails fails the
        host after the fact. Each hook runs with C(/bin/sh -c), killed after its C(timeout) seconds.
      - A hook's command is never returned, only its name; put secrets in its C(environment)
        (never logged, masked in the output); C(no_log) also keeps its output out of the result.
    type: dict
    default: {}
    suboptions:
      pre_install:
        description: Hooks run before the install, in order.
        type: list
        elements: dict
        default: []
        suboptions: &hook
          command:
            description: The shell command.
            type: str
            required: true
          name:
            description: Its name in results (default C(PHASE[INDEX])).
            type: str
          timeout:
            description: Seconds before it is killed (and fails).
            type: int
            default: 300
          must_succeed:
            description: Whether its failure fails the host.
            type: bool
            default: true
          environment:
            description: Variables added to its environment; their values are never logged.
            type: dict
            default: {}
          no_log:
            description: Keep its command and output out of the result.
            type: bool
            default: false
      post_install:
        description: Hooks run after the install, in order.
        type: list
        elements: dict
        default: []
        suboptions: *hook
  health:
    description:
      - Health checks run before anything changes (a baseline) and again after the install and
        the post_install hooks. A check that passed before and fails after fails the host with the
        check's message; one failing already before is reported C(pre_existing) and does not.
      - "Kinds: C(command) (exit 0), C(tcp) (C(port) on C(host), default 127.0.0.1), C(http)
        (C(url) answers C(status), default 200), C(service) (systemd C(unit) active),
        C(failed_units) (no failed systemd unit)."
    type: list
    elements: dict
    default: []
    suboptions:
      kind:
        description: What the check looks at.
        type: str
        required: true
        choices: [command, tcp, http, service, failed_units]
      name:
        description: Its name in results and the report (default from its kind and target).
        type: str
      command:
        description: C(command) checks, the shell command.
        type: str
      host:
        description: C(tcp) checks, the address (default 127.0.0.1).
        type: str
      port:
        description: C(tcp) checks, the port.
        type: int
      url:
        description: C(http) checks, the URL fetched from the host.
        type: str
      status:
        description: C(http) checks, the expected status.
        type: int
        default: 200
      unit:
        description: C(service) checks, the systemd unit.
        type: str
      timeout:
        description: Seconds the check may take.
        type: int
        default: 10
      no_log:
        description: C(command) checks, keep the output out of the result.
        type: bool
        default: false
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
notes:
  - Needs root.
  - apt installs with C(apt-get install --no-install-recommends --no-remove) and keeps the local
    configuration files (C(--force-confdef --force-confold)).
  - "Integrity: apt's signature and checksum checks are forced on for every apt command
    (C(APT::Get::AllowUnauthenticated), C(Acquire::AllowInsecureRepositories),
    C(Acquire::AllowDowngradeToInsecureRepositories) false), whatever the host's configuration
    says; there is no option to turn them off. An unsigned repository, an unknown key or a
    package whose checksum does not match installs nothing and fails with a message starting
    C(integrity:)."
  - "dnf and zypper: every dnf command forces C(gpgcheck) and C(repo_gpgcheck) on for every
    repository (C(--setopt=*.gpgcheck=1) ...); a zypper configuration that turns a check off is
    refused before anything is fetched (zypper has no option to force them). A signature or
    checksum that does not hold fails with a message starting C(integrity:), nothing installed."
  - dnf installs with C(dnf install NAME-VERSION) (weak dependencies off); zypper with
    C(zypper install --no-recommends NAME=VERSION) (exit 102/103, reboot or zypper restart
    needed, count as success). Reboot needed is C(dnf needs-restarting -r) exiting 1 or
    C(zypper needs-rebooting) exiting 102.
"""

EXAMPLES = r"""
- name: Install the approved updates of this host
  patch_apply_linux:
    updates:
      - uid: "apt:openssl:3.0.15-1~deb12u1"
        source: apt
        name: openssl
        version: "3.0.15-1~deb12u1"
"""

RETURN = r"""
patchctl_apply:
  description: What the call did.
  returned: always
  type: dict
  contains:
    schema:
      description: Version of this result shape.
      type: int
      sample: 1
    pkg_mgr:
      description: The package manager used.
      type: str
    installed:
      description: Uids of the updates this call installed.
      type: list
      elements: str
    present:
      description: Uids of the updates the host already had at the exact version.
      type: list
      elements: str
    failed:
      description: Uid -> reason, for each update that is not installed at its version now.
      type: dict
    versions:
      description: Package name -> the version installed, read from dpkg/rpm after the run, for
        every requested name that is installed (a name missing here is not installed).
      type: dict
    reboot_required:
      description: Whether the host asks for a reboot (apt C(/var/run/reboot-required) exists,
        C(dnf needs-restarting -r) exits 1, C(zypper needs-rebooting) exits 102).
      type: bool
    hooks:
      description: The hooks that ran (phase, name, rc, ok, must_succeed, timed_out, seconds,
        output), never their commands.
      type: list
      elements: dict
    health:
      description: Each health check after the install against its baseline (name, kind, state
        C(passed), C(failed) or C(pre_existing), before, message).
      type: list
      elements: dict
    restart_pending:
      description: After an install, the services still running files it replaced (read from
        C(/proc/PID/maps), plus the units C(needrestart -b) names where it is installed), each
        unit, name, processes (pid, comm) and files.
      type: list
      elements: dict
      returned: when something was installed
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.patchctl_linux import (
    APT_VERIFY_OPTIONS,
    C_LOCALE,
    DNF_VERIFY_OPTIONS,
    INTEGRITY,
    INTEGRITY_MARKERS,
    REBOOT_REQUIRED,
    RPM_QUERY_FORMAT,
    detect_pkg_mgr,
    parse_rpm_query,
    read_os,
    rpm_integrity_problems,
    zypper_config_problems,
)
from ansible.module_utils.patchctl_safety import (
    compare,
    find_restart_pending,
    health_error,
    run_checks,
    run_hooks,
)

SCHEMA = 1
APT_ENV = dict(C_LOCALE, DEBIAN_FRONTEND="noninteractive", APT_LISTCHANGES_FRONTEND="none")


def integrity_problem(text):
    """The first E:/W: line of apt's output that says a signature or checksum failed, else None."""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(("E:", "W:")) and any(m.lower() in line.lower() for m in INTEGRITY_MARKERS):
            return line[:300]
    return None


def parse_dpkg_status(text):
    """``dpkg-query -W -f '${Package}\\t${Version}\\t${db:Status-Abbrev}\\n'`` -> name -> (version, abbrev)."""
    found = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) != 3 or not parts[0]:
            continue
        found[parts[0]] = (parts[1], parts[2].strip())
    return found


# apt's follow-up lines that only say "see above": the line above says what went wrong
GENERIC_ERRORS = (
    "Sub-process",
    "Unable to fetch some archives",
    "Unable to acquire the dpkg frontend lock",
    "Unable to lock directory",
)


def last_error(text, limit=300):
    """The most telling line of apt/dpkg output: a failed maintainer script, else the first E: or
    dpkg: line that names the cause (no space left, the lock's holder), else the last line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        if ln.startswith("dpkg: error processing") and i + 1 < len(lines):
            return (f"{ln} {lines[i + 1]}")[:limit]
    errors = [ln for ln in lines if ln.startswith(("E:", "dpkg:"))]
    specific = [ln for ln in errors if not any(g in ln for g in GENERIC_ERRORS)]
    if specific or errors:
        return (specific or errors)[0][:limit]
    return (lines[-1] if lines else "no output")[:limit]


def plan(updates, status):
    """Split the requested updates into (todo, present, failed) from the dpkg status."""
    todo, present, failed = [], [], {}
    for upd in updates:
        version, abbrev = status.get(upd["name"], (None, ""))
        if version is None or not abbrev.startswith(("i", "h")) or abbrev[0:1] == "u":
            failed[upd["uid"]] = "not installed on this host (patchctl only upgrades installed packages)"
        elif version == upd["version"] and abbrev == "ii":
            present.append(upd["uid"])
        else:
            todo.append(upd)
    return todo, present, failed


def outcome(updates, status, apt_error):
    """After the install: (installed, failed) per update from the dpkg status."""
    installed, failed = [], {}
    for upd in updates:
        version, abbrev = status.get(upd["name"], (None, ""))
        if version == upd["version"] and abbrev == "ii":
            installed.append(upd["uid"])
        elif version == upd["version"]:
            failed[upd["uid"]] = "dpkg state {} after install: {}".format(abbrev or "unknown", apt_error)
        else:
            failed[upd["uid"]] = "still at {}: {}".format(version or "nothing", apt_error)
    return installed, failed


class Apt:
    def __init__(self, module):
        self.module = module

    def run(self, args, check=False):
        rc, out, err = self.module.run_command(args, environ_update=APT_ENV)
        return rc, out, err

    def status(self, names):
        _rc, out, _err = self.run(
            ["dpkg-query", "-W", "-f", "${Package}\\t${Version}\\t${db:Status-Abbrev}\\n", *sorted(set(names))]
        )
        # rc 1 just means some name is unknown; its line is missing
        return parse_dpkg_status(out)

    def known(self, updates):
        """Whether apt's lists hold every requested name=version (apt-cache exits 0 even when not)."""
        args = ["apt-cache", "show", "--no-all-versions"] + ["{}={}".format(u["name"], u["version"]) for u in updates]
        rc, out, _err = self.run(args)
        if rc != 0:
            return False
        found = set()
        name = None
        for line in out.splitlines():
            if line.startswith("Package: "):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("Version: ") and name is not None:
                found.add((name, line.split(":", 1)[1].strip()))
        return all((u["name"], u["version"]) in found for u in updates)

    def check_config(self):
        """apt's checks are forced on by its options: nothing to refuse here."""

    def refresh(self):
        rc, out, err = self.run(["apt-get", "update", "-q", "--error-on=any", *APT_VERIFY_OPTIONS])
        if rc != 0:
            problem = integrity_problem(err + "\n" + out)
            self.module.fail_json(
                msg=(
                    f"{INTEGRITY}apt-get update: {problem}; nothing installed"
                    if problem
                    else "apt-get update failed: {}".format(last_error(err + "\n" + out))
                ),
                patchctl_apply=result_of([], [], {}, "apt"),
            )

    def install(self, updates):
        args = (
            [
                "apt-get",
                "install",
                "-y",
                "-q",
                "--no-install-recommends",
                "--no-remove",
                "-o",
                "Dpkg::Options::=--force-confdef",
                "-o",
                "Dpkg::Options::=--force-confold",
            ]
            + list(APT_VERIFY_OPTIONS)
            + ["{}={}".format(u["name"], u["version"]) for u in updates]
        )
        rc, out, err = self.run(args)
        if rc == 0:
            return rc, ""
        problem = integrity_problem(err + "\n" + out)
        return rc, INTEGRITY + problem if problem else last_error(err + "\n" + out)


ZYPPER_OK = (0, 102, 103)  # 102: reboot needed, 103: restart zypper: the install worked


def parse_rpm_status(text):
    """``rpm -q --qf RPM_QUERY_FORMAT`` -> name -> (evr, 'ii'): the shape ``plan`` reads. A name
    installed for several architectures at different versions gets them all, comma joined, so it
    never counts as at one target version."""
    return {
        name: (", ".join(sorted({evr for _arch, evr in versions})), "ii")
        for name, versions in parse_rpm_query(text).items()
    }


class Rpm(Apt):
    """dnf and zypper: the rpm database for the state, the manager for the install."""

    def __init__(self, module, pkg_mgr):
        super().__init__(module)
        self.pkg_mgr = pkg_mgr

    def status(self, names):
        # rpm -q exits with the number of names that are not installed; their lines are missing
        _rc, out, _err = self.run(["rpm", "-q", "--qf", RPM_QUERY_FORMAT, "--", *sorted(set(names))])
        return parse_rpm_status(out)

    def known(self, updates):
        return True  # dnf and zypper refresh expired metadata themselves

    def dnf(self, *args):
        """A dnf command with the signature checks forced on (DNF_VERIFY_OPTIONS)."""
        return self.run(["dnf", *DNF_VERIFY_OPTIONS, *args])

    def check_config(self):
        """zypper has no option that forces the checks on: refuse a host whose configuration
        turns one off, before anything is fetched."""
        if self.pkg_mgr != "zypper":
            return
        found = zypper_config_problems()
        if found:
            self.module.fail_json(
                msg=f"{INTEGRITY}signature checks are turned off on this host: {' | '.join(found)}; nothing installed",
                patchctl_apply=result_of([], [], {}, self.pkg_mgr),
            )

    def refresh(self):
        if self.pkg_mgr == "dnf":
            rc, out, err = self.dnf("-q", "-y", "makecache", "--refresh")
        else:
            rc, out, err = self.run(["zypper", "--non-interactive", "--quiet", "refresh"])
        if rc != 0:
            problems = rpm_integrity_problems(err + "\n" + out)
            self.module.fail_json(
                msg=(
                    f"{INTEGRITY}{self.pkg_mgr} refresh: {' | '.join(problems)}; nothing installed"
                    if problems
                    else "{} refresh failed: {}".format(self.pkg_mgr, last_error(err + "\n" + out))
                ),
                patchctl_apply=result_of([], [], {}, self.pkg_mgr),
            )

    def install(self, updates):
        if self.pkg_mgr == "dnf":
            # not -q: librepo's "[MIRROR] ... checksum doesn't match" lines say why a download failed
            args = ["dnf", *DNF_VERIFY_OPTIONS, "-y", "--setopt=install_weak_deps=False", "install"]
            args += ["{}-{}".format(u["name"], u["version"]) for u in updates]
            ok = (0,)
        else:
            args = ["zypper", "--non-interactive", "install", "--no-recommends"]
            args += ["{}={}".format(u["name"], u["version"]) for u in updates]
            ok = ZYPPER_OK
        rc, out, err = self.run(args)
        problems = rpm_integrity_problems(err + "\n" + out)
        if problems:
            return rc, INTEGRITY + " | ".join(problems)
        return rc, last_error(err + "\n" + out) if rc not in ok else ""

    def reboot_required(self):
        if self.pkg_mgr == "dnf":
            rc, out, _err = self.dnf("-q", "-C", "needs-restarting", "-r")
            return rc == 1 and "Reboot is required" in out
        rc, out, _err = self.run(["zypper", "--non-interactive", "needs-rebooting"])
        return rc == 102


def installed_versions(status):
    """name -> version of the packages the status shows installed (dpkg ``ii``/``hi``, rpm)."""
    return {name: version for name, (version, abbrev) in status.items() if abbrev[1:2] == "i"}


def result_of(installed, present, failed, pkg_mgr, reboot=None, versions=None):
    return {
        "schema": SCHEMA,
        "pkg_mgr": pkg_mgr,
        "installed": installed,
        "present": present,
        "failed": failed,
        "versions": versions or {},
        "reboot_required": os.path.exists(REBOOT_REQUIRED) if reboot is None else reboot,
    }


HOOK_SPEC = {
    "command": {"type": "str", "required": True},
    "name": {"type": "str"},
    "timeout": {"type": "int", "default": 300},
    "must_succeed": {"type": "bool", "default": True},
    "environment": {"type": "dict", "default": {}, "no_log": True},
    "no_log": {"type": "bool", "default": False},
}
CHECK_SPEC = {
    "kind": {"type": "str", "required": True, "choices": ["command", "tcp", "http", "service", "failed_units"]},
    "name": {"type": "str"},
    "command": {"type": "str"},
    "host": {"type": "str"},
    "port": {"type": "int"},
    "url": {"type": "str"},
    "status": {"type": "int", "default": 200},
    "unit": {"type": "str"},
    "timeout": {"type": "int", "default": 10},
    "no_log": {"type": "bool", "default": False},
}
CHECK_NEEDS = {"command": "command", "tcp": "port", "http": "url", "service": "unit"}


def check_inputs(module):
    """Field errors of the hooks and health checks, before anything runs; the commands of no_log
    hooks and checks are masked in everything the module returns."""
    for phase, hooks in sorted((module.params["hooks"] or {}).items()):
        for i, hook in enumerate(hooks or []):
            if hook.get("no_log"):
                module.no_log_values.add(hook["command"])
            if not hook["command"].strip():
                module.fail_json(msg=f"hooks.{phase}[{i}].command: empty")
    for i, check in enumerate(module.params["health"]):
        need = CHECK_NEEDS.get(check["kind"])
        if need and check.get(need) in (None, ""):
            module.fail_json(msg=f"health[{i}]: a {check['kind']} check needs {need}")
        if check.get("no_log") and check.get("command"):
            module.no_log_values.add(check["command"])


def main():
    module = AnsibleModule(
        argument_spec={
            "updates": {"type": "list", "elements": "dict", "required": True},
            "pkg_mgr": {"type": "str", "default": "auto", "choices": ["auto", "apt", "dnf", "zypper"]},
            "refresh": {"type": "str", "default": "auto", "choices": ["auto", "always", "never"]},
            "hooks": {
                "type": "dict",
                "default": {},
                "options": {
                    phase: {"type": "list", "elements": "dict", "default": [], "options": HOOK_SPEC}
                    for phase in ("pre_install", "post_install")
                },
            },
            "health": {"type": "list", "elements": "dict", "default": [], "options": CHECK_SPEC},
        },
        supports_check_mode=True,
    )
    check_inputs(module)
    hooks = module.params["hooks"] or {}
    health = module.params["health"]
    pkg_mgr = module.params["pkg_mgr"]
    if pkg_mgr == "auto":
        pkg_mgr = detect_pkg_mgr(module, "auto", read_os()["family"])

    updates, checks = [], []
    for i, upd in enumerate(module.params["updates"]):
        if upd.get("source", "apt") != pkg_mgr:
            continue
        for key in ("uid", "name", "version"):
            if not isinstance(upd.get(key), str) or not upd.get(key):
                module.fail_json(msg=f"updates[{i}]: {key} must be a non-empty string")
        if upd.get("install", True) is True:
            updates.append(upd)
        else:
            checks.append(upd)

    apt = Apt(module) if pkg_mgr == "apt" else Rpm(module, pkg_mgr)
    reboot = (lambda: None) if pkg_mgr == "apt" else apt.reboot_required
    # every requested name, installed or checked: its version after the run goes in the result
    names = [u["name"] for u in updates + checks]
    status = apt.status(names) if names else {}
    todo, present, failed = plan(updates, status)
    if not todo or module.check_mode:
        installed = [u["uid"] for u in todo] if module.check_mode else []
        res = result_of(installed, present, failed, pkg_mgr, reboot(), installed_versions(status))
        if failed:
            module.fail_json(msg=f"{len(failed)} update(s) failed", changed=False, patchctl_apply=res)
        module.exit_json(changed=bool(installed), patchctl_apply=res)

    apt.check_config()
    # the health baseline, then the pre_install hooks: a failing one aborts before any install
    baseline = run_checks(health)
    ran, hook_error = run_hooks(hooks.get("pre_install"), "pre_install")
    if hook_error:
        failed.update({u["uid"]: "not installed: " + hook_error for u in todo})
        res = result_of([], present, failed, pkg_mgr, reboot(), installed_versions(status))
        res.update(hooks=ran, health=compare(baseline, baseline))
        module.fail_json(msg=hook_error + "; nothing installed", changed=False, patchctl_apply=res)

    refresh = module.params["refresh"]
    if refresh == "always" or (refresh == "auto" and not apt.known(todo)):
        apt.refresh()
    _rc, error = apt.install(todo)
    status = apt.status(names)  # the package manager's word after the run
    installed, after = outcome(todo, status, error or "apt-get install failed")
    failed.update(after)
    res = result_of(installed, present, failed, pkg_mgr, reboot(), installed_versions(status))
    post, post_error = run_hooks(hooks.get("post_install"), "post_install")
    compared = compare(baseline, run_checks(health))
    res.update(hooks=ran + post, health=compared)
    if installed:
        # the processes still running the replaced files (a library, an executable)
        res["restart_pending"] = find_restart_pending(lambda args: module.run_command(args, environ_update=C_LOCALE))
    after_errors = [e for e in (post_error, health_error(compared, "after the install")) if e]
    if failed:
        detail = "; ".join(f"{uid}: {why}" for uid, why in sorted(failed.items()))
        msg = f"{len(failed)} update(s) failed: {detail}"
        if error.startswith(INTEGRITY):
            msg = f"{error}; {len(failed)} update(s) not installed: {detail}"
        module.fail_json(msg="; ".join([msg, *after_errors]), changed=bool(installed), patchctl_apply=res)
    if after_errors:
        module.fail_json(msg="; ".join(after_errors), changed=bool(installed), patchctl_apply=res)
    module.exit_json(changed=bool(installed), patchctl_apply=res)


if __name__ == "__main__":
    main()
