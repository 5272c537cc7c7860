#!/usr/bin/python
# Copyright: patchctl contributors
# Apache License 2.0 (see the LICENSE file of the patchctl project)
#
# Runs on the target host: Python 3.7+, standard library only (no python3-apt).
# The parsing functions are pure and importable, so the unit tests feed them recorded text.

DOCUMENTATION = r"""
---
module: patch_scan_linux
short_description: Scan a Linux host for missing package updates, in one call
description:
  - Refreshes the package metadata (optionally), lists every upgradable package and returns one
    normalized result, C(patchctl_scan), that patchctl stores per host.
  - Never installs, removes or upgrades anything. A metadata refresh is not a change, so
    C(changed) is always false.
  - A refresh that fails in any way (unreachable repository, missing key, unsigned repository)
    fails the module with a message naming the repository, instead of scanning stale lists.
  - "Backends: C(apt) is implemented. C(dnf) and C(zypper) are recognized (detection and
    option validation work) but fail with C(not implemented yet) for now."
version_added: "0.1.0"
author:
  - patchctl contributors
options:
  pkg_mgr:
    description:
      - The package manager to scan with.
      - C(auto) picks the one that matches the family in C(/etc/os-release) if its binary exists,
        else the first of C(apt-get), C(dnf), C(zypper) found on the host.
    type: str
    choices: [auto, apt, dnf, zypper]
    default: auto
  refresh:
    description:
      - Refresh the package metadata before listing (C(apt-get update)).
      - Skipped in check mode (the result then says C(refreshed=false)).
    type: bool
    default: true
  cache_valid_time:
    description:
      - Skip the refresh when the last successful refresh is younger than this many seconds.
      - For apt the age is the modification time of
        C(/var/lib/apt/periodic/update-success-stamp), which this module touches after every
        successful refresh. A host without that stamp is always refreshed.
      - C(0) always refreshes.
    type: int
    default: 0
  watch:
    description:
      - Package names whose installed versions to return in C(installed).
      - "For apt a name may carry an architecture qualifier, for example C(libc6:i386)."
    type: list
    elements: str
    default: []
  refresh_retries:
    description:
      - "How often the package manager retries a failed download during the refresh
        (apt C(Acquire::Retries)). Keep it low: every retry of a broken repository costs time."
    type: int
    default: 0
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
notes:
  - Needs root to refresh the metadata.
  - Commands run with C(LANG=C) so that their output can be parsed.
  - apt refreshes with C(apt-get update -q --error-on=any), retries set from O(refresh_retries)
    through C(Acquire::Retries). On an apt too old for C(--error-on) the warnings that mean a
    failed fetch are treated as errors. It lists with C(apt list --upgradable).
"""

EXAMPLES = r"""
- name: Scan for missing updates
  patch_scan_linux:

- name: Scan without refreshing the lists if they are younger than an hour
  patch_scan_linux:
    cache_valid_time: 3600
    watch:
      - openssl
      - libc6
"""

RETURN = r"""
patchctl_scan:
  description: What the scan found, in the shape patchctl normalizes.
  returned: success
  type: dict
  contains:
    schema:
      description: Version of this result shape.
      type: int
      sample: 1
    pkg_mgr:
      description: The package manager that was scanned.
      type: str
      sample: apt
    os:
      description: The operating system, from C(/etc/os-release). Unknown values are null.
      type: dict
      sample: {family: Debian, distribution: Debian, version: "12", codename: bookworm}
    refreshed:
      description: Whether the metadata was refreshed by this call.
      type: bool
    updates:
      description: One entry per upgradable package.
      type: list
      elements: dict
      contains:
        name:
          description: Package name; a foreign-architecture package carries C(:arch).
          type: str
        installed_version:
          description: The installed version.
          type: str
        version:
          description: The candidate version the update installs.
          type: str
        arch:
          description: The package architecture.
          type: str
        origin:
          description: The suite(s) apt names for the candidate, comma joined.
          type: str
          sample: bookworm,bookworm-security
        classification:
          description: C(security) when a suite is a security suite, C(bugfix) when the
            upstream version stays the same, else C(other).
          type: str
        major:
          description: The first numeric component of the upstream version grows (epoch and
            Debian revision stripped). Calendar versions (both components at least 1900, as in
            tzdata C(2025b)) never count as major.
          type: bool
        severity:
          description: Always null for apt (the archive gives none).
          type: str
        cves:
          description: Always empty for apt.
          type: list
          elements: str
        advisory_ids:
          description: Always empty for apt.
          type: list
          elements: str
    reboot_required:
      description: Whether the host asks for a reboot (C(/var/run/reboot-required) exists).
      type: bool
    reboot_required_pkgs:
      description: The packages that asked for it (C(/var/run/reboot-required.pkgs)).
      type: list
      elements: str
    installed:
      description: Installed version of each C(watch) package; a package that is not
        installed is absent.
      type: dict
      sample: {openssl: 3.0.15-1~deb12u1}
"""

