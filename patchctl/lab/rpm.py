"""The lab's RPM-family hosts: image variants `dnf` and `zypper`, and an RPM repository.

Only Debian's registry is reachable here, so an RPM host is the cached Debian base image plus
Debian's own builds of the real tools (``rpm``, ``dnf``, ``python3-dnf``, ``dnf-plugins-core``,
``zypper``) and an RPM distribution identity (``/etc/os-release``, ``/etc/redhat-release``), so
that Ansible's facts say ``os_family`` RedHat or Suse and ``pkg_mgr`` dnf or zypper. The rpm
database holds only RPM packages: the apt-side test packages never reach these images.

``dnf-plugins-core`` declares ``Breaks: zypper``, so the two managers need separate images.
Each variant is cached as a zstd tarball next to the base image (built in about 20 s).

The repository holds the same cases as the apt one, as noarch packages built with ``rpmbuild``,
indexed with ``createrepo_c`` and given advisories with ``modifyrepo_c --mdtype=updateinfo``.
It is signed with the lab's repository key (the one of the apt repository, :mod:`patchctl.lab.repo`):
each package with ``rpm --addsign``, the metadata with a detached ``repodata/repomd.xml.asc``.
Hosts trust that key alone (imported into their rpm database, named by ``gpgkey=``), and their
repository definition asks for both checks. Broken copies (unsigned, an unknown key, tampered
packages) are built by :func:`build_variant` for the integrity tests.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from patchctl.errors import LabError
from patchctl.lab import image, repo

VARIANTS: dict[str, tuple[str, ...]] = {
    "dnf": ("rpm", "dnf", "python3-dnf", "dnf-plugins-core"),
    "zypper": ("rpm", "zypper"),
}
# Bump when the recipe below changes so that an old cached image is not reused.
RECIPE_VERSION = "1"
REQUIRED_TOOLS = ("rpmbuild", "rpmsign", "createrepo_c", "modifyrepo_c", "gpg")
REPO_SUBDIR = "rpm"
REPO_ID = "patchctl-lab"
RELEASE_PACKAGE = "patchctl-lab-release"
RELEASEVER = "9"
# The package that makes a host need a reboot, named in the managers' reboot lists.
REBOOT_PACKAGE = "patchctl-demo-kernel"
# The lab key as the hosts hold it (ASCII armoured: what rpm --import and gpgkey= read).
KEY_FILE = "RPM-GPG-KEY-patchctl-lab"
HOST_KEY_PATH = f"/etc/pki/rpm-gpg/{KEY_FILE}"
REPOMD_SIGNATURE = "repomd.xml.asc"

# Ansible reads /etc/redhat-release before /etc/os-release; os-release alone decides for SUSE.
IDENTITY: dict[str, dict[str, str]] = {
    "dnf": {
        "etc/os-release": (
            'NAME="AlmaLinux"\nVERSION="9.4 (patchctl lab, Debian-based)"\nID="almalinux"\n'
            'ID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\nPLATFORM_ID="platform:el9"\n'
            'PRETTY_NAME="AlmaLinux 9.4 (patchctl lab host: Debian 12 with Debian\'s dnf)"\n'
        ),
        "etc/redhat-release": "AlmaLinux release 9.4 (patchctl lab)\n",
        "etc/system-release": "AlmaLinux release 9.4 (patchctl lab)\n",
        "etc/rpm/macros.dbpath": "%_dbpath /var/lib/rpm\n",
        # Debian enables dnf's `local` plugin, which breaks upgrades.
        "etc/dnf/plugins/local.conf": "[main]\nenabled = 0\n",
        "etc/dnf/plugins/needs-restarting.d/patchctl-lab.conf": f"{REBOOT_PACKAGE}\n",
        "etc/dnf/dnf.conf": (
            "[main]\ngpgcheck=1\ninstallonly_limit=3\nclean_requirements_on_remove=True\n"
            "best=True\nskip_if_unavailable=False\nreposdir=/etc/yum.repos.d\n"
        ),
    },
    "zypper": {
        "etc/os-release": (
            'NAME="openSUSE Leap"\nVERSION="15.5 (patchctl lab, Debian-based)"\nID="opensuse-leap"\n'
            'ID_LIKE="suse opensuse"\nVERSION_ID="15.5"\n'
            'PRETTY_NAME="openSUSE Leap 15.5 (patchctl lab host: Debian 12 with Debian\'s zypper)"\n'
            'CPE_NAME="cpe:/o:opensuse:leap:15.5"\n'
        ),
        "etc/rpm/macros.dbpath": "%_dbpath /var/lib/rpm\n",
        "etc/zypp/needreboot.d/patchctl-lab": f"{REBOOT_PACKAGE}\n",
    },
}


@dataclass(frozen=True)
class RpmPackage:
    name: str
    version: str
    release: str
    summary: str
    base: bool = False  # installed in every RPM host (the version hosts start from)

    @property
    def evr(self) -> str:
        return f"{self.version}-{self.release}"

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.evr}.noarch.rpm"


@dataclass(frozen=True)
class Advisory:
    id: str
    type: str  # security | bugfix | enhancement (updateinfo types)
    severity: str | None
    cves: tuple[str, ...]
    title: str
    package: RpmPackage
    reboot_suggested: bool = False


# The same cases as the apt repository (repo.PACKAGES), with the advisories RPM repos carry.
PACKAGES: tuple[RpmPackage, ...] = (
    RpmPackage("patchctl-demo-app", "1.0", "1", "demo application", base=True),
    RpmPackage("patchctl-demo-app", "1.1", "1", "demo application (bug fix release)"),
    RpmPackage("patchctl-demo-ssl", "1.0", "1", "demo TLS library", base=True),
    RpmPackage("patchctl-demo-ssl", "1.0", "2", "demo TLS library (security fix)"),
    RpmPackage("patchctl-demo-db", "1.4", "1", "demo database server", base=True),
    RpmPackage("patchctl-demo-db", "2.0", "1", "demo database server (new major version)"),
    RpmPackage(REBOOT_PACKAGE, "1.0", "1", "demo kernel", base=True),
    RpmPackage(REBOOT_PACKAGE, "1.1", "1", "demo kernel (needs a reboot)"),
)


def _pkg(name: str, evr: str) -> RpmPackage:
    return next(p for p in PACKAGES if p.name == name and p.evr == evr)


ADVISORIES: tuple[Advisory, ...] = (
    Advisory(
        "PLAB-2024-0101",
        "security",
        "Important",
        ("CVE-2024-90101",),
        "Important: patchctl-demo-ssl security update",
        _pkg("patchctl-demo-ssl", "1.0-2"),
    ),
    Advisory(
        "PLAB-2024-0102",
        "bugfix",
        None,
        (),
        "patchctl-demo-app bug fix update",
        _pkg("patchctl-demo-app", "1.1-1"),
    ),
    Advisory(
        "PLAB-2024-0103",
        "enhancement",
        None,
        (),
        "patchctl-demo-db 2.0: new major version",
        _pkg("patchctl-demo-db", "2.0-1"),
    ),
    Advisory(
        "PLAB-2024-0104",
        "security",
        "Moderate",
        ("CVE-2024-90104",),
        "Moderate: patchctl-demo-kernel security update",
        _pkg(REBOOT_PACKAGE, "1.1-1"),
        reboot_suggested=True,
    ),
)


def _run(cmd: list[str], what: str, cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, check=False)
    except FileNotFoundError as exc:
        raise LabError(f"{what}: {cmd[0]} is not installed (run 'make deps')") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise LabError(f"{what} failed (exit {proc.returncode}): {tail[0]}")
    return proc.stdout


def check_tools() -> None:
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        raise LabError(f"lab: missing tools for RPM hosts: {', '.join(missing)} (run 'make deps')")


# -- packages ------------------------------------------------------------------------------------
def spec(name: str, version: str, release: str, summary: str, provides: tuple[str, ...] = ()) -> str:
    doc = f"/usr/share/doc/{name}"
    lines = [
        f"Name: {name}",
        f"Version: {version}",
        f"Release: {release}",
        f"Summary: patchctl lab {summary}",
        "License: Apache-2.0",
        "BuildArch: noarch",
        # no automatic dependencies: the rpm database of a lab host knows only RPM packages
        "AutoReqProv: no",
        *[f"Provides: {p}" for p in provides],
        "%description",
        f"patchctl lab {summary}.",
        "%install",
        f"mkdir -p %{{buildroot}}{doc}",
        f"echo '{name} {version}-{release}' > %{{buildroot}}{doc}/VERSION",
        "%files",
        f"{doc}/VERSION",
        "",
    ]
    return "\n".join(lines)


def build_rpm(spec_text: str, filename: str, out_dir: Path, work: Path) -> Path:
    """Build one noarch package with rpmbuild into ``out_dir``."""
    top = work / "top"
    spec = work / (filename + ".spec")
    work.mkdir(parents=True, exist_ok=True)
    spec.write_text(spec_text)
    _run(
        [
            "rpmbuild",
            "-bb",
            "--quiet",
            "--define",
            f"_topdir {top}",
            "--define",
            f"_dbpath {work / 'rpmdb'}",
            "--define",
            "_binary_payload w9.gzdio",
            str(spec),
        ],
        f"building {filename}",
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / filename
    shutil.move(str(top / "RPMS" / "noarch" / filename), target)
    return target


def updateinfo_xml(advisories: tuple[Advisory, ...] = ADVISORIES) -> str:
    """The advisories as an ``updateinfo.xml`` that dnf and zypper both read."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>', "<updates>"]
    for adv in advisories:
        pkg = adv.package
        out.append(f'  <update from="lab@patchctl.invalid" status="stable" type="{adv.type}" version="1">')
        out.append(f"    <id>{escape(adv.id)}</id>")
        out.append(f"    <title>{escape(adv.title)}</title>")
        if adv.severity:
            out.append(f"    <severity>{escape(adv.severity)}</severity>")
        out.append('    <issued date="2024-05-01 00:00:00"/>')
        out.append('    <updated date="2024-05-01 00:00:00"/>')
        out.append(f"    <description>{escape(adv.title)} (patchctl lab advisory).</description>")
        out.append("    <references>")
        for cve in adv.cves:
            href = quoteattr(f"https://www.cve.org/CVERecord?id={cve}")
            out.append(f'      <reference href={href} id="{cve}" type="cve" title="{cve}"/>')
        out.append("    </references>")
        out.append("    <pkglist>")
        out.append(f'      <collection short="{REPO_ID}">')
        out.append("        <name>patchctl lab</name>")
        out.append(
            f'        <package name="{pkg.name}" version="{pkg.version}" release="{pkg.release}" epoch="0" '
            f'arch="noarch" src="{pkg.name}-{pkg.evr}.src.rpm">'
        )
        out.append(f"          <filename>{pkg.filename}</filename>")
        if adv.reboot_suggested:
            out.append("          <reboot_suggested>True</reboot_suggested>")
        out.append("        </package>")
        out.append("      </collection>")
        out.append("    </pkglist>")
        out.append("  </update>")
    out.append("</updates>")
    return "\n".join(out) + "\n"


