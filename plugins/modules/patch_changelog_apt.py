#!/usr/bin/python
# Copyright: patchctl contributors
# Apache License 2.0 (see the LICENSE file of the patchctl project)
#
# Runs on the target host: Python 3.7+, standard library only. The pure parts (reading the doc
# directory out of a package's data tarball) are importable, so the unit tests feed them real
# archives.

DOCUMENTATION = r"""
---
module: patch_changelog_apt
short_description: Fetch the Debian changelog of candidate packages, signatures checked
description:
  - For each source package and version asked, downloads one of its binary packages with
    C(apt-get download) into a throwaway directory (removed afterwards), so apt checks the file
    against the signed indexes exactly as an install would, and returns the text of its
    C(usr/share/doc/PKG/changelog.Debian.gz) (a binNMU's C(changelog.Debian.ARCH.gz) in front; a
    native package's C(changelog.gz)).
  - When the binary's doc directory is a symlink to another binary's (a common Debian layout),
    that binary of the same version is downloaded instead.
  - Never installs anything; C(changed) is always false. A package that cannot be fetched or has
    no readable changelog is reported with its reason, never a failed task.
  - patchctl asks each (source, version) of one host only, the first to report it.
version_added: "0.1.0"
author:
  - patchctl contributors
options:
  packages:
    description:
      - What to fetch, one entry per source package and source version.
      - "Each entry: C(source), C(source_version), C(binaries) (a list of C({name, version}) the
        host reports, tried in order)."
    type: list
    elements: dict
    required: true
  max_bytes:
    description: The longest changelog text returned; a longer one is cut at an entry boundary.
    type: int
    default: 1048576
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
notes:
  - The downloads run with C(APT::Get::AllowUnauthenticated), C(Acquire::AllowInsecureRepositories)
    and C(Acquire::AllowDowngradeToInsecureRepositories) forced off; a signature or checksum
    that does not hold gives C(fetch_failed) with a reason starting C(integrity:).
"""

EXAMPLES = r"""
- name: Fetch the changelog of openssl 3.0.22-1~deb12u2
  patch_changelog_apt:
    packages:
      - source: openssl
        source_version: 3.0.22-1~deb12u2
        binaries:
          - {name: libssl3, version: 3.0.22-1~deb12u2}
"""

RETURN = r"""
patchctl_changelogs:
  description: One entry per package asked, in order.
  returned: always
  type: list
  elements: dict
  contains:
    source:
      description: The source package asked.
      type: str
    source_version:
      description: The source version asked.
      type: str
    status:
      description: C(ok) (text holds the changelog), C(unreadable) (the package came, its
        changelog could not be read), C(fetch_failed) (no package could be downloaded).
      type: str
    reason:
      description: Why not C(ok); null when ok.
      type: str
    package:
      description: C(NAME=VERSION) of the binary package the changelog came from.
      type: str
    downloads:
      description: How many package files were downloaded for this entry.
      type: int
    text:
      description: The changelog text (binNMU entries first); null unless ok.
      type: str
"""

import gzip
import os
import shutil
import subprocess
import tarfile
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.patchctl_linux import APT_VERIFY_OPTIONS, C_LOCALE, INTEGRITY, INTEGRITY_MARKERS

OK = "ok"
UNREADABLE = "unreadable"
FETCH_FAILED = "fetch_failed"
DOC = "./usr/share/doc/"


def is_native(version):
    """A native Debian package (no Debian revision): its ``changelog.gz`` is the Debian changelog
    (Debian policy 12.7)."""
    return "-" not in version.split(":", 1)[-1]


def doc_members(tar, name, native=False):
    """From a package's data tarball (an open ``tarfile`` in stream mode): (changelogs, link).

    ``changelogs``: the gzip bytes of ``changelog.Debian.ARCH.gz`` files (binNMUs) followed by
    ``changelog.Debian.gz`` (a ``native`` package's ``changelog.gz`` when it has no
    ``changelog.Debian.gz``), from ``usr/share/doc/NAME/``; ``link``: the doc directory's symlink
    target (a binary package name) when the directory is a symlink, else None."""
    base = DOC + name
    arch_logs, main_log, native_log, link = [], None, None, None
    for member in tar:
        path = member.name if member.name.startswith("./") else "./" + member.name.lstrip("/")
        if path.rstrip("/") == base and member.issym():
            link = os.path.basename(member.linkname.rstrip("/"))
            continue
        if not path.startswith(base + "/") or not member.isfile():
            continue
        leaf = path[len(base) + 1 :]
        if leaf == "changelog.Debian.gz":
            main_log = tar.extractfile(member).read()
        elif leaf == "changelog.gz" and native:
            native_log = tar.extractfile(member).read()
        elif leaf.startswith("changelog.Debian.") and leaf.endswith(".gz") and "/" not in leaf:
            arch_logs.append(tar.extractfile(member).read())
    main_log = main_log if main_log is not None else native_log
    return ([*arch_logs, main_log] if main_log is not None else []), link


