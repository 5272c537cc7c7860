"""`patchctl lab repo publish` on real repositories built in a temporary directory with the lab's
own tools (dpkg-deb, apt-ftparchive, gpg; rpmbuild, createrepo_c, modifyrepo_c), no hosts.
tests/integration/test_publish_lab.py shows hosts' apt and dnf accepting the result."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from patchctl.errors import ConfigError, PatchctlError
from patchctl.lab import repo, rpm
from patchctl.lab.fleet import Lab
from patchctl.lab.publish import PublishRequest, publish, publish_deb, publish_rpm, validate

APP = "patchctl-demo-app"
ARCH = "amd64"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lab's repositories (apt with its key, RPM with its advisories), built once."""
    base = tmp_path_factory.mktemp("publish-pristine")
    repo.build_repo(base / "repo", base / "repo-gnupg", ARCH)
    rpm.build_repo(base / "repo", base / "repo-gnupg")
    return base


@pytest.fixture
def lab_dir(pristine: Path, tmp_path: Path) -> Path:
    target = tmp_path / "lab"
    shutil.copytree(pristine, target)
    return target


def packages(lab_dir: Path, suite: str = "bookworm") -> dict[str, list[str]]:
    """name -> versions in the served Packages index of ``suite``."""
    text = (lab_dir / "repo/debian/dists" / suite / f"main/binary-{ARCH}/Packages").read_text()
    out: dict[str, list[str]] = {}
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if fields:
            out.setdefault(fields["Package"], []).append(fields["Version"])
    return out