import re
import shlex
import time
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule

SCHEMA = 1
PKG_MGRS = ("apt", "dnf", "zypper")
C_LOCALE = {"LANG": "C", "LC_ALL": "C", "LC_MESSAGES": "C", "LANGUAGE": "C"}

# os-release ID / ID_LIKE words -> Ansible's os_family names.
_FAMILY_BY_ID = {
    "debian": "Debian",
    "ubuntu": "Debian",
    "raspbian": "Debian",
    "linuxmint": "Debian",
    "rhel": "RedHat",
    "fedora": "RedHat",
    "centos": "RedHat",
    "rocky": "RedHat",
    "almalinux": "RedHat",
    "ol": "RedHat",
    "amzn": "RedHat",
    "suse": "Suse",
    "opensuse": "Suse",
    "opensuse-leap": "Suse",
    "opensuse-tumbleweed": "Suse",
    "sles": "Suse",
    "sled": "Suse",
}
# os-release ID -> Ansible's distribution names (others fall back to NAME).
_DISTRIBUTION_BY_ID = {
    "debian": "Debian",
    "ubuntu": "Ubuntu",
    "raspbian": "Debian",
    "rhel": "RedHat",
    "centos": "CentOS",
    "fedora": "Fedora",
    "rocky": "Rocky",
    "almalinux": "AlmaLinux",
    "ol": "OracleLinux",
    "amzn": "Amazon",
    "sles": "SLES",
    "sled": "SLED",
    "opensuse-leap": "openSUSE Leap",
    "opensuse-tumbleweed": "openSUSE Tumbleweed",
}
_PKG_MGR_BY_FAMILY = {"Debian": "apt", "RedHat": "dnf", "Suse": "zypper"}
_BINARY_BY_PKG_MGR = {"apt": "apt-get", "dnf": "dnf", "zypper": "zypper"}

OS_RELEASE_PATHS = ("/etc/os-release", "/usr/lib/os-release")
REBOOT_REQUIRED = "/var/run/reboot-required"
APT_STAMP = "/var/lib/apt/periodic/update-success-stamp"

# Calendar versions (tzdata 2025b, ca-certificates 20250419) are not "major" when the year moves.
_CALENDAR_MIN = 1900


# --------------------------------------------------------------------------------------------
# Pure functions (no I/O): the unit tests import them and feed recorded text.
# --------------------------------------------------------------------------------------------


def parse_os_release(text):
    """Return the KEY=value pairs of an os-release file as a dict (values unquoted)."""
    fields = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        try:
            words = shlex.split(value)
        except ValueError:
            words = [value.strip("\"'")]
        fields[key.strip()] = " ".join(words)
    return fields


def os_info(fields):
    """Turn os-release fields into {family, distribution, version, codename} (None if unknown)."""
    os_id = fields.get("ID", "").lower()
    family = None
    for word in [os_id, *fields.get("ID_LIKE", "").lower().split()]:
        if word in _FAMILY_BY_ID:
            family = _FAMILY_BY_ID[word]
            break
    distribution = _DISTRIBUTION_BY_ID.get(os_id) or fields.get("NAME") or os_id or None
    return {
        "family": family,
        "distribution": distribution,
        "version": fields.get("VERSION_ID") or None,
        "codename": fields.get("VERSION_CODENAME") or None,
    }