def changelog_text(blobs, max_bytes):
    """The changelogs' text, cut at an entry heading (a line that is not indented) when longer
    than ``max_bytes``. Raises ValueError when a file is not gzip."""
    text = "\n".join(gzip.decompress(b).decode("utf-8", errors="replace").rstrip("\n") + "\n" for b in blobs)
    if len(text) <= max_bytes:
        return text
    cut = text.rfind("\n\n", 0, max_bytes)
    while cut > 0 and text[cut + 2 : cut + 3] in (" ", "\t", ""):
        cut = text.rfind("\n\n", 0, cut)
    return text[: cut + 1] if cut > 0 else text[:max_bytes]


def _problem(err, out):
    lines = [line.strip() for line in (err + "\n" + out).splitlines() if line.strip()]
    integrity = [line for line in lines if line.startswith(("E:", "W:")) and any(m in line for m in INTEGRITY_MARKERS)]
    if integrity:
        return INTEGRITY + " | ".join(dict.fromkeys(integrity))
    errors = [line for line in lines if line.startswith("E:")]
    return " | ".join(errors) if errors else (lines[-1] if lines else "no output")


class Fetcher:
    def __init__(self, module):
        self.module = module
        self.apt_get = module.get_bin_path("apt-get", required=True)
        self.dpkg_deb = module.get_bin_path("dpkg-deb", required=True)

    def download(self, spec, tmp):
        """The path of the downloaded ``NAME=VERSION`` package, or (None, reason)."""
        before = set(os.listdir(tmp))
        rc, out, err = self.module.run_command(
            [self.apt_get, "download", "-q", *APT_VERIFY_OPTIONS, "-o", "APT::Sandbox::User=root", spec],
            environ_update=C_LOCALE,
            cwd=tmp,
        )
        new = sorted(f for f in set(os.listdir(tmp)) - before if f.endswith(".deb"))
        if rc != 0 or not new:
            return None, f"apt-get download {spec} failed (rc={rc}): {_problem(err, out)}"
        return os.path.join(tmp, new[0]), None

    def read_doc(self, deb, name, version):
        proc = subprocess.Popen(
            [self.dpkg_deb, "--fsys-tarfile", deb],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **C_LOCALE},
        )
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|*") as tar:
                found = doc_members(tar, name, is_native(version))
        except (tarfile.TarError, OSError) as exc:
            proc.kill()
            proc.wait()
            raise ValueError(f"dpkg-deb --fsys-tarfile {os.path.basename(deb)}: {exc}") from None
        proc.stdout.close()
        err = proc.stderr.read().decode("utf-8", errors="replace").strip()
        if proc.wait() != 0:
            raise ValueError(f"dpkg-deb --fsys-tarfile {os.path.basename(deb)} failed: {err or 'no message'}")
        return found

    def fetch(self, entry, max_bytes):
        result = {
            "source": entry.get("source"),
            "source_version": entry.get("source_version"),
            "status": FETCH_FAILED,
            "reason": None,
            "package": None,
            "downloads": 0,
            "text": None,
        }
        queue = [(b["name"].split(":")[0], b["version"]) for b in entry.get("binaries") or []]
        tried, reasons = set(), []
        tmp = tempfile.mkdtemp(prefix="patchctl-changelog-")
        try:
            while queue:
                name, version = queue.pop(0)
                spec = f"{name}={version}"
                if spec in tried:
                    continue
                tried.add(spec)
                deb, why = self.download(spec, tmp)
                if deb is None:
                    reasons.append(why)
                    if why.startswith(INTEGRITY):
                        break  # a signature that does not hold: no other file of it is trusted either
                    continue
                result["downloads"] += 1
                try:
                    blobs, link = self.read_doc(deb, name, version)
                    if blobs:
                        result.update(status=OK, reason=None, package=spec, text=changelog_text(blobs, max_bytes))
                        return result
                except (ValueError, OSError, EOFError) as exc:
                    result.update(status=UNREADABLE, package=spec)
                    reasons.append(f"{spec}: {exc}")
                    continue
                finally:
                    os.unlink(deb)
                result.update(status=UNREADABLE, package=spec)
                if link and f"{link}={version}" not in tried:
                    reasons.append(f"{spec}: usr/share/doc/{name} is a symlink to {link}")
                    queue.insert(0, (link, version))
                else:
                    reasons.append(f"{spec}: no usr/share/doc/{name}/changelog.Debian.gz in the package")
            result["reason"] = "; ".join(reasons) or "no binary package to download"
            return result
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def main():
    module = AnsibleModule(
        argument_spec={
            "packages": {"type": "list", "elements": "dict", "required": True},
            "max_bytes": {"type": "int", "default": 1048576},
        },
        supports_check_mode=True,
    )
    for i, entry in enumerate(module.params["packages"]):
        for key in ("source", "source_version"):
            if not isinstance(entry.get(key), str) or not entry.get(key):
                module.fail_json(msg=f"packages[{i}]: {key} must be a non-empty string")
        if not isinstance(entry.get("binaries"), list):
            module.fail_json(msg=f"packages[{i}]: binaries must be a list")
    if module.check_mode:
        module.exit_json(changed=False, patchctl_changelogs=[])
    fetcher = Fetcher(module)
    results = [fetcher.fetch(entry, module.params["max_bytes"]) for entry in module.params["packages"]]
    module.exit_json(changed=False, patchctl_changelogs=results)


if __name__ == "__main__":
    main()
