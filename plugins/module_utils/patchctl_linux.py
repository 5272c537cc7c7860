# Copyright: patchctl contributors
# Apache License 2.0 (see the LICENSE file of the patchctl project)
"""What patchctl's Linux modules share: OS detection from os-release (the full id table), the
package manager choice, the reboot flag, apt's integrity wording and options, the rpm query format.

Runs on the target host: Python 3.7+, standard library only. patch_apply_linux imports it
(``ansible.module_utils.patchctl_linux``, shipped in its AnsiballZ payload); patch_scan_linux is
one file without module_utils (Ansible pipes it to the host's Python as it is), so it carries a
copy of the block below between the same markers, which tests/unit/test_scan_module_utils.py
keeps equal to this one. Edit here, then copy the block into plugins/modules/patch_scan_linux.py.
"""

import shlex
from pathlib import Path

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
