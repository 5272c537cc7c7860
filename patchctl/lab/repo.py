"""The lab's apt repository: small packages built with dpkg-deb, indexed with apt-ftparchive,
signed with a throwaway GPG key, served over HTTP on a loopback address by the supervisor."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

from patchctl.errors import LabError

ORIGIN = "patchctl-lab"
KEYRING_NAME = "patchctl-lab.gpg"


@dataclass(frozen=True)
class DemoPackage:
    name: str
    version: str
    suite: str
    description: str
    postinst: str | None = None
    # installed in every host's base image (the version hosts start from)
    base: bool = False
    # files the package ships: path -> (mode, text)
    files: tuple[tuple[str, int, str], ...] = ()
    depends: str | None = None
    # the Debian changelog entry of this version (usr/share/doc/NAME/changelog.Debian.gz holds
    # the entries of every version of its source up to this one): its urgency and change lines
    urgency: str = "medium"
    changes: tuple[str, ...] = ()
    # built from another source package (its changelog is that source's)
    source: str | None = None
    # usr/share/doc/NAME is a symlink to this binary's doc directory (as many Debian packages do)
    doc_link: str | None = None
    changelog: bool = True

    @property
    def source_name(self) -> str:
        return self.source or self.name


REBOOT_POSTINST = """#!/bin/sh
set -e
if [ "$1" = configure ]; then
    touch /var/run/reboot-required
    echo patchctl-demo-kernel >> /var/run/reboot-required.pkgs
fi
exit 0
"""

FAILING_POSTINST = """#!/bin/sh
# The lab's broken update: its configuration always fails, as a bad package would.
if [ "$1" = configure ]; then
    echo "patchctl-demo-broken: configuration failed (on purpose, a lab case)" >&2
    exit 1
fi
exit 0
"""

# A slow configuration, for tests that stop patchctl while a host installs: the marker file says
# "dpkg is in the middle of configuring it now". Not in the base image: a test installs 1.0-1 first.
SLOW_MARKER = "/var/lib/patchctl-lab/slow-configuring"
SLOW_SECONDS_FILE = "/etc/patchctl-lab-slow-seconds"
SLOW_POSTINST = f"""#!/bin/sh
set -e
if [ "$1" = configure ]; then
    mkdir -p /var/lib/patchctl-lab
    touch {SLOW_MARKER}
    sleep "$(cat {SLOW_SECONDS_FILE} 2>/dev/null || echo 20)"
    rm -f {SLOW_MARKER}
fi
exit 0
"""

# A small daemon for the change-safety tests (health checks, services pending restart): it
# listens on ADDRESS:PORT (the lab's hosts share the machine's network, so each listens on its own
# loopback address), maps the lab library (as a process maps a shared library it is linked
# against) and keeps its pid in WEBD_PIDFILE. Package scripts never start it (policy-rc.d); a
# test starts it. Version 1.1-1's postinst stops it: an update that breaks a service.
WEBD = "/usr/sbin/patchctl-demo-webd"
WEBD_PIDFILE = "/run/patchctl-demo-webd.pid"
DEMO_LIB = "/usr/lib/patchctl-demo/libpatchctl-demo.so.1"
WEBD_SCRIPT = f"""#!/usr/bin/python3
# patchctl lab daemon: patchctl-demo-webd ADDRESS PORT
import mmap, os, socket, sys
lib = open("{DEMO_LIB}", "rb")
mapped = mmap.mmap(lib.fileno(), 0, prot=mmap.PROT_READ)
if os.fork():
    sys.exit(0)
os.setsid()
with open("{WEBD_PIDFILE}", "w") as f:
    f.write(str(os.getpid()))
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(8)
while True:
    c, _ = s.accept()
    c.sendall(b"patchctl-demo-webd " + mapped[:16].rstrip(b"\\0") + b"\\n")
    c.close()
"""
WEBD_STOPPING_POSTINST = f"""#!/bin/sh
# The lab's service-breaking update: configuring it stops the daemon (and does not start it).
if [ "$1" = configure ] && [ -s {WEBD_PIDFILE} ]; then
    kill "$(cat {WEBD_PIDFILE})" 2>/dev/null || true
    rm -f {WEBD_PIDFILE}
