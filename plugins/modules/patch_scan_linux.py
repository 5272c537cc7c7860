#!/usr/bin/python
# Copyright: patchctl contributors
# Apache License 2.0 (see the LICENSE file of the patchctl project)
#
# Runs on the target host: Python 3.7+, standard library only (no python3-apt).
# The parsing functions are pure and importable, so the unit tests feed them recorded text.
#
# A "JSON arguments" module: it imports nothing from Ansible, and Ansible writes the task's
# arguments into _ARGS_JSON below when it sends the module. Ansible then pipes the file itself to
# the host's Python instead of an AnsiballZ payload that imports its module_utils (compiled
# without a bytecode cache on every run): per host about 0.18 s less CPU on the target and a
# smaller payload (bench/scan_bench.py). ScanModule is the small part of AnsibleModule that the
# scan uses: parameter checking, run_command, get_bin_path, exit_json and fail_json.

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
  - "Backends: C(apt), C(dnf) (dnf 4) and C(zypper). dnf and zypper updates carry their
    advisories (errata, patches): type, severity, CVEs and advisory ids."
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
      - dnf and zypper keep their own metadata expiry; for them this option is ignored and the
        refresh always runs when O(refresh) is true.
      - C(0) always refreshes.
    type: int
    default: 0
  watch:
    description:
      - Package names whose installed versions to return in C(installed).
      - "For apt a name may carry an architecture qualifier, for example C(libc6:i386)."
      - For dnf and zypper the versions come from the rpm database.
    type: list
    elements: str
    default: []
  refresh_retries:
    description:
      - "How often the package manager retries a failed download during the refresh
        (apt C(Acquire::Retries)). Keep it low: every retry of a broken repository costs time."
    type: int
    default: 0
  verify_downloads:
    description:
      - "apt: download the package file of every update it lists (into a throwaway directory,
        removed afterwards), so that apt checks each one against the signed indexes now, not
        only at install time. A tampered or unauthenticated package fails the scan with a
        message starting C(integrity:). Off by default: it fetches every pending update on every
        scan; apt verifies each package at install time anyway."
      - "dnf and zypper: the same, with C(dnf download --destdir) and C(zypper --pkg-cache-dir
        TMP download) (a throwaway package cache, so the install fetches and checks the file
        again)."
    type: bool
    default: false
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
notes:
  - Needs root to refresh the metadata.
  - "Integrity: apt's signature and checksum checks stay on whatever the host's configuration
    says (C(APT::Get::AllowUnauthenticated), C(Acquire::AllowInsecureRepositories) and
    C(Acquire::AllowDowngradeToInsecureRepositories) are forced off for the module's commands). A
    source marked C(trusted=yes) or C(allow-insecure=yes), an unsigned repository, one signed by an
    unknown key, and an index or package whose checksum does not match fail the module with a
    message starting C(integrity:)."
  - "Integrity for dnf: every dnf command carries C(--setopt=gpgcheck=1 --setopt=repo_gpgcheck=1
    --setopt=localpkg_gpgcheck=1 --setopt=*.gpgcheck=1 --setopt=*.repo_gpgcheck=1), whatever the
    repository files say. zypper has no such switch: a C(zypp.conf) or repository file that sets
    C(gpgcheck), C(repo_gpgcheck) or C(pkg_gpgcheck) off fails the module before zypper runs, and
    zypper never gets C(--no-gpg-checks) or C(--gpg-auto-import-keys). Unsigned metadata, an
    unknown key, a bad signature or checksum fail with a message starting C(integrity:)."
  - Commands run with C(LANG=C) so that their output can be parsed.
  - apt refreshes with C(apt-get update -q --error-on=any), retries set from O(refresh_retries)
    through C(Acquire::Retries). On an apt too old for C(--error-on) the warnings that mean a
    failed fetch are treated as errors. It lists with C(apt list --upgradable).
  - dnf refreshes with C(dnf makecache --refresh), lists with C(dnf check-update) (exit code 100 when updates
    exist) and reads the advisories from C(dnf updateinfo list/info --updates). Reboot needed is
    C(dnf needs-restarting -r) exiting 1.
  - zypper refreshes with C(zypper refresh), lists with C(zypper --xmlout list-updates) and
    C(list-patches), and maps patches to packages through C(zypper info -t patch) (its
    C(Conflicts) lines). Reboot needed is C(zypper needs-rebooting) exiting 102.
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
          description: The suite(s) apt names for the candidate, comma joined; for dnf and
            zypper the repository id (alias).
          type: str
          sample: bookworm,bookworm-security
        classification:
          description:
            - apt - C(security) when a suite is a security suite, C(bugfix) when the upstream
              version stays the same, else C(other).
            - dnf and zypper - from the advisories that cover the update, the first of
              C(security), C(bugfix) (zypper C(recommended)), C(enhancement) (zypper
              C(optional)), C(feature); without an advisory as for apt.
          type: str
        major:
          description: The first numeric component of the upstream version grows (epoch and
            Debian revision stripped). Calendar versions (both components at least 1900, as in
            tzdata C(2025b)) never count as major.
          type: bool
        severity:
          description: Always null for apt (the archive gives none). For dnf and zypper the
            highest severity of the covering advisories, lower case (C(critical), C(important),
            C(moderate), C(low)); null when none gives one.
          type: str
        cves:
          description: Always empty for apt. For dnf and zypper the CVEs of the covering advisories.
          type: list
          elements: str
        advisory_ids:
          description: Always empty for apt. For dnf the advisory (erratum) ids, for zypper the
            patch names that cover the update.
          type: list
          elements: str
        held:
          description: Present when a hold keeps the package where it is, naming the hold
            (C(apt-mark hold), C(dnf versionlock), C(zypper lock)). patchctl never deploys it.
          type: str
        source_package:
          description: apt only - the source package the candidate is built from (C(Source:) of
            C(apt-cache show)); null when apt-cache could not say. patchctl reads the candidate's
            changelog once per source package and source version.
          type: str
          sample: openssl
        source_version:
          description: apt only - the candidate's source version (without a binNMU's C(+bN)).
          type: str
    reboot_required:
      description: Whether the host asks for a reboot (apt C(/var/run/reboot-required) exists,
        C(dnf needs-restarting -r) exits 1, C(zypper needs-rebooting) exits 102).
      type: bool
    reboot_required_pkgs:
      description: The packages that asked for it (apt C(/var/run/reboot-required.pkgs), dnf
        the packages C(needs-restarting -r) names; always empty for zypper).
      type: list
      elements: str
    installed:
      description: Installed version of each C(watch) package; a package that is not
        installed is absent.
      type: dict
      sample: {openssl: 3.0.15-1~deb12u1}
    holds:
      description: The package holds of the host (apt C(apt-mark showhold), dnf the versionlock
        plugin's C(/etc/dnf/plugins/versionlock.list), zypper C(/etc/zypp/locks)); C(name) may
        be a glob for zypper.
      type: list
      elements: dict
      sample: [{name: openssl, by: apt-mark hold}]
"""

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Replaced by Ansible with the task's arguments as JSON (ASCII, no triple quote: a raw string).
_ARGS_JSON = r"""<<INCLUDE_ANSIBLE_MODULE_JSON_ARGS>>"""

SCHEMA = 1

# BEGIN patchctl_linux: the code the Linux modules share (plugins/module_utils/patchctl_linux.py).
# The scan module carries a copy, kept equal by tests/unit/test_scan_module_utils.py.

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
# The reboot flag apt hosts set (with .pkgs beside it, naming the packages that asked for it).
REBOOT_REQUIRED = "/var/run/reboot-required"

# What apt says when a signature or checksum does not hold: an integrity problem, not an outage.
INTEGRITY = "integrity: "
INTEGRITY_MARKERS = (
    "is not signed",
    "NO_PUBKEY",
    "GPG error",
    "signatures couldn't be verified",
    "signatures were invalid",
    "signature verification",
    "BADSIG",
    "EXPKEYSIG",
    "REVKEYSIG",
    "Clearsigned file isn't valid",
    "Hash Sum mismatch",
    "File has unexpected size",
    "could not be authenticated",
    "cannot be authenticated",
    "unauthenticated",
)
# Forced on every apt command of the modules: the host's configuration cannot turn the checks off.
APT_VERIFY_OPTIONS = (
    "-o",
    "APT::Get::AllowUnauthenticated=false",
    "-o",
    "Acquire::AllowInsecureRepositories=false",
    "-o",
    "Acquire::AllowDowngradeToInsecureRepositories=false",
)

# Forced on every dnf command of the modules, for the main configuration and every repository
# (``*.``): package signatures and signed metadata are checked whatever the host's files say.
DNF_VERIFY_OPTIONS = (
    "--setopt=gpgcheck=1",
    "--setopt=repo_gpgcheck=1",
    "--setopt=localpkg_gpgcheck=1",
    "--setopt=*.gpgcheck=1",
    "--setopt=*.repo_gpgcheck=1",
)
# What dnf (librepo, rpm) and zypper (libzypp) say when a signature or checksum does not hold.
RPM_INTEGRITY_MARKERS = (
    "GPG verification is enabled, but GPG signature is not available",
    "GPG signature verification error",
    "Bad GPG signature",
    "GPG check FAILED",
    "checksum doesn't match",
    "Public key for",
    "is not signed",
    "is unsigned",
    "signed with an unknown key",
    "Signature verification failed",
    "Digest verification failed",
    "NOKEY",
)
# zypper has no command-line switch that forces the checks on: a host whose configuration turns
# one off is refused instead (zypp.conf and the repository files; "on" is libzypp's default).
ZYPP_ETC = "/etc/zypp"
ZYPPER_CHECKS = ("gpgcheck", "repo_gpgcheck", "pkg_gpgcheck")
_OFF = ("0", "off", "no", "false")


def rpm_integrity_problems(text):
    """The lines of dnf/zypper output that say a signature or checksum failed, without zypper's
    question and answer ("..., continue? [yes/no] (no): no"), each once."""
    found = []
    for raw in text.splitlines():
        line = raw.strip()
        if not any(m.lower() in line.lower() for m in RPM_INTEGRITY_MARKERS):
            continue
        low = line.lower()
        for cut in (", continue?", ". continue?", " continue? ["):
            at = low.find(cut)
            if at >= 0:
                line = line[:at]
                low = low[:at]
        line = line[:300]
        if line not in found:
            found.append(line)
    return found


def insecure_zypp_conf(path, text):
    """``path: key=value`` for each line of a zypp.conf or .repo file that turns a check off."""
    found = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key, value = key.strip().lower(), value.strip().lower()
        if key in ZYPPER_CHECKS and value in _OFF:
            found.append(f"{path}: {key}={value}")
    return found


def zypper_config_problems(etc=None):
    """What in zypper's configuration turns a signature check off (empty: nothing)."""
    base = Path(etc or ZYPP_ETC)
    found = []
    for path in [base / "zypp.conf", *sorted((base / "repos.d").glob("*.repo"))]:
        text = _read(str(path)) if path.is_file() else None
        if text is not None:
            found += insecure_zypp_conf(str(path), text)
    return found


# The one rpm query format of the modules: name, arch and [epoch:]version-release, tab separated.
RPM_QUERY_FORMAT = "%{NAME}\\t%{ARCH}\\t%{EPOCHNUM}\\t%{VERSION}\\t%{RELEASE}\\n"


def rpm_evr(epoch, version, release):
    """`[epoch:]version-release` as dnf and zypper print it (epoch 0 left out)."""
    head = f"{epoch}:" if epoch not in (None, "", "0", "(none)") else ""
    return f"{head}{version}-{release}"


def parse_rpm_query(text):
    """`rpm -q --qf RPM_QUERY_FORMAT NAMES` -> {name: [(arch, evr), ...]}; 'not installed' lines skipped."""
    found = {}
    for raw in text.splitlines():
        parts = raw.split("\t")
        if len(parts) != 5:
            continue
        name, arch, epoch, version, release = parts
        found.setdefault(name, []).append((arch, rpm_evr(epoch, version, release)))
    return found


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


def _read(path):
    """A text file's contents, or None when it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


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


# END patchctl_linux

APT_STAMP = "/var/lib/apt/periodic/update-success-stamp"
APT_ETC = "/etc/apt"  # its sources and apt.conf: checked for signature checks turned off

# Calendar versions (tzdata 2025b, ca-certificates 20250419) are not "major" when the year moves.
_CALENDAR_MIN = 1900


# --------------------------------------------------------------------------------------------
# Pure functions (no I/O): the unit tests import them and feed recorded text.
# --------------------------------------------------------------------------------------------


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


def parse_apt_sources(text):
    """`apt-cache show NAME=VERSION...` (LANG=C) -> {(package, version): (source, source_version)}.

    A record without `Source:` is its own source at its own version; `Source: name (version)`
    names the source's version when it differs (a binNMU's `+b1`, a binary versioned apart)."""
    found = {}
    for record in re.split(r"\n\s*\n", text or ""):
        fields = {}
        for line in record.splitlines():
            if line[:1] in (" ", "\t") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
        name, version = fields.get("Package"), fields.get("Version")
        if not name or not version:
            continue
        source = fields.get("Source") or name
        source_version = version
        match = re.match(r"^(\S+)\s*\((\S+)\)$", source)
        if match:
            source, source_version = match.group(1), match.group(2)
        found[(name, version)] = (source, source_version)
    return found


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


def integrity_problems(lines):
    """The lines among `lines` that say a signature or checksum failed (apt's wording)."""
    return [line for line in lines if any(m.lower() in line.lower() for m in INTEGRITY_MARKERS)]


_FAILED_FETCH = re.compile(r"^E: Failed to fetch (?P<url>\S+)\s+(?P<why>.*?)(?:\s+\[IP: [^\]]*\])?$")


def summarize_fetch_problems(lines):
    """`E: Failed to fetch URL  REASON` lines as `REASON: file, file` (one entry per reason)."""
    by_reason = {}
    other = []
    for line in lines:
        match = _FAILED_FETCH.match(line)
        if match:
            by_reason.setdefault(match.group("why").strip(), []).append(match.group("url").rsplit("/", 1)[-1])
        else:
            other.append(line)
    return [f"{why}: {', '.join(files)}" for why, files in by_reason.items()] + other


_SOURCE_OPTION = re.compile(r"\[([^\]]*)\]")
_INSECURE_OPTIONS = ("trusted", "allow-insecure", "allow-weak", "allow-downgrade-to-insecure")
_APT_CONF_INSECURE = re.compile(
    r"(AllowUnauthenticated|AllowInsecureRepositories|AllowDowngradeToInsecureRepositories|AllowWeakRepositories)"
    r"[\s\"]*(\"?\s*(true|yes|on|1)\b)",
    re.IGNORECASE,
)


def insecure_sources(name, text):
    """Where an apt sources file (one-line `.list` or deb822 `.sources`) turns verification off."""
    found = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith(("deb ", "deb-src ", "deb\t")):
            match = _SOURCE_OPTION.search(line)
            for opt in match.group(1).split() if match else []:
                key, _, value = opt.partition("=")
                if key.lower() in _INSECURE_OPTIONS and value.lower() in ("yes", "true", "1"):
                    found.append(f"{name}: {opt}")
        else:
            key, sep, value = line.partition(":")
            if sep and key.strip().lower() in _INSECURE_OPTIONS and value.strip().lower() in ("yes", "true", "1"):
                found.append(f"{name}: {key.strip()}: {value.strip()}")
    return found


def insecure_apt_conf(name, text):
    """Where an apt.conf file turns signature checks off."""
    found = []
    for raw in text.splitlines():
        line = raw.split("//", 1)[0].strip()
        if _APT_CONF_INSECURE.search(line):
            found.append(f"{name}: {line}")
    return found


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


# --- RPM family (dnf, zypper) ----------------------------------------------------------------

# Severity words of dnf and zypper advisories, lowest first ("unspecified" and "" are none).
SEVERITIES = ("low", "moderate", "important", "critical")
# Advisory types/categories -> classification, strongest first.
_RPM_CLASSES = (
    ("security", "security"),
    ("bugfix", "bugfix"),
    ("recommended", "bugfix"),
    ("enhancement", "enhancement"),
    ("optional", "enhancement"),
    ("feature", "feature"),
)
_RPM_NAME = re.compile(r"^[A-Za-z0-9_+][A-Za-z0-9._+-]*$")


def normalize_severity(value):
    word = (value or "").strip().lower()
    return word if word in SEVERITIES else None


def max_severity(values):
    found = [s for s in (normalize_severity(v) for v in values) if s]
    return max(found, key=SEVERITIES.index) if found else None


def classify_rpm(kinds, installed, candidate):
    """The strongest advisory type of an update; without one, 'bugfix' if only the release
    changes, else 'other'."""
    words = {(k or "").strip().lower() for k in kinds}
    for word, classification in _RPM_CLASSES:
        if word in words:
            return classification
    if words:
        return "other"
    return classify_apt([], installed, candidate)


def _rpm_update(name, arch, installed, version, origin, advisories):
    """One update dict from a package and the advisories (dicts) that cover it."""
    return {
        "name": name,
        "installed_version": installed,
        "version": version,
        "arch": arch,
        "origin": origin,
        "classification": classify_rpm([a.get("type") for a in advisories], installed, version),
        "major": is_major(installed, version),
        "severity": max_severity([a.get("severity") for a in advisories]),
        "cves": sorted({c for a in advisories for c in a.get("cves", [])}),
        "advisory_ids": sorted({a["id"] for a in advisories}),
    }


def parse_dnf_check_update(text):
    """Parse `dnf -q check-update` stdout into [(name, arch, evr, repo)].

    Lines are `name.arch  evr  repo`; dnf wraps a long name onto its own line, so fields are
    collected across lines. The `Obsoleting Packages` section that may follow is not updates.
    A line that leaves fields that do not make an entry raises ValueError.
    """
    rows = []
    fields = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("Obsoleting Packages"):
            break
        if not line or line.startswith(("Last metadata expiration check", "Security:")):
            continue
        fields.extend(line.split())
        if len(fields) < 3:
            continue
        if len(fields) > 3:
            raise ValueError(f"unparsable line in `dnf check-update` output: {line!r}")
        name_arch, evr, repo = fields
        fields = []
        name, dot, arch = name_arch.rpartition(".")
        if not dot or not name:
            raise ValueError(f"unparsable package in `dnf check-update` output: {name_arch!r}")
        rows.append((name, arch, evr, repo))
    if fields:
        raise ValueError(f"incomplete entry at the end of `dnf check-update` output: {' '.join(fields)!r}")
    return rows


def parse_dnf_updateinfo_list(text):
    """`dnf -q updateinfo list --updates` -> {nevra: [advisory id, ...]}.

    Lines are `ID  type-or-severity/Sec.  name-[epoch:]version-release.arch`.
    """
    found = {}
    for raw in text.splitlines():
        parts = raw.split()
        if len(parts) != 3:
            continue
        advisory, _label, nevra = parts
        found.setdefault(nevra, [])
        if advisory not in found[nevra]:
            found[nevra].append(advisory)
    return found


def parse_dnf_updateinfo_info(text):
    """`dnf -q updateinfo info --updates` -> {id: {id, type, severity, cves}}.

    Each advisory is a block of `Key: value` lines under a `====` framed title; a line
    `   : value` continues the key before it (several CVEs, a long description).
    """
    advisories = {}
    current = None
    key = None
    for raw in text.splitlines():
        if raw.startswith("====="):
            key = None
            continue
        if ":" not in raw:
            continue
        head, _, value = raw.partition(":")
        head, value = head.strip(), value.strip()
        if head:
            key = head
        if key == "Update ID" and head:
            current = {"id": value, "type": None, "severity": None, "cves": []}
            advisories[value] = current
        elif current is None:
            continue
        elif key == "Type" and head:
            current["type"] = value
        elif key == "Severity" and head:
            current["severity"] = value
        elif key == "CVEs" and value:
            current["cves"].extend(value.split())
    return advisories


def nevra(name, evr, arch):
    return f"{name}-{evr}.{arch}"


def dnf_updates(check_update, installed, list_text, info_text):
    """The update dicts of a dnf host from its recorded command outputs."""
    by_nevra = parse_dnf_updateinfo_list(list_text)
    info = parse_dnf_updateinfo_info(info_text)
    updates = []
    seen = set()
    for name, arch, evr, repo in parse_dnf_check_update(check_update):
        versions = installed.get(name, [])
        old = next((v for a, v in versions if a == arch), versions[0][1] if versions else None)
        if old is None:
            raise ValueError(f"dnf lists an update of {name}.{arch} but rpm has no such package installed")
        ids = by_nevra.get(nevra(name, evr, arch), [])
        advisories = [info.get(i) or {"id": i, "type": None, "severity": None, "cves": []} for i in ids]
        shown = f"{name}.{arch}" if name in seen else name  # a second architecture of one name
        seen.add(name)
        updates.append(_rpm_update(shown, arch, old, evr, repo, advisories))
    return updates


def parse_dnf_needs_restarting(rc, stdout):
    """(required, packages) from `dnf needs-restarting -r`; None when the output is not that command's."""
    if rc == 0:
        return False, []
    if rc == 1 and "Reboot is required" in stdout:
        pkgs = [line.strip()[2:].strip() for line in stdout.splitlines() if line.strip().startswith("* ")]
        return True, list(dict.fromkeys(pkgs))
    return None


def _xml_root(text, what):
    import xml.etree.ElementTree as ET

    start = text.find("<?xml")
    try:
        # The text is what the host's own zypper printed, not data from the network.
        return ET.fromstring(text[start:] if start >= 0 else text)  # noqa: S314 - output of the local zypper, not untrusted input
    except ET.ParseError as exc:
        raise ValueError(f"unparsable XML from {what}: {exc}") from None


def parse_zypper_updates(text):
    """`zypper --xmlout list-updates` -> [dict(name, arch, version, installed_version, repo)]."""
    root = _xml_root(text, "zypper list-updates")
    rows = []
    for node in root.iter("update"):
        if node.get("kind", "package") != "package":
            continue
        source = node.find("source")
        rows.append(
            {
                "name": node.get("name"),
                "arch": node.get("arch"),
                "version": node.get("edition"),
                "installed_version": node.get("edition-old"),
                "repo": source.get("alias") if source is not None else None,
            }
        )
    return rows


def parse_zypper_patches(text):
    """`zypper --xmlout list-patches` -> [dict(id, status, type, severity, cves)]."""
    root = _xml_root(text, "zypper list-patches")
    rows = []
    for node in root.iter("update"):
        if node.get("kind") != "patch":
            continue
        cves = [i.get("id") for i in node.iter("issue") if i.get("type") == "cve" and i.get("id")]
        rows.append(
            {
                "id": node.get("name"),
                "status": node.get("status"),
                "type": node.get("category"),
                "severity": node.get("severity"),
                "cves": cves,
            }
        )
    return rows


_ZYPPER_ARCHES = ("noarch", "x86_64", "i586", "i686", "aarch64", "ppc64le", "s390x", "armv7hl")


def parse_zypper_patch_info(text):
    """`zypper info -t patch ID...` -> {patch id: [(package name, fixed evr), ...]}.

    The packages a patch updates are its `Conflicts` (`name[.arch] < evr`), on the same line or,
    after `Conflicts : [N]`, one per indented line.
    """
    patches = {}
    current = None
    in_conflicts = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("Information for patch "):
            current = line[len("Information for patch ") :].rstrip(":").strip()
            patches[current] = []
            in_conflicts = False
            continue
        if current is None:
            continue
        head, sep, value = raw.partition(":")
        if sep and raw[:1] not in (" ", "\t") and head.strip():
            in_conflicts = head.strip() == "Conflicts"
            if not in_conflicts:
                continue
            value = value.strip()
            if not value or value.startswith("["):
                continue
            entries = [value]
        elif in_conflicts and line:
            entries = [line]
        else:
            in_conflicts = in_conflicts and bool(line)
            continue
        for entry in entries:
            parts = entry.split()
            if len(parts) == 3 and parts[1] in ("<", "<="):
                name = parts[0]
                base, dot, arch = name.rpartition(".")
                if dot and arch in _ZYPPER_ARCHES:
                    name = base
                patches[current].append((name, parts[2]))
    return patches


_ZYPPER_OPEN = ("needed", "optional", "unwanted")


def zypper_updates(updates_xml, patches_xml, info_text):
    """The update dicts of a zypper host from its recorded command outputs."""
    patches = {p["id"]: p for p in parse_zypper_patches(patches_xml) if p["status"] in _ZYPPER_OPEN}
    fixes = parse_zypper_patch_info(info_text)
    updates = []
    seen = set()
    for row in parse_zypper_updates(updates_xml):
        if not row["name"] or not row["version"] or not row["installed_version"]:
            raise ValueError(f"zypper list-updates entry without name or editions: {row!r}")
        covering = [p for pid, p in patches.items() if any(n == row["name"] for n, _v in fixes.get(pid, []))]
        name = row["name"]
        shown = f"{name}.{row['arch']}" if name in seen else name
        seen.add(name)
        updates.append(_rpm_update(shown, row["arch"], row["installed_version"], row["version"], row["repo"], covering))
    return updates


# --------------------------------------------------------------------------------------------
# Package holds: what the package manager will not upgrade (apt-mark hold, dnf versionlock,
# zypper locks). A held package's update is reported with ``held`` naming the hold.
# --------------------------------------------------------------------------------------------

HOLD_APT = "apt-mark hold"
HOLD_DNF = "dnf versionlock"
HOLD_ZYPPER = "zypper lock"
DNF_VERSIONLOCK_LIST = "/etc/dnf/plugins/versionlock.list"
ZYPPER_LOCKS = "/etc/zypp/locks"


def parse_apt_showhold(text):
    """``apt-mark showhold``: one package name a line (a foreign architecture as C(name:arch))."""
    return sorted({line.strip() for line in (text or "").splitlines() if line.strip()})


def parse_dnf_versionlock(text):
    """The versionlock plugin's list: one C(name-[epoch:]version-release.arch) pattern a line;
    C(#) comments and C(!) (excluded versions, not a lock) skipped. The package names."""
    names = set()
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "!")):
            continue
        parts = line.rsplit("-", 2)
        names.add(parts[0] if len(parts) == 3 else line)
    return sorted(names)


