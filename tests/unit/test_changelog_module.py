"""The changelog fetch module's reading of a package's data tarball (plugins/modules/
patch_changelog_apt.py): the layouts Debian packages use, built as dpkg-deb lays them out
(``./usr/share/doc/...`` members), with the real changelogs of tests/data/apt/changelogs/."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

from tests.unit.test_scan_module import load_plugin_module

MOD = load_plugin_module("patch_changelog_apt")
DATA = Path(__file__).resolve().parents[1] / "data" / "apt" / "changelogs"


def data_tar(files: dict[str, bytes], links: dict[str, str]) -> tarfile.TarFile:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, target in links.items():
            info = tarfile.TarInfo(path)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
        for path, body in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    buf.seek(0)
    return tarfile.open(fileobj=buf, mode="r|*")


def test_binnmu_changelog_comes_first() -> None:
    """a56 1.3+dfsg-9+b1: changelog.Debian.amd64.gz, then changelog.Debian.gz. Seen failing with
    the arch files appended after the main changelog."""
    arch = (DATA / "a56_1.3+dfsg-9+b1.changelog.Debian.amd64.gz").read_bytes()
    main = (DATA / "a56_1.3+dfsg-9+b1.changelog.Debian.gz").read_bytes()
    tar = data_tar(
        {"./usr/share/doc/a56/changelog.Debian.gz": main, "./usr/share/doc/a56/changelog.Debian.amd64.gz": arch}, {}
    )
    blobs, link = MOD.doc_members(tar, "a56")
    assert blobs == [arch, main] and link is None
    text = MOD.changelog_text(blobs, 1 << 20)
    assert text.startswith("a56 (1.3+dfsg-9+b1) sid; urgency=low, binary-only=yes")


def test_symlinked_doc_dir_names_the_other_binary() -> None:
    """openssh-server's usr/share/doc/openssh-server -> openssh-client (bullseye-security)."""
    tar = data_tar({"./usr/sbin/sshd": b"x"}, {"./usr/share/doc/openssh-server": "openssh-client"})
    assert MOD.doc_members(tar, "openssh-server") == ([], "openssh-client")


def test_a_native_package_changelog_gz_only_when_native() -> None:
    """apt 2.6.2 (native) ships only changelog.gz; a non-native package's changelog.gz is the
    upstream one and is not read. Seen failing (on a real bookworm host) before native packages
    were read: apt and ca-certificates unreadable."""
    body = gzip.compress(
        b"apt (2.6.2) bookworm; urgency=medium\n\n  * x\n\n -- A <a@b.c>  Mon, 01 Jan 2024 00:00:00 +0000\n"
    )
    files = {"./usr/share/doc/apt/changelog.gz": body}
    assert MOD.is_native("2.6.2") and MOD.is_native("1:20250419~deb12u2") and not MOD.is_native("1:9.2p1-2+deb12u9")
    assert MOD.doc_members(data_tar(files, {}), "apt", native=True) == ([body], None)
    assert MOD.doc_members(data_tar(files, {}), "apt", native=False) == ([], None)


def test_a_long_changelog_is_cut_at_an_entry() -> None:
    """The text is cut before an entry heading, never inside an entry (its last line a trailer)."""
    blob = (DATA / "glibc_2.36-9+deb12u7.changelog.Debian.gz").read_bytes()
    text = MOD.changelog_text([blob], 20000)
    assert len(text) <= 20000 and text.rstrip().splitlines()[-1].startswith(" -- ")