fi
exit 0
"""


def _lib(version: str) -> tuple[tuple[str, int, str], ...]:
    return ((DEMO_LIB, 0o644, f"libdemo {version}\n"),)


# The cases of the lab repository. Hosts start at the `base` versions; the rest are updates.
PACKAGES: tuple[DemoPackage, ...] = (
    DemoPackage("patchctl-demo-app", "1.0-1", "bookworm", "demo application", base=True),
    DemoPackage("patchctl-demo-app", "1.1-1", "bookworm", "demo application (bug fix release)"),
    DemoPackage("patchctl-demo-ssl", "1.0-1", "bookworm", "demo TLS library", base=True),
    DemoPackage(
        "patchctl-demo-ssl",
        "1.0-2",
        "bookworm-security",
        "demo TLS library (security fix)",
        urgency="high",
        changes=(
            "Non-maintainer upload by the lab security team (DSA-9901-1).",
            "Fix CVE-2099-10001: buffer overflow in the demo handshake.",
            "Fix CVE-2099-10002: timing side channel in the demo signature check.",
        ),
    ),
    DemoPackage("patchctl-demo-db", "1.4-1", "bookworm", "demo database server", base=True),
    # ships no changelog.Debian.gz: its CVEs stay empty with the reason
    DemoPackage("patchctl-demo-db", "2.0-1", "bookworm", "demo database server (new major version)", changelog=False),
    DemoPackage("patchctl-demo-kernel", "1.0-1", "bookworm", "demo kernel", base=True),
    DemoPackage("patchctl-demo-kernel", "1.1-1", "bookworm", "demo kernel (needs a reboot)", postinst=REBOOT_POSTINST),
    DemoPackage("patchctl-demo-broken", "1.0-1", "bookworm", "demo tool", base=True),
    DemoPackage(
        "patchctl-demo-broken", "1.1-1", "bookworm", "demo tool (its postinst fails)", postinst=FAILING_POSTINST
    ),
    # two binaries of one source (patchctl-demo-tls), not in the base image (a test installs the
    # tools at 1.0-1): the tools' doc directory is a symlink to the common package's
    DemoPackage("patchctl-demo-tls-common", "1.0-1", "bookworm", "demo TLS common files", source="patchctl-demo-tls"),
    DemoPackage(
        "patchctl-demo-tls-common",
        "1.0-2",
        "bookworm-security",
        "demo TLS common files (security fix)",
        source="patchctl-demo-tls",
        urgency="emergency",
        changes=("Fix CVE-2099-20001: remote code execution in the demo TLS tools.",),
    ),
    DemoPackage(
        "patchctl-demo-tls-utils",
        "1.0-1",
        "bookworm",
        "demo TLS tools",
        source="patchctl-demo-tls",
        doc_link="patchctl-demo-tls-common",
    ),
    DemoPackage(
        "patchctl-demo-tls-utils",
        "1.0-2",
        "bookworm-security",
        "demo TLS tools (security fix)",
        source="patchctl-demo-tls",
        doc_link="patchctl-demo-tls-common",
    ),
    DemoPackage("patchctl-demo-slow", "1.0-1", "bookworm", "demo agent"),
    DemoPackage("patchctl-demo-slow", "1.1-1", "bookworm", "demo agent (slow to configure)", postinst=SLOW_POSTINST),
    # change safety: not in the base image; a test installs the 1.0-1 versions first
    DemoPackage("patchctl-demo-lib", "1.0-1", "bookworm", "demo shared library", files=_lib("1.0-1")),
    DemoPackage("patchctl-demo-lib", "1.0-2", "bookworm", "demo shared library (bug fix)", files=_lib("1.0-2")),
    DemoPackage(
        "patchctl-demo-web",
        "1.0-1",
        "bookworm",
        "demo network daemon",
        files=((WEBD, 0o755, WEBD_SCRIPT),),
        depends="patchctl-demo-lib",
    ),
    DemoPackage(
        "patchctl-demo-web",
        "1.1-1",
        "bookworm",
        "demo network daemon (its update stops it)",
        postinst=WEBD_STOPPING_POSTINST,
        files=((WEBD, 0o755, WEBD_SCRIPT),),
        depends="patchctl-demo-lib",
    ),
)

SUITES = {
    "bookworm": {"Origin": ORIGIN, "Label": ORIGIN, "Suite": "stable", "Codename": "bookworm"},
    "bookworm-security": {
        "Origin": ORIGIN,
        "Label": "Debian-Security",
        "Suite": "stable-security",
        "Codename": "bookworm-security",
    },
}


def _run(cmd: list[str], what: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, check=False)
    except FileNotFoundError as exc:
        raise LabError(f"{what}: {cmd[0]} is not installed (run 'make deps')") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise LabError(f"{what} failed (exit {proc.returncode}): {tail[0]}")
    return proc.stdout


def deb_filename(pkg: DemoPackage) -> str:
    return f"{pkg.name}_{pkg.version}_all.deb"


CHANGELOG_DATE = "Sun, 01 Nov 2026 10:00:00 +0000"


def changelog_text(pkg: DemoPackage) -> str:
    """The Debian changelog of ``pkg``: one entry per version of its source up to its own,
    newest first."""
    from debian.debian_support import Version

    # the first binary listed of each version carries its entry; a package published in the lab
    # (patchctl lab repo publish) brings its own, newest first in Debian's version order
    seen: dict[str, DemoPackage] = {}
    for other in (*PACKAGES, pkg):
        if other.source_name == pkg.source_name and Version(other.version) <= Version(pkg.version):
            seen.setdefault(other.version, other)
    blocks = []
    for entry in sorted(seen.values(), key=lambda p: Version(p.version), reverse=True):
        lines = entry.changes or (f"Lab release {entry.version}.",)
        body = "\n".join(f"  * {line}" for line in lines)
        blocks.append(
            f"{pkg.source_name} ({entry.version}) {entry.suite}; urgency={entry.urgency}\n\n{body}\n\n"
            f" -- patchctl lab <lab@patchctl.invalid>  {CHANGELOG_DATE}\n"
        )
    return "\n".join(blocks)


def build_deb(pkg: DemoPackage, out_dir: Path, work: Path) -> Path:
    root = work / f"{pkg.name}-{pkg.version}"
    shutil.rmtree(root, ignore_errors=True)
    (root / "DEBIAN").mkdir(parents=True)
    docs = root / "usr/share/doc"
    if pkg.doc_link:
        docs.mkdir(parents=True)
        (docs / pkg.name).symlink_to(pkg.doc_link)
    else:
        doc = docs / pkg.name
        doc.mkdir(parents=True)
        (doc / "VERSION").write_text(f"{pkg.name} {pkg.version}\n")
        # mtime 0: the same package file every build (the base image's cache stays valid)
        if pkg.changelog:
            (doc / "changelog.Debian.gz").write_bytes(gzip.compress(changelog_text(pkg).encode(), mtime=0))
    for path, mode, text in pkg.files:
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(mode)
    depends = f"Depends: {pkg.depends}\n" if pkg.depends else ""
    source = f"Source: {pkg.source}\n" if pkg.source else ""
    (root / "DEBIAN/control").write_text(
        f"Package: {pkg.name}\n{source}Version: {pkg.version}\nArchitecture: all\n{depends}"
        f"Maintainer: patchctl lab <lab@patchctl.invalid>\nSection: misc\nPriority: optional\n"
        f"Description: patchctl lab {pkg.description}\n"
    )
    if pkg.postinst:
        script = root / "DEBIAN/postinst"
        script.write_text(pkg.postinst)
        script.chmod(0o755)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / deb_filename(pkg)
    _run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(root), str(target)], f"building {pkg.name}")
    return target


def gpg_command(homedir: Path, *args: str) -> list[str]:
    """gpg's argv over the key in ``homedir``, in batch mode, the key without a passphrase."""
    return [
        "gpg",
        "--batch",
        "--quiet",
        "--homedir",
        str(homedir),
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "",
        *args,
    ]