def verified_release(lab_dir: Path, suite: str = "bookworm") -> str:
    """InRelease's signed text, checked with gpgv against the lab's public keyring (as apt does)."""
    dist = lab_dir / "repo/debian/dists" / suite
    proc = subprocess.run(
        ["gpgv", "--keyring", str(lab_dir / "repo" / repo.KEYRING_NAME), "--output", "-", str(dist / "InRelease")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def sha256_entries(release: str) -> dict[str, str]:
    lines = release.split("SHA256:\n", 1)[1].split("SHA512:", 1)[0].splitlines()
    return {parts[2]: parts[0] for parts in (line.split() for line in lines) if len(parts) == 3}


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_apt_publish_drop_older_reindexes_and_resigns(lab_dir: Path) -> None:
    """Breaking it: without index_suite's re-sign (the old InRelease kept) its SHA256 names the old
    Packages; without the exclude the dropped versions stay in the index."""
    before = sha256_entries(verified_release(lab_dir))
    result = publish_deb(lab_dir / "repo", lab_dir / "repo-gnupg", PublishRequest(APP, "1.2-1", drop_older=True))
    assert (result.added, result.dropped, result.changed) == (True, ("1.0-1", "1.1-1"), True)
    assert packages(lab_dir)[APP] == ["1.2-1"]
    assert packages(lab_dir)["patchctl-demo-ssl"] == ["1.0-1"]  # other packages untouched
    pool = lab_dir / "repo/debian/pool/bookworm"
    assert sorted(p.name for p in pool.glob(f"{APP}_*")) == [f"{APP}_1.2-1_all.deb"]
    release = verified_release(lab_dir)
    assert "Acquire-By-Hash: yes" in release
    binary = lab_dir / "repo/debian/dists/bookworm" / f"main/binary-{ARCH}"
    for name in ("Packages", "Packages.gz"):
        digest = sha256_entries(release)[f"main/binary-{ARCH}/{name}"]
        assert hashlib.sha256((binary / name).read_bytes()).hexdigest() == digest
        # the new index by its hash, and the old one still, for a host holding the old InRelease
        assert (binary / "by-hash/SHA256" / digest).is_file()
        assert (binary / "by-hash/SHA256" / before[f"main/binary-{ARCH}/{name}"]).is_file()
    assert gzip.decompress((binary / "Packages.gz").read_bytes()) == (binary / "Packages").read_bytes()
    # the security suite was not re-indexed
    assert packages(lab_dir, "bookworm-security")["patchctl-demo-ssl"] == ["1.0-2"]


def test_apt_publish_into_the_security_suite_keeps_older(lab_dir: Path) -> None:
    req = PublishRequest("patchctl-demo-ssl", "1.0-3", suite="bookworm-security")
    result = publish_deb(lab_dir / "repo", lab_dir / "repo-gnupg", req)
    assert result.changed and result.dropped == ()
    assert packages(lab_dir, "bookworm-security")["patchctl-demo-ssl"] == ["1.0-2", "1.0-3"]
    assert "Suite: stable-security" in verified_release(lab_dir, "bookworm-security")


def test_publishing_the_same_version_twice_changes_nothing(lab_dir: Path) -> None:
    """Breaking it: rebuilding the package or re-signing on the second call changes the .deb's or
    InRelease's bytes (dpkg-deb and gpg stamp the time)."""
    req = PublishRequest(APP, "1.2-1", drop_older=True)
    publish_deb(lab_dir / "repo", lab_dir / "repo-gnupg", req)
    rpm_req = PublishRequest(APP, "1.2-1", "dnf", drop_older=True, classification="bugfix")
    publish_rpm(lab_dir / "repo", lab_dir / "repo-gnupg", rpm_req)
    served = snapshot(lab_dir / "repo")
    again = publish_deb(lab_dir / "repo", lab_dir / "repo-gnupg", req)
    again_rpm = publish_rpm(lab_dir / "repo", lab_dir / "repo-gnupg", rpm_req)
    assert not again.changed and not again.added
    assert not again_rpm.changed and not again_rpm.added
    assert snapshot(lab_dir / "repo") == served


def rpm_metadata(lab_dir: Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    """(name -> versions in primary, advisory id -> type in updateinfo), as repomd.xml names them."""
    repodata = lab_dir / "repo/rpm/repodata"
    ns = {"r": "http://linux.duke.edu/metadata/repo", "c": "http://linux.duke.edu/metadata/common"}
    repomd = ET.parse(repodata / "repomd.xml").getroot()  # noqa: S314 - written by createrepo_c in this test
    href = {}
    for data in repomd.findall("r:data", ns):
        location = data.find("r:location", ns)
        assert location is not None
        href[data.get("type")] = str(location.get("href"))
    root = lab_dir / "repo/rpm"
    primary = ET.fromstring(gzip.decompress((root / href["primary"]).read_bytes()))  # noqa: S314 - createrepo_c wrote it
    versions: dict[str, list[str]] = {}
    for pkg in primary.findall("c:package", ns):
        v = pkg.find("c:version", ns)
        assert v is not None
        versions.setdefault(str(pkg.findtext("c:name", namespaces=ns)), []).append(f"{v.get('ver')}-{v.get('rel')}")
    info = ET.fromstring(gzip.decompress((root / href["updateinfo"]).read_bytes()))  # noqa: S314 - modifyrepo_c wrote it
    advisories = {str(u.findtext("id")): str(u.get("type")) for u in info.iter("update")}
    return {k: sorted(v) for k, v in versions.items()}, advisories


def test_rpm_publish_drop_older_with_an_advisory(lab_dir: Path) -> None:
    """Breaking it: an index_repo that ignores ``exclude`` leaves 1.1-1 in primary; one that renames
    the new repodata over the old removes the metadata a host holding the old repomd.xml fetches."""
    old_files = set((lab_dir / "repo/rpm/repodata").iterdir())
    req = PublishRequest(APP, "1.2-1", "zypper", drop_older=True, classification="security", severity="Important")
    result = publish_rpm(lab_dir / "repo", lab_dir / "repo-gnupg", req)
    assert (result.added, result.dropped, result.advisory) == (True, ("1.0-1", "1.1-1"), f"PLAB-PUB-{APP}-1.2-1")
    versions, advisories = rpm_metadata(lab_dir)
    assert versions[APP] == ["1.2-1"]
    assert versions["patchctl-demo-ssl"] == ["1.0-1", "1.0-2"]
    assert advisories[f"PLAB-PUB-{APP}-1.2-1"] == "security"
    assert "PLAB-2024-0102" not in advisories  # its package (app 1.1-1) was dropped
    assert advisories["PLAB-2024-0101"] == "security"
    assert sorted(p.name for p in (lab_dir / "repo/rpm/Packages").glob(f"{APP}-*")) == [f"{APP}-1.2-1.noarch.rpm"]
    assert old_files - {lab_dir / "repo/rpm/repodata/repomd.xml"} <= set((lab_dir / "repo/rpm/repodata").iterdir())


@pytest.mark.parametrize(
    ("req", "needle"),
    [
        (PublishRequest(APP, "1.2"), "VERSION must be UPSTREAM-REVISION"),
        (PublishRequest(APP, "1:1.2-1"), "VERSION must be UPSTREAM-REVISION"),
        (PublishRequest(APP, "1.2-1-1"), "VERSION must be UPSTREAM-REVISION"),
        (PublishRequest("Bad_Name", "1.2-1"), "NAME must be a package name"),
        (PublishRequest(APP, "1.2-1", suite="sid"), "--suite must be one of"),
        (PublishRequest(APP, "1.2-1", classification="security"), "are for RPM advisories"),
        (PublishRequest(APP, "1.2-1", "dnf", suite="bookworm"), "--suite is for apt"),
        (PublishRequest(APP, "1.2-1", "dnf", severity="Important"), "--severity needs --classification security"),
        (PublishRequest(APP, "1.2-1", "yum"), "--pkg-mgr must be one of"),
    ],
)
def test_bad_requests_are_one_line_usage_errors(req: PublishRequest, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate(req)
    assert needle in info.value.message and "\n" not in info.value.message
    assert info.value.code == 2


def test_no_lab_running_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(PatchctlError) as info:
        publish(Lab(lab_dir=tmp_path / "lab"), PublishRequest(APP, "1.2-1"))
    assert info.value.code == 2
    assert "not up" in info.value.message


def test_the_same_version_in_another_suite_is_refused(lab_dir: Path) -> None:
    with pytest.raises(ConfigError, match="already published in suite bookworm-security"):
        publish_deb(lab_dir / "repo", lab_dir / "repo-gnupg", PublishRequest("patchctl-demo-ssl", "1.0-2"))


def test_lab_changelogs_name_each_version_newest_first() -> None:
    """A package the lab publishes gets its own entry on top of its source's; the security fix's
    entry names its CVEs. Seen failing with the published package left out of changelog_text
    (the newest entry was 1.1-1)."""
    from patchctl.rules import changelog

    published = repo.DemoPackage("patchctl-demo-app", "1.2-1", "bookworm", "demo package (published in the lab)")
    assert [e.version for e in changelog.parse(repo.changelog_text(published))] == ["1.2-1", "1.1-1", "1.0-1"]
    ssl = next(p for p in repo.PACKAGES if p.name == "patchctl-demo-ssl" and p.version == "1.0-2")
    top = changelog.parse(repo.changelog_text(ssl))[0]
    assert (top.version, top.urgency, top.cves) == ("1.0-2", "high", ("CVE-2099-10001", "CVE-2099-10002"))