def sign_rpms(gnupg: Path, rpms: Iterable[Path], replace: bool = False) -> None:
    """Sign package files in place with the key in ``gnupg`` (``rpm --addsign``; ``replace``:
    ``--resign``, which drops the signatures they had)."""
    files = [str(p) for p in rpms]
    if not files:
        return
    listing = _run(repo.gpg_command(gnupg, "--list-secret-keys", "--with-colons"), "reading the lab key")
    fingerprint = next((line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")), None)
    if fingerprint is None:
        raise LabError(f"lab: no signing key in {gnupg}")
    _run(
        [
            "rpmsign",
            "--resign" if replace else "--addsign",
            "--define",
            f"_gpg_path {gnupg}",
            "--define",
            f"_gpg_name {fingerprint}",
            "--define",
            f"__gpg {shutil.which('gpg') or 'gpg'}",
            "--define",
            "_gpg_sign_cmd_extra_args --batch --pinentry-mode loopback --passphrase ''",
            *files,
        ],
        "signing the lab RPM packages",
    )


def export_key(gnupg: Path, target: Path) -> Path:
    """The public lab key, ASCII armoured, into ``target``."""
    target.unlink(missing_ok=True)
    _run(repo.gpg_command(gnupg, "--armor", "--output", str(target), "--export"), "exporting the lab RPM key")
    return target


def build_repo(repo_dir: Path, gnupg: Path) -> Path:
    """Build the RPM repository under ``repo_dir/rpm`` (served at ``/rpm/``), signed with the key
    in ``gnupg``; return its path. The public key is written to ``repo_dir/KEY_FILE``."""
    check_tools()
    root = repo_dir / REPO_SUBDIR
    shutil.rmtree(root, ignore_errors=True)
    work = repo_dir / ".rpmbuild"
    try:
        built = [
            build_rpm(spec(pkg.name, pkg.version, pkg.release, pkg.summary), pkg.filename, root / "Packages", work)
            for pkg in PACKAGES
        ]
        sign_rpms(gnupg, built)
        export_key(gnupg, repo_dir / KEY_FILE)
        index_repo(repo_dir, ADVISORIES, gnupg)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        repo.kill_agent(gnupg)
    return root


def index_repo(
    repo_dir: Path, advisories: Iterable[Advisory], gnupg: Path | None, exclude: Collection[str] = ()
) -> None:
    """Index ``repo_dir/rpm/Packages`` (less the file names in ``exclude``) with the advisories of
    the packages it keeps, and sign ``repomd.xml`` with the key in ``gnupg`` (None: unsigned).

    The metadata is made in a staging directory; its files have their checksum in their names
    (createrepo_c's default), so they are copied beside the old ones, then ``repomd.xml`` and its
    signature are renamed over the old ones last, one right after the other.
    """
    root = repo_dir / REPO_SUBDIR
    staging = repo_dir / ".rpm-staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        kept = sorted(p.name for p in (root / "Packages").glob("*.rpm") if p.name not in exclude)
        (staging / "pkglist").write_text("".join(f"Packages/{name}\n" for name in kept))
        _run(
            [
                "createrepo_c",
                "--quiet",
                "--no-database",
                "--pkglist",
                str(staging / "pkglist"),
                "--outputdir",
                str(staging),
                str(root),
            ],
            "indexing the lab RPM repository",
        )
        info = staging / "updateinfo.xml"
        info.write_text(updateinfo_xml(tuple(a for a in advisories if a.package.filename in kept)))
        new = staging / "repodata"
        _run(
            ["modifyrepo_c", "--mdtype=updateinfo", str(info), str(new)],
            "adding advisories to the lab RPM repository",
        )
        live = root / "repodata"
        live.mkdir(exist_ok=True)
        for path in sorted(new.iterdir()):
            if path.name != "repomd.xml" and not (live / path.name).exists():
                tmp = live / f".{path.name}.tmp"
                shutil.copyfile(path, tmp)
                os.replace(tmp, live / path.name)
        if gnupg is not None:
            _run(
                repo.gpg_command(
                    gnupg,
                    "--armor",
                    "--detach-sign",
                    "--output",
                    str(new / REPOMD_SIGNATURE),
                    str(new / "repomd.xml"),
                ),
                "signing the lab RPM repository metadata",
            )
        tmp = live / ".repomd.xml.tmp"
        shutil.copyfile(new / "repomd.xml", tmp)
        os.replace(tmp, live / "repomd.xml")
        if gnupg is not None:
            os.replace(new / REPOMD_SIGNATURE, live / REPOMD_SIGNATURE)
        else:
            (live / REPOMD_SIGNATURE).unlink(missing_ok=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def build_variant(repo_dir: Path, kind: str) -> Path:
    """Build (once) the broken copy ``kind`` (lab.repo.VARIANTS) of the RPM repository under
    ``repo_dir/variants/KIND/rpm``; return it. Unsigned: packages and metadata without a
    signature. Unknown key: both signed by a throwaway key no host trusts. Tampered: the lab
    key's signed metadata kept, every package file changed after indexing."""
    if kind not in repo.VARIANTS:
        raise LabError(f"lab: no repository variant {kind!r} (known: {', '.join(repo.VARIANTS)})")
    target = repo_dir / repo.VARIANTS_DIR / kind / REPO_SUBDIR
    if (target / "repodata" / "repomd.xml").is_file():
        return target
    work = repo_dir / repo.VARIANTS_DIR / f".{kind}-{REPO_SUBDIR}.tmp"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(repo_dir / REPO_SUBDIR, work / REPO_SUBDIR)
    packages = sorted((work / REPO_SUBDIR / "Packages").glob("*.rpm"))
    try:
        if kind == repo.VARIANT_UNSIGNED:
            _run(["rpmsign", "--delsign", *[str(p) for p in packages]], "removing the RPM signatures")
            shutil.rmtree(work / REPO_SUBDIR / "repodata")
            index_repo(work, ADVISORIES, None)
        elif kind == repo.VARIANT_UNKNOWN_KEY:
            with repo.foreign_key() as other:
                sign_rpms(other, packages, replace=True)
                shutil.rmtree(work / REPO_SUBDIR / "repodata")
                index_repo(work, ADVISORIES, other)
        else:
            for path in packages:
                repo.tamper(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        (work / REPO_SUBDIR).rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def base_rpms(repo_dir: Path) -> list[Path]:
    return [repo_dir / REPO_SUBDIR / "Packages" / p.filename for p in PACKAGES if p.base]


# -- images --------------------------------------------------------------------------------------
def cache_key(variant: str) -> str:
    identity = "".join(f"{k}={v}" for k, v in sorted(IDENTITY[variant].items()))
    text = "|".join([image.cache_key(), RECIPE_VERSION, variant, *VARIANTS[variant], identity])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def cached_image(cache_dir: Path, variant: str) -> Path:
    return cache_dir / f"{variant}-{image.SUITE}-{cache_key(variant)}.tar.zst"


# Runs in a private mount namespace (unshare --mount), so the /proc it mounts vanishes with it.
_INSTALL_SCRIPT = r"""set -eu
root=$1; shift
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
cp /etc/resolv.conf "$root/etc/resolv.conf"
export DEBIAN_FRONTEND=noninteractive
chroot "$root" apt-get update -q
chroot "$root" apt-get install -y -q --no-install-recommends "$@"
chroot "$root" apt-get clean
: > "$root/etc/resolv.conf"
"""


def build_image(cache_dir: Path, variant: str) -> Path:
    """Return the cached image of ``variant`` (dnf or zypper), building it when missing."""
    if variant not in VARIANTS:
        raise LabError(f"lab: unknown RPM image variant {variant!r}")
    target = cached_image(cache_dir, variant)
    if target.is_file():
        return target
    check_tools()
    base = image.build_image(cache_dir)
    work = Path(tempfile.mkdtemp(prefix=f"patchctl-{variant}-", dir=cache_dir))
    root = work / "root"
    try:
        image.extract(base, root)
        _run(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                _INSTALL_SCRIPT,
                "sh",
                str(root),
                *VARIANTS[variant],
            ],
            f"installing {variant} into the lab {variant} image",
        )
        _customize(root, variant, work)
        tmp_tar = work / "image.tar.zst"
        _run(
            ["tar", "--numeric-owner", "--xattrs", "-I", "zstd -T0 -3", "-C", str(root), "-cf", str(tmp_tar), "."],
            f"packing the lab {variant} image",
        )
        os.replace(tmp_tar, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _customize(root: Path, variant: str, work: Path) -> None:
    """The RPM distribution identity, rpm's database, the release package; no apt sources."""
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    for path, text in IDENTITY[variant].items():
        dest = root / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.is_symlink():  # Debian's /etc/os-release points into /usr/lib
            dest.unlink()
        dest.write_text(text)
    for sub in ("etc/yum.repos.d", "etc/zypp/repos.d"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "var/lib/rpm").mkdir(parents=True, exist_ok=True)
    _run(["chroot", str(root), "rpm", "--initdb"], f"creating the rpm database of the {variant} image")
    # dnf needs a package that provides system-release(releasever).
    release = build_rpm(
        spec(
            RELEASE_PACKAGE,
            RELEASEVER,
            "1",
            "distribution release",
            ("system-release", f"system-release({RELEASEVER})", f"system-release(releasever) = {RELEASEVER}"),
        ),
        f"{RELEASE_PACKAGE}-{RELEASEVER}-1.noarch.rpm",
        root / "tmp/patchctl-rpms",
        work / "rpmbuild",
    )
    _run(
        ["chroot", str(root), "rpm", "-i", f"/tmp/patchctl-rpms/{release.name}"],  # noqa: S108 - inside the chroot
        f"installing {RELEASE_PACKAGE} into the {variant} image",
    )
    shutil.rmtree(root / "tmp/patchctl-rpms", ignore_errors=True)


def repo_file(variant: str, url: str) -> tuple[str, str]:
    """(path inside the host, content) of the repository definition pointing at the lab repo."""
    body = (
        f"[{REPO_ID}]\nname=patchctl lab repository\nbaseurl={url}\nenabled=1\n"
        # packages and metadata both signed with the lab key, the only key the host trusts
        f"gpgcheck=1\nrepo_gpgcheck=1\ngpgkey=file://{HOST_KEY_PATH}\n"
    )
    if variant == "dnf":
        return "etc/yum.repos.d/patchctl-lab.repo", body + "metadata_expire=0\n"
    return "etc/zypp/repos.d/patchctl-lab.repo", body + "autorefresh=1\ntype=rpm-md\nkeeppackages=0\n"


def prepare_root(root: Path, variant: str, url: str, rpms: list[Path], key: Path) -> None:
    """Make an extracted variant image the lower layer of one lab: its repo, the lab key (in the
    rpm database: the one key the host trusts) and the base packages."""
    path, text = repo_file(variant, url)
    (root / path).write_text(text)
    host_key = root / HOST_KEY_PATH.lstrip("/")
    host_key.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(key, host_key)
    _run(["chroot", str(root), "rpm", "--import", HOST_KEY_PATH], f"importing the lab key into the {variant} image")
    staging = root / "tmp/patchctl-base-rpms"
    staging.mkdir(parents=True, exist_ok=True)
    for rpm in rpms:
        shutil.copy(rpm, staging / rpm.name)
    try:
        _run(
            ["chroot", str(root), "rpm", "-i", *[f"/tmp/patchctl-base-rpms/{r.name}" for r in rpms]],  # noqa: S108 - a path inside the chroot
            f"installing the base packages into the lab {variant} image",
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