# The hashes apt-ftparchive writes into Release: each index is also served under
# ``by-hash/NAME/DIGEST``, so a host holding the previous InRelease still fetches the previous
# Packages while a publish swaps them (the way Debian's archives change under their mirrors).
BY_HASH = {"MD5Sum": "md5", "SHA1": "sha1", "SHA256": "sha256", "SHA512": "sha512"}
INDEXES = ("Packages", "Packages.gz")


def _stanzas(packages: str) -> list[str]:
    return [block.strip("\n") for block in packages.split("\n\n") if block.strip()]


def _field(stanza: str, name: str) -> str | None:
    for line in stanza.splitlines():
        key, sep, value = line.partition(":")
        if sep and key == name:
            return value.strip()
    return None


def index_suite(debian: Path, suite: str, arch: str, gnupg: Path, exclude: Collection[str] = ()) -> None:
    """Index ``pool/SUITE`` into ``dists/SUITE`` and sign it with the key in ``gnupg``.

    Everything is made in a staging directory first; the served files then change one rename at
    a time, indexes before signatures, and the indexes stay under ``by-hash/`` (Acquire-By-Hash):
    a host reads either the old InRelease and the old indexes or the new ones, never a mix.
    ``exclude`` names pool files (``pool/SUITE/x.deb``) left out of the index, as a dropped version is.
    """
    fields = SUITES[suite]
    stanzas = _stanzas(_run(["apt-ftparchive", "packages", f"pool/{suite}"], "indexing the lab repository", cwd=debian))
    kept = [st for st in stanzas if _field(st, "Filename") not in exclude]
    packages = "".join(st + "\n\n" for st in kept)
    component = f"main/binary-{arch}"
    staging = debian / "dists" / f".{suite}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / component).mkdir(parents=True)
    try:
        (staging / component / "Packages").write_text(packages)
        # mtime 0: the same index compresses to the same bytes
        with gzip.GzipFile(staging / component / "Packages.gz", "wb", mtime=0) as fh:
            fh.write(packages.encode())
        opts = [f"-oAPT::FTPArchive::Release::{key}={value}" for key, value in fields.items()]
        opts += [
            f"-oAPT::FTPArchive::Release::Architectures={arch}",
            "-oAPT::FTPArchive::Release::Components=main",
            "-oAPT::FTPArchive::Release::Acquire-By-Hash=yes",
        ]
        release = _run(["apt-ftparchive", *opts, "release", "."], "writing Release", cwd=staging)
        (staging / "Release").write_text(release)
        _sign(gnupg, staging)

        dist = debian / "dists" / suite
        (dist / component).mkdir(parents=True, exist_ok=True)
        for name in INDEXES:
            data = (staging / component / name).read_bytes()
            for hash_dir, algo in BY_HASH.items():
                target = dist / component / "by-hash" / hash_dir / hashlib.new(algo, data).hexdigest()
                if not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    tmp = target.with_name(f".{target.name}.tmp")
                    tmp.write_bytes(data)
                    os.replace(tmp, target)
        for name in INDEXES:
            os.replace(staging / component / name, dist / component / name)
        for name in ("Release", "Release.gpg", "InRelease"):  # InRelease last: it is what apt reads
            os.replace(staging / name, dist / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def build_repo(repo_dir: Path, gnupg: Path, arch: str) -> Path:
    """Build and sign the repository under ``repo_dir/debian``; return the public keyring file."""
    debian = repo_dir / "debian"
    shutil.rmtree(repo_dir, ignore_errors=True)
    work = repo_dir / ".build"
    for pkg in PACKAGES:
        build_deb(pkg, debian / "pool" / pkg.suite, work)
    shutil.rmtree(work, ignore_errors=True)

    shutil.rmtree(gnupg, ignore_errors=True)
    gnupg.mkdir(parents=True, mode=0o700)
    try:
        _run(
            gpg_command(
                gnupg, "--quick-gen-key", "patchctl lab repository <lab@patchctl.invalid>", "ed25519", "sign", "never"
            ),
            "creating the lab repository key",
        )
        keyring = repo_dir / KEYRING_NAME
        _run(gpg_command(gnupg, "--output", str(keyring), "--export"), "exporting the lab repository key")
        for suite in SUITES:
            index_suite(debian, suite, arch, gnupg)
    finally:
        kill_agent(gnupg)
    return keyring


def base_debs(repo_dir: Path) -> list[Path]:
    return [repo_dir / "debian" / "pool" / p.suite / deb_filename(p) for p in PACKAGES if p.base]


# Broken copies of the repository, for the integrity tests: each is served under
# ``repo/variants/KIND/debian`` and a host is pointed at one with lab.faults.break_repo.
VARIANTS_DIR = "variants"
# no signature at all (no InRelease, no Release.gpg)
VARIANT_UNSIGNED = "unsigned"
# signed by a throwaway key that no host trusts
VARIANT_UNKNOWN_KEY = "unknown-key"
# signed by the lab key, but every package file changed after indexing: checksums no longer match
VARIANT_TAMPERED = "tampered"
VARIANTS = (VARIANT_UNSIGNED, VARIANT_UNKNOWN_KEY, VARIANT_TAMPERED)


def kill_agent(gnupg: Path) -> None:
    """gpg starts an agent: never leave it running."""
    subprocess.run(["gpgconf", "--homedir", str(gnupg), "--kill", "all"], capture_output=True, check=False)


@contextlib.contextmanager
def foreign_key() -> Iterator[Path]:
    """A throwaway signing key that no lab host trusts (its gnupg home, removed afterwards)."""
    with tempfile.TemporaryDirectory(prefix="patchctl-lab-otherkey-") as tmp:
        other = Path(tmp)
        other.chmod(0o700)
        try:
            _run(
                gpg_command(
                    other, "--quick-gen-key", "someone else <other@patchctl.invalid>", "ed25519", "sign", "never"
                ),
                "creating an unknown key",
            )
            yield other
        finally:
            kill_agent(other)


def _sign(gnupg: Path, dist: Path) -> None:
    for name in ("InRelease", "Release.gpg"):
        (dist / name).unlink(missing_ok=True)
    _run(
        gpg_command(gnupg, "--clearsign", "--output", str(dist / "InRelease"), str(dist / "Release")),
        "signing InRelease",
    )
    _run(
        gpg_command(gnupg, "--armor", "--detach-sign", "--output", str(dist / "Release.gpg"), str(dist / "Release")),
        "signing Release",
    )


def tamper(deb: Path) -> None:
    """Change the package file the way a compromised mirror would: same name and size, other
    bytes (inside its compressed data), so only the checksums tell."""
    data = bytearray(deb.read_bytes())
    data[-16] ^= 0xFF
    deb.write_bytes(bytes(data))


def build_variant(repo_dir: Path, kind: str) -> Path:
    """Build (once) the broken copy ``kind`` of the repository under ``repo_dir``; return its
    ``debian`` directory. The tampered copy keeps the lab key's signatures: its indexes are intact."""
    if kind not in VARIANTS:
        raise LabError(f"lab: no repository variant {kind!r} (known: {', '.join(VARIANTS)})")
    target = repo_dir / VARIANTS_DIR / kind / "debian"
    if (target / "dists").is_dir():
        return target
    staging = target.with_name("debian.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(repo_dir / "debian", staging)
    dists = [d for d in (staging / "dists").iterdir() if d.is_dir()]
    try:
        if kind == VARIANT_UNSIGNED:
            for dist in dists:
                (dist / "InRelease").unlink(missing_ok=True)
                (dist / "Release.gpg").unlink(missing_ok=True)
        elif kind == VARIANT_UNKNOWN_KEY:
            with foreign_key() as other:
                for dist in dists:
                    _sign(other, dist)
        else:
            for deb in (staging / "pool").rglob("*.deb"):
                tamper(deb)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    staging.rename(target)
    return target