def split_debian_version(version):
    """Split '[epoch:]upstream[-revision]' into (epoch, upstream, revision)."""
    epoch, sep, rest = version.partition(":")
    if not sep:
        epoch, rest = "", version
    upstream, sep, revision = rest.rpartition("-")
    if not sep:
        upstream, revision = rest, ""
    return epoch, upstream, revision


def _first_number(upstream):
    match = re.match(r"\D*(\d+)", upstream)
    return int(match.group(1)) if match else None


def is_major(installed, candidate):
    """True when the first numeric component of the upstream version grows.

    Epoch and Debian revision are stripped first. Calendar versions (both components >= 1900,
    e.g. tzdata 2025b -> 2026a) are never major: a new year is not a new major release.
    """
    old = _first_number(split_debian_version(installed)[1])
    new = _first_number(split_debian_version(candidate)[1])
    if old is None or new is None:
        return False
    if old >= _CALENDAR_MIN and new >= _CALENDAR_MIN:
        return False
    return new > old


def is_security_suite(suite):
    return suite.endswith("-security") or "security" in suite.lower()


def classify_apt(suites, installed, candidate):
    """'security' if a suite is a security suite, 'bugfix' if the upstream stays, else 'other'."""
    if any(is_security_suite(s) for s in suites):
        return "security"
    if split_debian_version(installed)[1] == split_debian_version(candidate)[1]:
        return "bugfix"
    return "other"


_APT_LIST_LINE = re.compile(
    r"^(?P<name>[^\s/]+)/(?P<suites>\S+)\s+(?P<version>\S+)\s+(?P<arch>\S+)"
    r"\s+\[upgradable from:\s+(?P<installed>[^\s\]]+)\]\s*$"
)


def _apt_update(match, native_arch):
    name = match.group("name")
    arch = match.group("arch")
    if native_arch and ":" not in name and arch not in (native_arch, "all"):
        name = f"{name}:{arch}"  # how apt and dpkg name a foreign-architecture package
    suites = [s for s in match.group("suites").split(",") if s]
    installed = match.group("installed")
    version = match.group("version")
    return {
        "name": name,
        "installed_version": installed,
        "version": version,
        "arch": arch,
        "origin": ",".join(suites),
        "classification": classify_apt(suites, installed, version),
        "major": is_major(installed, version),
        "severity": None,
        "cves": [],
        "advisory_ids": [],
    }


def parse_apt_list_upgradable(text, native_arch=None):
    """Parse the stdout of `apt list --upgradable` (LANG=C) into update dicts.

    Lines look like `name/suite1,suite2 newver arch [upgradable from: oldver]`. The
    "Listing..." line, apt's CLI WARNING and N:/W: notes are skipped. Any other line raises
    ValueError: an update silently dropped is worse than a failed scan.
    """
    updates = []
    for raw in text.splitlines():
        line = raw.strip()
        if (
            not line
            or line.startswith("Listing...")
            or line.startswith("WARNING: apt does not have a stable CLI")
            or line.startswith(("N: ", "W: "))
        ):
            continue
        match = _APT_LIST_LINE.match(line)
        if not match:
            raise ValueError(f"unparsable line in `apt list --upgradable` output: {line!r}")
        updates.append(_apt_update(match, native_arch))
    return updates


# The warnings an apt without --error-on=any gives for a refresh that did not really work.
_APT_UPDATE_PROBLEMS = (
    "W: Failed to fetch",
    "W: GPG error",
    "W: Some index files failed to download",
    "W: The repository",
    "W: An error occurred during the signature verification",
)


def apt_update_errors(rc, stdout, stderr):
    """The lines that make an `apt-get update` a failure; empty when it worked."""
    lines = [line.strip() for line in (stderr + "\n" + stdout).splitlines()]
    # GPG warnings name the missing key: keep them, in order, next to the E: lines.
    found = [line for line in lines if line.startswith(("E:", *_APT_UPDATE_PROBLEMS))]
    if not found and rc != 0:
        tail = [line for line in lines if line]
        found = [tail[-1] if tail else f"apt-get update exited with {rc}"]
    return list(dict.fromkeys(found))


