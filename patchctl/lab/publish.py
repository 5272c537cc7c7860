"""Publish a package into a running lab's repositories: ``patchctl lab repo publish``.

Tests and rehearsals supersede an update while the lab runs: build a small package of the given
name and version, add it to the repository the hosts use, re-index and (apt) re-sign with the
lab key, and, with ``drop_older``, leave the older versions of that name out of the index, as
Debian's archives and most third-party repositories keep only the newest.

The apt hosts read the apt repository (``repo/debian``, suites bookworm and bookworm-security);
dnf and zypper hosts share one RPM repository (``repo/rpm``), so ``--pkg-mgr dnf`` and
``--pkg-mgr zypper`` publish into the same place. The served files change by renames, indexes
before the file that names them (InRelease, repomd.xml), so a host never reads a half-written
index. Publishing the same version again changes nothing (no rebuild, no new signature).
"""

from __future__ import annotations

import fcntl
import functools
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from patchctl.errors import EXIT_USAGE, ConfigError, PatchctlError
from patchctl.lab import repo, rpm
from patchctl.rules.versions import compare_debian, compare_rpm

if TYPE_CHECKING:
    from patchctl.lab.fleet import Lab

PKG_MGRS = ("apt", "dnf", "zypper")
DEFAULT_SUITE = "bookworm"
# updateinfo types, the classifications an RPM advisory can carry
ADVISORY_TYPES = ("security", "bugfix", "enhancement")
SEVERITIES = ("Low", "Moderate", "Important", "Critical")
# the advisories published into a lab's RPM repository, kept beside it (removed with it)
ADVISORIES_FILE = "published-advisories.json"

_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")
# UPSTREAM-REVISION with one dash: a Debian version without epoch that is also an RPM
# version-release (neither part may hold a dash in RPM)
_VERSION = re.compile(r"(?P<upstream>[0-9][A-Za-z0-9.+~]*)-(?P<revision>[A-Za-z0-9.+~]+)")


@dataclass(frozen=True)
class PublishRequest:
    name: str
    version: str  # UPSTREAM-REVISION, e.g. 1.2-1
    pkg_mgr: str = "apt"
    suite: str | None = None  # apt only; default bookworm
    drop_older: bool = False
    classification: str | None = None  # RPM only: an advisory of this updateinfo type
    severity: str | None = None  # RPM only, with classification


@dataclass(frozen=True)
class PublishResult:
    repository: str  # "apt" or "rpm" (shared by dnf and zypper)
    name: str
    version: str
    suite: str | None
    added: bool  # the package was built and added (False: it was there already)
    dropped: tuple[str, ...]  # versions left out of the index
    advisory: str | None  # the id of the advisory now carrying it (RPM)
    changed: bool  # the served indexes changed


def validate(req: PublishRequest) -> PublishRequest:
    """The request checked, with its defaults filled in; a ConfigError names the bad argument."""
    if not _NAME.fullmatch(req.name):
        raise ConfigError(
            f"lab repo publish: NAME must be a package name (lower case letters, digits, '+.-'), got {req.name!r}"
        )
    if not _VERSION.fullmatch(req.version):
        raise ConfigError(
            f"lab repo publish: VERSION must be UPSTREAM-REVISION starting with a digit, one '-', no epoch "
            f"(e.g. 1.2-1), got {req.version!r}"
        )
    if req.pkg_mgr not in PKG_MGRS:
        raise ConfigError(f"lab repo publish: --pkg-mgr must be one of {', '.join(PKG_MGRS)}, got {req.pkg_mgr!r}")
    if req.pkg_mgr == "apt":
        if req.classification or req.severity:
            raise ConfigError(
                "lab repo publish: --classification and --severity are for RPM advisories; "
                "an apt security update is published with --suite bookworm-security"
            )
        suite = req.suite or DEFAULT_SUITE
        if suite not in repo.SUITES:
            raise ConfigError(f"lab repo publish: --suite must be one of {', '.join(repo.SUITES)}, got {suite!r}")
        return PublishRequest(req.name, req.version, "apt", suite, req.drop_older)
    if req.suite:
        raise ConfigError("lab repo publish: --suite is for apt; dnf and zypper share one RPM repository")
    if req.classification is not None and req.classification not in ADVISORY_TYPES:
        raise ConfigError(
            f"lab repo publish: --classification must be one of {', '.join(ADVISORY_TYPES)}, got {req.classification!r}"
        )
    if req.severity is not None:
        if req.classification != "security":
            raise ConfigError("lab repo publish: --severity needs --classification security")
        if req.severity not in SEVERITIES:
            raise ConfigError(
                f"lab repo publish: --severity must be one of {', '.join(SEVERITIES)}, got {req.severity!r}"
            )
    return req