def parse_zypper_locks(text):
    """``/etc/zypp/locks``: blocks of C(key: value) lines; the C(solvable_name) of each package
    lock (a name or a glob)."""
    names = set()
    for block in re.split(r"\n\s*\n", text or ""):
        fields = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        if fields.get("solvable_name") and fields.get("type", "package") == "package":
            names.add(fields["solvable_name"])
    return sorted(names)


def mark_held(updates, holds, kind):
    """Each update whose package a hold names gets ``held``: the kind of hold (shell wildcards
    in the hold's name, as zypper locks have them)."""
    for upd in updates:
        name = upd["name"].split(":", 1)[0] if kind == HOLD_APT else upd["name"]
        if any(fnmatch.fnmatchcase(upd["name"], h) or fnmatch.fnmatchcase(name, h) for h in holds):
            upd["held"] = kind
    return updates


# --------------------------------------------------------------------------------------------
# Backends: one class per package manager. dnf and zypper slot in beside apt.
# --------------------------------------------------------------------------------------------


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

    def holds(self):
        """(the kind of hold, the package names or globs it holds)."""
        return "", []

    def read_file(self, path):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""
        except OSError as exc:
            self.module.fail_json(msg=f"cannot read {path}: {exc}")
        return ""


class AptBackend(Backend):
    name = "apt"

    def metadata_age(self):
        try:
            return max(0.0, time.time() - Path(APT_STAMP).stat().st_mtime)
        except OSError:
            return None

    def refresh(self, retries):
        base = [self.module.get_bin_path("apt-get", required=True), "update", "-q", *APT_VERIFY_OPTIONS]
        tail = ["-o", f"Acquire::Retries={retries}"]
        rc, out, err = self.module.run_command([*base, "--error-on=any", *tail], environ_update=C_LOCALE)
        if rc != 0 and "--error-on" in err:  # apt < 2.1.16: judge the warnings ourselves
            rc, out, err = self.module.run_command([*base, *tail], environ_update=C_LOCALE)
        errors = apt_update_errors(rc, out, err)
        if errors:
            problems = integrity_problems(errors)
            self.module.fail_json(
                msg=(
                    f"{INTEGRITY}apt-get update: {' | '.join(problems)}"
                    if problems
                    else f"apt-get update failed (rc={rc}): {' | '.join(errors)}"
                ),
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

    def check_config(self):
        """Fail when the host's apt configuration turns signature checks off."""
        found = []
        for directory, pattern, check in (
            ("", "sources.list", insecure_sources),
            ("sources.list.d", "*.list", insecure_sources),
            ("sources.list.d", "*.sources", insecure_sources),
            ("", "apt.conf", insecure_apt_conf),
            ("apt.conf.d", "*", insecure_apt_conf),
        ):
            for path in sorted(Path(APT_ETC, directory).glob(pattern)):
                text = _read(str(path)) if path.is_file() else None
                if text is not None:
                    found += check(str(path), text)
        if found:
            self.module.fail_json(msg=f"{INTEGRITY}signature checks are turned off on this host: {' | '.join(found)}")

    def verify_downloads(self, updates):
        """Download every update's package file into a throwaway directory: apt checks it against
        the signed indexes (signature chain and checksums). Fails with `integrity:` when one fails."""
        if not updates:
            return
        apt_get = self.module.get_bin_path("apt-get", required=True)
        specs = [f"{u['name']}={u['version']}" for u in updates]
        tmp = tempfile.mkdtemp(prefix="patchctl-verify-")
        try:
            rc, out, err = self.module.run_command(
                [apt_get, "download", "-q", *APT_VERIFY_OPTIONS, "-o", "APT::Sandbox::User=root", *specs],
                environ_update=C_LOCALE,
                cwd=tmp,
            )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        lines = [line.strip() for line in (err + "\n" + out).splitlines() if line.strip()]
        problems = integrity_problems([line for line in lines if line.startswith(("E:", "W:"))])
        if problems:
            summary = summarize_fetch_problems(list(dict.fromkeys(problems)))
            self.module.fail_json(msg=f"{INTEGRITY}package download check: {' | '.join(summary)}")
        if rc != 0:
            errors = [line for line in lines if line.startswith("E:")] or [_last_line(err or out)]
            self.module.fail_json(msg=f"apt-get download (checking the updates) failed (rc={rc}): {' | '.join(errors)}")

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
            updates = parse_apt_list_upgradable(out, self.native_arch())
        except ValueError as exc:
            self.module.fail_json(msg=str(exc))
            return []
        self.add_sources(updates)
        return updates

    def add_sources(self, updates):
        """Each update's source package and source version, from the local lists (one
        `apt-cache show`); left null when apt-cache cannot say (never fails the scan)."""
        if not updates:
            return
        apt_cache = self.module.get_bin_path("apt-cache")
        sources = {}
        if apt_cache:
            specs = [f"{u['name']}={u['version']}" for u in updates]
            rc, out, _err = self.module.run_command([apt_cache, "show", *specs], environ_update=C_LOCALE)
            sources = parse_apt_sources(out) if rc in (0, 100) else {}
        for u in updates:
            found = sources.get((u["name"].split(":")[0], u["version"]))
            u["source_package"], u["source_version"] = found if found else (None, None)

    def holds(self):
        apt_mark = self.module.get_bin_path("apt-mark", required=True)
        _rc, out, _err = self.run([apt_mark, "showhold"])
        return HOLD_APT, parse_apt_showhold(out)

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


class RpmBackend(Backend):
    """What dnf and zypper hosts share: the rpm database, and failures told apart: a signature or
    checksum that does not hold is an integrity problem, not an outage."""

    def run(self, args, ok_rcs=(0,)):
        rc, out, err = self.module.run_command(args, environ_update=C_LOCALE)
        if rc not in ok_rcs:
            problems = rpm_integrity_problems(err + "\n" + out)
            command = next((a for a in args[1:] if not a.startswith("-")), "")
            what = f"{Path(args[0]).name} {command}".strip()
            self.module.fail_json(
                msg=(
                    f"{INTEGRITY}{what}: {' | '.join(problems)}"
                    if problems
                    else f"{' '.join(args)} failed (rc={rc}): {_last_line(err or out)}"
                ),
                rc=rc,
                stdout=out,
                stderr=err,
            )
        return rc, out, err

    def download_problems(self, args, cwd=None):
        """Run a download of the updates; fail with ``integrity:`` when the output says a file did
        not verify (zypper's download exits 0 even then), else on a failed exit."""
        rc, out, err = self.module.run_command(args, environ_update=C_LOCALE, cwd=cwd)
        problems = rpm_integrity_problems(err + "\n" + out)
        if problems:
            self.module.fail_json(msg=f"{INTEGRITY}package download check: {' | '.join(problems)}")
        if rc != 0:
            self.module.fail_json(
                msg=f"{self.name} download (checking the updates) failed (rc={rc}): {_last_line(err or out)}"
            )

    def installed_rpms(self, names):
        if not names:
            return {}
        bad = [n for n in names if not _RPM_NAME.match(n)]
        if bad:
            self.module.fail_json(msg=f"watch: not an RPM package name: {', '.join(bad)}")
        rpm = self.module.get_bin_path("rpm", required=True)
        # rpm -q exits with the number of names that are not installed.
        args = [rpm, "-q", "--qf", RPM_QUERY_FORMAT, "--", *names]
        _rc, out, _err = self.module.run_command(args, environ_update=C_LOCALE)
        return parse_rpm_query(out)

    def installed(self, names):
        found = self.installed_rpms(names)
        out = {}
        for name in names:
            versions = found.get(name)
            base, _dot, arch = name.rpartition(".")
            if not versions and base in found:  # name.arch
                versions = [(a, v) for a, v in found[base] if a == arch]
            if versions:
                out[name] = versions[0][1]
        return out

    def parsed(self, fn, *args):
        try:
            return fn(*args)
        except ValueError as exc:
            self.module.fail_json(msg=str(exc))
        return None


class DnfBackend(RpmBackend):
    name = "dnf"

    def dnf(self, *args, ok_rcs=(0,)):
        return self.run([self.module.get_bin_path("dnf", required=True), *DNF_VERIFY_OPTIONS, *args], ok_rcs=ok_rcs)

    def verify_downloads(self, updates):
        """Download every update's package into a throwaway directory: dnf checks its checksum
        against the signed metadata (and, forced on, the package signature at install)."""
        if not updates:
            return
        dnf = self.module.get_bin_path("dnf", required=True)
        specs = [f"{u['name']}-{u['version']}" for u in updates]
        tmp = tempfile.mkdtemp(prefix="patchctl-verify-")
        try:
            self.download_problems([dnf, *DNF_VERIFY_OPTIONS, "download", "--destdir", tmp, *specs], cwd=tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def refresh(self, retries):
        self.dnf("-q", "-y", "makecache", "--refresh", f"--setopt=retries={retries}")

    def upgradable(self):
        # -C: the metadata of the refresh above (or the cache as it is, without a refresh).
        rc, check, _err = self.dnf("-q", "-C", "check-update", ok_rcs=(0, 100))
        if rc == 0:
            return []
        rows = self.parsed(parse_dnf_check_update, check)
        installed = self.installed_rpms(sorted({name for name, _a, _e, _r in rows}))
        _rc, listed, _err = self.dnf("-q", "-C", "updateinfo", "list", "--updates")
        _rc, info, _err = self.dnf("-q", "-C", "updateinfo", "info", "--updates")
        return self.parsed(dnf_updates, check, installed, listed, info)

    def reboot_required(self):
        args = [
            self.module.get_bin_path("dnf", required=True),
            *DNF_VERIFY_OPTIONS,
            "-q",
            "-C",
            "needs-restarting",
            "-r",
        ]
        rc, out, err = self.module.run_command(args, environ_update=C_LOCALE)
        result = parse_dnf_needs_restarting(rc, out)
        if result is None:
            self.module.fail_json(
                msg=f"dnf needs-restarting -r failed (rc={rc}): {_last_line(err or out)} "
                "(is dnf-plugins-core installed?)",
                rc=rc,
                stdout=out,
                stderr=err,
            )
        return result


    def holds(self):
        return HOLD_DNF, parse_dnf_versionlock(self.read_file(DNF_VERSIONLOCK_LIST))


class ZypperBackend(RpmBackend):
    name = "zypper"

    def holds(self):
        return HOLD_ZYPPER, parse_zypper_locks(self.read_file(ZYPPER_LOCKS))

    def zypper(self, *args, ok_rcs=(0,)):
        return self.run([self.module.get_bin_path("zypper", required=True), "--non-interactive", *args], ok_rcs=ok_rcs)

    def check_config(self):
        """Fail when zypper's configuration turns a signature check off (zypper has no option
        that forces them on)."""
        found = zypper_config_problems()
        if found:
            self.module.fail_json(msg=f"{INTEGRITY}signature checks are turned off on this host: {' | '.join(found)}")

    def refresh(self, retries):
        self.zypper("--quiet", "refresh")

    def verify_downloads(self, updates):
        """Download every update's package into a throwaway package cache: zypper checks its
        checksum against the signed metadata. Not zypper's own cache, which would keep a file for
        the install without fetching it again."""
        if not updates:
            return
        zypper = self.module.get_bin_path("zypper", required=True)
        specs = [f"{u['name']}={u['version']}" for u in updates]
        tmp = tempfile.mkdtemp(prefix="patchctl-verify-")
        try:
            self.download_problems(
                [zypper, "--non-interactive", "--pkg-cache-dir", tmp, "--no-refresh", "download", *specs]
            )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def upgradable(self):
        # 100/101: patches (security patches) are needed: information, not failure.
        _rc, updates_xml, _err = self.zypper("--no-refresh", "--xmlout", "list-updates", ok_rcs=(0, 100, 101))
        _rc, patches_xml, _err = self.zypper("--no-refresh", "--xmlout", "list-patches", ok_rcs=(0, 100, 101))
        patches = self.parsed(parse_zypper_patches, patches_xml)
        open_ids = [p["id"] for p in patches if p["status"] in _ZYPPER_OPEN and p["id"]]
        info = ""
        if open_ids:
            _rc, info, _err = self.zypper("--no-refresh", "info", "-t", "patch", *open_ids)
        return self.parsed(zypper_updates, updates_xml, patches_xml, info)

    def reboot_required(self):
        rc, _out, _err = self.zypper("needs-rebooting", ok_rcs=(0, 102))
        return rc == 102, []


BACKENDS = {"apt": AptBackend, "dnf": DnfBackend, "zypper": ZypperBackend}


def _last_line(text):
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def scan(module):
    params = module.params
    if params["cache_valid_time"] < 0 or params["refresh_retries"] < 0:
        module.fail_json(msg="cache_valid_time and refresh_retries must not be negative")
    os_fields = read_os()
    pkg_mgr = detect_pkg_mgr(module, params["pkg_mgr"], os_fields["family"])
    backend = BACKENDS[pkg_mgr](module)

    if pkg_mgr in ("apt", "zypper"):
        backend.check_config()
    refreshed = False
    if params["refresh"] and not module.check_mode:
        age = backend.metadata_age()
        fresh = params["cache_valid_time"] > 0 and age is not None and age < params["cache_valid_time"]
        if not fresh:
            backend.refresh(params["refresh_retries"])
            refreshed = True

    updates = backend.upgradable()
    kind, held = backend.holds()
    mark_held(updates, held, kind)
    if params["verify_downloads"] and not module.check_mode:
        backend.verify_downloads([u for u in updates if not u.get("held")])
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
        "holds": [{"name": h, "by": kind} for h in held],
    }


# --------------------------------------------------------------------------------------------
# The module runtime: what the scan needs of AnsibleModule, without importing Ansible.
# --------------------------------------------------------------------------------------------

ARGUMENT_SPEC = {
    "pkg_mgr": {"type": "str", "default": "auto", "choices": ["auto", *PKG_MGRS]},
    "refresh": {"type": "bool", "default": True},
    "cache_valid_time": {"type": "int", "default": 0},
    "watch": {"type": "list", "elements": "str", "default": []},
    "refresh_retries": {"type": "int", "default": 0},
    "verify_downloads": {"type": "bool", "default": False},
}
_TRUE = frozenset(("y", "yes", "on", "1", "true", "t", "1.0"))
_FALSE = frozenset(("n", "no", "off", "0", "false", "f", "0.0"))
_SBIN_DIRS = ("/sbin", "/usr/sbin", "/usr/local/sbin")


class ModuleExit(Exception):
    """Raised by exit_json/fail_json after the result is printed; main() turns it into the exit."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code


def _convert(name, value, spec):
    """`value` as the spec's type (Ansible's conversions for str, bool, int, list); ValueError if not."""
    kind = spec["type"]
    if kind == "str":
        if isinstance(value, (dict, list)):
            raise ValueError(f"{name}: {type(value).__name__} is not a string")
        value = str(value)
    elif kind == "bool":
        if not isinstance(value, bool):
            text = str(value).strip().lower()
            if text not in _TRUE | _FALSE:
                raise ValueError(f"{name}: {value!r} is not a boolean")
            value = text in _TRUE
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, str, float)):
            raise ValueError(f"{name}: {value!r} is not an integer")
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError(f"{name}: {value!r} is not an integer")
            value = int(value)
        else:
            try:
                value = int(value)
            except ValueError:
                raise ValueError(f"{name}: {value!r} is not an integer") from None
    elif kind == "list":
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        elif isinstance(value, (int, float)):
            value = [str(value)]
        elif not isinstance(value, list):
            raise ValueError(f"{name}: {type(value).__name__} is not a list")
        value = [str(v) for v in value]
    choices = spec.get("choices")
    if choices and value not in choices:
        raise ValueError(f"value of {name} must be one of: {', '.join(choices)}, got: {value}")
    return value


class ScanModule:
    """The parts of AnsibleModule the scan uses, with the same names and results."""

    def __init__(self, args, argument_spec=None):
        spec = ARGUMENT_SPEC if argument_spec is None else argument_spec
        self.check_mode = bool(args.get("_ansible_check_mode", False))
        self.params = {}
        unknown = sorted(k for k in args if not k.startswith("_ansible_") and k not in spec)
        if unknown:
            self.fail_json(
                msg=f"Unsupported parameters for (patch_scan_linux) module: {', '.join(unknown)}. "
                f"Supported parameters include: {', '.join(sorted(spec))}."
            )
        for name, item in spec.items():
            value = args.get(name)
            if value is None:
                default = item.get("default")
                self.params[name] = list(default) if isinstance(default, list) else default
                continue
            try:
                self.params[name] = _convert(name, value, item)
            except ValueError as exc:
                # patchctl's scan playbook does not run the role's argument spec check (one more
                # worker per host): the module checks the same types, and names the role variable.
                self.fail_json(msg=f"argument {exc} (role variable patch_scan_linux_{name})")

    def _emit(self, result, code):
        result["invocation"] = {"module_args": dict(self.params)}
        print(json.dumps(result))
        sys.stdout.flush()
        raise ModuleExit(code)

    def exit_json(self, **result):
        self._emit(result, 0)

    def fail_json(self, msg, **result):
        result["failed"] = True
        result["msg"] = msg
        self._emit(result, 1)

    def get_bin_path(self, arg, required=False, opt_dirs=None):
        """The path of executable `arg` on PATH or in the sbin directories; None if absent."""
        dirs = [*(opt_dirs or []), *os.environ.get("PATH", os.defpath).split(os.pathsep), *_SBIN_DIRS]
        for directory in dict.fromkeys(d for d in dirs if d):
            path = os.path.join(directory, arg)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
        if required:
            self.fail_json(msg=f'Failed to find required executable "{arg}" in paths: {os.pathsep.join(dirs)}')
        return None

    def run_command(self, args, environ_update=None, cwd=None):
        """(rc, stdout, stderr) of `args` (a list), run without a shell and without stdin."""
        env = dict(os.environ)
        env.update(environ_update or {})
        try:
            proc = subprocess.run(
                [str(a) for a in args],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                env=env,
                cwd=cwd,
                check=False,
            )
        except OSError as exc:
            self.fail_json(msg=f"{args[0]}: {exc.strerror}", rc=exc.errno, cmd=" ".join(map(str, args)))
            return exc.errno, "", ""
        return (
            proc.returncode,
            proc.stdout.decode("utf-8", errors="replace"),
            proc.stderr.decode("utf-8", errors="replace"),
        )


def main(args=None):
    """Run the scan with `args` (a dict; default: the arguments Ansible wrote into the module)."""
    try:
        if args is None:
            try:
                args = json.loads(_ARGS_JSON)
            except ValueError:
                msg = "patch_scan_linux: no module arguments (run it through Ansible)"
                print(json.dumps({"failed": True, "msg": msg}))
                sys.exit(1)
        module = ScanModule(args)
        module.exit_json(changed=False, patchctl_scan=scan(module))
    except ModuleExit as done:
        sys.exit(done.code)


if __name__ == "__main__":
    main()