_DPKG_INSTALLED = ("i", "W", "t")  # installed, triggers awaited, triggers pending


def parse_dpkg_query(text, names):
    """Map each of `names` to its installed version from `dpkg-query -W` output.

    The output format is `${Package}\\t${Architecture}\\t${Version}\\t${db:Status-Abbrev}`.
    A name is `pkg` or `pkg:arch`; packages that are not installed (or only have config files
    left) are absent from the result.
    """
    rows = []
    for raw in text.splitlines():
        parts = raw.split("\t")
        if len(parts) < 4:
            continue
        package, arch, version, status = parts[0], parts[1], parts[2], parts[3]
        if len(status) >= 2 and status[1] in _DPKG_INSTALLED and version:
            rows.append((package, arch, version))
    installed = {}
    for name in names:
        package, _, arch = name.partition(":")
        for row_pkg, row_arch, version in rows:
            if row_pkg == package and (not arch or arch == row_arch):
                installed[name] = version
                break
    return installed


def parse_reboot_pkgs(text):
    """The package names of /var/run/reboot-required.pkgs, de-duplicated, in order."""
    return list(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))


_APT_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]*(:[a-z0-9-]+)?$")


# --------------------------------------------------------------------------------------------
# Backends: one class per package manager. dnf and zypper slot in beside apt.
# --------------------------------------------------------------------------------------------


def _read(path):
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


class Backend:
    """What the scan needs from a package manager."""

    name = ""

    def __init__(self, module):
        self.module = module

    def run(self, args, ok_rcs=(0,)):
        rc, out, err = self.module.run_command(args, environ_update=C_LOCALE)
        if rc not in ok_rcs:
            self.module.fail_json(
                msg=f"{' '.join(args)} failed (rc={rc}): {_last_line(err or out)}",
                rc=rc,
                stdout=out,
                stderr=err,
            )
        return rc, out, err

    def not_implemented(self):
        self.module.fail_json(msg=f"patch_scan_linux: the {self.name} backend is not implemented yet")

    def metadata_age(self):
        """Seconds since the last successful refresh, or None if unknown."""
        return None

    def refresh(self, retries):
        self.not_implemented()

    def upgradable(self):
        self.not_implemented()
        return []

    def installed(self, names):
        self.not_implemented()
        return {}

    def reboot_required(self):
        """(required, packages)."""
        self.not_implemented()
        return False, []


class AptBackend(Backend):
    name = "apt"

    def metadata_age(self):
        try:
            return max(0.0, time.time() - Path(APT_STAMP).stat().st_mtime)
        except OSError:
            return None

    def refresh(self, retries):
        base = [self.module.get_bin_path("apt-get", required=True), "update", "-q"]
        tail = ["-o", f"Acquire::Retries={retries}"]
        rc, out, err = self.module.run_command([*base, "--error-on=any", *tail], environ_update=C_LOCALE)
        if rc != 0 and "--error-on" in err:  # apt < 2.1.16: judge the warnings ourselves
            rc, out, err = self.module.run_command([*base, *tail], environ_update=C_LOCALE)
        errors = apt_update_errors(rc, out, err)
        if errors:
            self.module.fail_json(
                msg=f"apt-get update failed (rc={rc}): {' | '.join(errors)}",
                rc=rc,
                stdout=out,
                stderr=err,
            )
        self._touch_stamp()

    @staticmethod
    def _touch_stamp():
        # The same stamp Debian's APT::Periodic and update-notifier use for "last good update".
        try:
            stamp = Path(APT_STAMP)
            stamp.parent.mkdir(parents=True, exist_ok=True)
            stamp.touch()
        except OSError:
            pass

    def native_arch(self):
        dpkg = self.module.get_bin_path("dpkg")
        if not dpkg:
            return None
        rc, out, _err = self.module.run_command([dpkg, "--print-architecture"], environ_update=C_LOCALE)
        if rc != 0 or not out.strip():
            return None
        return out.strip()

    def upgradable(self):
        apt = self.module.get_bin_path("apt", required=True)
        _rc, out, _err = self.run([apt, "list", "--upgradable"])
        try:
            return parse_apt_list_upgradable(out, self.native_arch())
        except ValueError as exc:
            self.module.fail_json(msg=str(exc))
        return []

    def installed(self, names):
        if not names:
            return {}
        bad = [n for n in names if not _APT_NAME.match(n)]
        if bad:
            self.module.fail_json(msg=f"watch: not a Debian package name: {', '.join(bad)}")
        dpkg_query = self.module.get_bin_path("dpkg-query", required=True)
        fmt = "${Package}\\t${Architecture}\\t${Version}\\t${db:Status-Abbrev}\\n"
        # rc 1 only says that some names matched no package.
        _rc, out, _err = self.run([dpkg_query, "-W", "-f=" + fmt, "--", *names], ok_rcs=(0, 1))
        return parse_dpkg_query(out, names)

    def reboot_required(self):
        if not Path(REBOOT_REQUIRED).exists():
            return False, []
        return True, parse_reboot_pkgs(_read(REBOOT_REQUIRED + ".pkgs") or "")