def publish(lab: Lab, req: PublishRequest) -> PublishResult:
    """Publish into the running ``lab``'s repository for ``req.pkg_mgr``."""
    req = validate(req)
    if not lab.is_up():
        raise PatchctlError(f"lab: not up in {lab.dir}; run 'patchctl lab up' first", EXIT_USAGE)
    repo_dir = lab.dir / "repo"
    with _locked(repo_dir):
        if req.pkg_mgr == "apt":
            return publish_deb(repo_dir, lab.dir / "repo-gnupg", req)
        if not (repo_dir / rpm.REPO_SUBDIR / "repodata" / "repomd.xml").is_file():
            raise PatchctlError(
                f"lab: no RPM repository in {lab.dir} (it is built for a lab with --dnf-hosts or --zypper-hosts)",
                EXIT_USAGE,
            )
        return publish_rpm(repo_dir, lab.dir / "repo-gnupg", req)


@contextmanager
def _locked(repo_dir: Path) -> Iterator[None]:
    """One publish at a time per lab."""
    with open(repo_dir / ".publish.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _kill_agent(gnupg: Path) -> None:
    # gpg starts an agent: never leave it running.
    subprocess.run(["gpgconf", "--homedir", str(gnupg), "--kill", "all"], capture_output=True, check=False)


# -- apt ---------------------------------------------------------------------------------------------
def _debs(pool: Path, name: str) -> dict[str, Path]:
    """version -> pool file of the package ``name`` (files are NAME_VERSION_all.deb)."""
    out = {}
    for deb in pool.glob(f"{name}_*_all.deb"):
        pkg, version, _arch = deb.name[: -len(".deb")].split("_")
        if pkg == name:
            out[version] = deb
    return out


def _arch(debian: Path) -> str:
    for binary in sorted((debian / "dists" / DEFAULT_SUITE / "main").glob("binary-*")):
        return binary.name.removeprefix("binary-")
    raise PatchctlError(f"lab: the apt repository in {debian} has no index", EXIT_USAGE)


def publish_deb(repo_dir: Path, gnupg: Path, req: PublishRequest) -> PublishResult:
    """Build ``req``'s package into ``pool/SUITE``, re-index and re-sign that suite."""
    suite = req.suite or DEFAULT_SUITE
    debian = repo_dir / "debian"
    pool = debian / "pool" / suite
    for other in repo.SUITES:
        if other != suite and req.version in _debs(debian / "pool" / other, req.name):
            raise ConfigError(
                f"lab repo publish: {req.name} {req.version} is already published in suite {other}; "
                "publish another version"
            )
    have = _debs(pool, req.name)
    added = req.version not in have
    dropped = sorted(
        (v for v in have if req.drop_older and compare_debian(v, req.version) < 0),
        key=functools.cmp_to_key(compare_debian),
    )
    if not added and not dropped:
        return PublishResult("apt", req.name, req.version, suite, False, (), None, False)
    arch = _arch(debian)
    if added:
        work = repo_dir / ".publish-build"
        try:
            pkg = repo.DemoPackage(req.name, req.version, suite, f"demo package {req.name} (published in the lab)")
            repo.build_deb(pkg, pool, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    try:
        repo.index_suite(debian, suite, arch, gnupg, exclude={f"pool/{suite}/{have[v].name}" for v in dropped})
    finally:
        _kill_agent(gnupg)
    # only once no index names them: a host that read the old index a moment ago gets a 404,
    # as from an archive that has just removed a version
    for v in dropped:
        have[v].unlink()
    return PublishResult("apt", req.name, req.version, suite, added, tuple(dropped), None, True)


# -- RPM ---------------------------------------------------------------------------------------------
def _rpms(packages: Path, name: str) -> dict[str, Path]:
    """version-release -> file of the package ``name`` (files are NAME-VERSION-RELEASE.noarch.rpm)."""
    out = {}
    for path in packages.glob(f"{name}-*.noarch.rpm"):
        pkg, version, release = path.name[: -len(".noarch.rpm")].rsplit("-", 2)
        if pkg == name:
            out[f"{version}-{release}"] = path
    return out


def _advisory_from(data: dict[str, Any]) -> rpm.Advisory:
    pkg = rpm.RpmPackage(data["name"], data["version"], data["release"], "")
    return rpm.Advisory(data["id"], data["type"], data.get("severity"), (), data["title"], pkg)


def _load_advisories(repo_dir: Path) -> list[dict[str, Any]]:
    path = repo_dir / ADVISORIES_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except ValueError as exc:
        raise PatchctlError(f"lab: {path}: not valid JSON ({exc})", EXIT_USAGE) from exc
    if not isinstance(data, list):
        raise PatchctlError(f"lab: {path}: expected a list of advisories", EXIT_USAGE)
    return data


def publish_rpm(repo_dir: Path, gnupg: Path, req: PublishRequest) -> PublishResult:
    """Build ``req``'s package into the RPM repository, sign it with the key in ``gnupg`` and
    re-index (and re-sign) the repository with its advisories."""
    match = _VERSION.fullmatch(req.version)
    assert match is not None  # validated
    version, release = match["upstream"], match["revision"]
    packages = repo_dir / rpm.REPO_SUBDIR / "Packages"
    have = _rpms(packages, req.name)
    added = req.version not in have
    dropped = sorted(
        (v for v in have if req.drop_older and compare_rpm(v, req.version) < 0),
        key=functools.cmp_to_key(compare_rpm),
    )
    published = _load_advisories(repo_dir)
    mine = [a for a in published if a["name"] == req.name and f"{a['version']}-{a['release']}" == req.version]
    wanted: dict[str, Any] | None = None
    if req.classification:
        prefix = f"{req.severity}: " if req.severity else ""
        wanted = {
            "id": f"PLAB-PUB-{req.name}-{req.version}",
            "type": req.classification,
            "severity": req.severity,
            "title": f"{prefix}{req.name} {req.version} {req.classification} update",
            "name": req.name,
            "version": version,
            "release": release,
        }
    advisory_changed = wanted is not None and mine != [wanted]
    advisory_id = (wanted or (mine[0] if mine else {})).get("id")
    if not added and not dropped and not advisory_changed:
        return PublishResult("rpm", req.name, req.version, None, False, (), advisory_id, False)
    if added:
        pkg = rpm.RpmPackage(req.name, version, release, f"demo package {req.name} (published in the lab)")
        work = repo_dir / ".publish-rpmbuild"
        try:
            built = rpm.build_rpm(
                rpm.spec(pkg.name, pkg.version, pkg.release, pkg.summary), pkg.filename, packages, work
            )
            rpm.sign_rpms(gnupg, [built])
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if advisory_changed:
        assert wanted is not None
        published = [a for a in published if a not in mine] + [wanted]
        tmp = repo_dir / f".{ADVISORIES_FILE}.tmp"
        tmp.write_text(json.dumps(published, indent=2) + "\n")
        tmp.replace(repo_dir / ADVISORIES_FILE)
    advisories = (*rpm.ADVISORIES, *(_advisory_from(a) for a in published))
    try:
        rpm.index_repo(repo_dir, advisories, gnupg, exclude={have[v].name for v in dropped})
    finally:
        _kill_agent(gnupg)
    for v in dropped:
        have[v].unlink()
    return PublishResult("rpm", req.name, req.version, None, added, tuple(dropped), advisory_id, True)