class DnfBackend(Backend):
    name = "dnf"


class ZypperBackend(Backend):
    name = "zypper"


BACKENDS = {"apt": AptBackend, "dnf": DnfBackend, "zypper": ZypperBackend}


def _last_line(text):
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def read_os():
    for path in OS_RELEASE_PATHS:
        text = _read(path)
        if text is not None:
            return os_info(parse_os_release(text))
    return os_info({})


def detect_pkg_mgr(module, wanted, family):
    """The package manager to use: `wanted`, or for auto the family's, else the first found."""
    if wanted != "auto":
        if not module.get_bin_path(_BINARY_BY_PKG_MGR[wanted]):
            module.fail_json(msg=f"pkg_mgr={wanted} but {_BINARY_BY_PKG_MGR[wanted]} is not on this host")
        return wanted
    order = list(PKG_MGRS)
    preferred = _PKG_MGR_BY_FAMILY.get(family)
    if preferred:
        order.remove(preferred)
        order.insert(0, preferred)
    for mgr in order:
        if module.get_bin_path(_BINARY_BY_PKG_MGR[mgr]):
            return mgr
    module.fail_json(msg="no supported package manager found (apt-get, dnf, zypper)")
    return None


def scan(module):
    params = module.params
    if params["cache_valid_time"] < 0 or params["refresh_retries"] < 0:
        module.fail_json(msg="cache_valid_time and refresh_retries must not be negative")
    os_fields = read_os()
    pkg_mgr = detect_pkg_mgr(module, params["pkg_mgr"], os_fields["family"])
    backend = BACKENDS[pkg_mgr](module)

    refreshed = False
    if params["refresh"] and not module.check_mode:
        age = backend.metadata_age()
        fresh = params["cache_valid_time"] > 0 and age is not None and age < params["cache_valid_time"]
        if not fresh:
            backend.refresh(params["refresh_retries"])
            refreshed = True

    updates = backend.upgradable()
    reboot, reboot_pkgs = backend.reboot_required()
    return {
        "schema": SCHEMA,
        "pkg_mgr": pkg_mgr,
        "os": os_fields,
        "refreshed": refreshed,
        "updates": updates,
        "reboot_required": reboot,
        "reboot_required_pkgs": reboot_pkgs,
        "installed": backend.installed(list(dict.fromkeys(params["watch"] or []))),
    }


def main():
    module = AnsibleModule(
        argument_spec={
            "pkg_mgr": {"type": "str", "default": "auto", "choices": ["auto", *PKG_MGRS]},
            "refresh": {"type": "bool", "default": True},
            "cache_valid_time": {"type": "int", "default": 0},
            "watch": {"type": "list", "elements": "str", "default": []},
            "refresh_retries": {"type": "int", "default": 0},
        },
        supports_check_mode=True,
    )
    module.exit_json(changed=False, patchctl_scan=scan(module))


if __name__ == "__main__":
    main()
