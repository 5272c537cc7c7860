"""`patchctl lab repo publish` while the lab runs: a newer version supersedes the one a host
installed, the older ones leave the index, the hosts' own apt (with --error-on=any) and dnf accept
the re-signed and re-indexed repositories, and a rescan reports the new version missing."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import LabEnv, own_lab

pytestmark = [pytest.mark.integration, pytest.mark.lab]

SUBNET = os.environ.get("PATCHCTL_TEST_SUBNET2", "127.79")
APT_HOST = "srv-01"
DNF_HOST = "dnf-01"
APP = "patchctl-demo-app"


@pytest.fixture(scope="module")
def publish_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabEnv]:
    with own_lab(tmp_path_factory, "patchctl-publish-home", SUBNET, 1, dnf_hosts=1) as env:
        yield env


def missing(db: Path, host: str) -> dict[str, dict[str, object]]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        rows = con.execute("SELECT * FROM v_missing_updates WHERE host = ?", (host,)).fetchall()
    finally:
        con.close()
    return {row["name"]: dict(row) for row in rows}


def apt_offers(env: LabEnv) -> tuple[str, set[str]]:
    """(candidate, versions the repository offers) of APP, from the host's own apt after an
    `apt-get update` that fails on any warning (a bad signature or a hash mismatch)."""
    update = env.ssh(APT_HOST, "LANG=C apt-get update -q --error-on=any", check=False)
    assert update.returncode == 0, update.stdout + update.stderr
    policy = env.ssh(APT_HOST, f"LANG=C apt-cache policy {APP}").stdout
    candidate = next(line.split()[1] for line in policy.splitlines() if line.strip().startswith("Candidate:"))
    madison = env.ssh(APT_HOST, f"LANG=C apt-cache madison {APP}").stdout
    offered = {line.split("|")[1].strip() for line in madison.splitlines() if "|" in line}
    return candidate, offered


def test_apt_publish_supersedes_and_drops_the_installed_version(publish_lab: LabEnv, tmp_path: Path) -> None:
    """The pilot has 1.1-1; the repository publishes 1.2-1 and drops the older ones; the host sees
    1.2-1 as the candidate and 1.1-1 no longer offered; a rescan stores 1.2-1 missing.

    Breaking it: with index_suite's re-sign left out (the old InRelease and Release.gpg kept),
    the host keeps reading the old index by its hash, so 1.1-1 stays the candidate; re-signed
    with a key the hosts do not trust, apt-get update --error-on=any exits 100 (NO_PUBKEY).
    Both were run and failed here."""
    env = publish_lab
    db = tmp_path / "scan.db"
    env.ssh(APT_HOST, f"apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q {APP}=1.1-1")
    assert apt_offers(env) == ("1.1-1", {"1.0-1", "1.1-1"})
    assert env.cli("scan", db=db).code == 0
    assert APP not in missing(db, APT_HOST)  # 1.1-1 is the newest: nothing missing yet

    result = env.cli("lab", "repo", "publish", APP, "1.2-1", "--drop-older", "--json")
    assert result.code == 0, result.stderr
    published = result.json()
    assert isinstance(published, dict)
    assert (published["added"], published["dropped"], published["suite"]) == (True, ["1.0-1", "1.1-1"], "bookworm")

    assert apt_offers(env) == ("1.2-1", {"1.2-1"})
    installed = env.ssh(APT_HOST, f"dpkg-query -W -f '${{Version}}' {APP}").stdout
    assert installed == "1.1-1"
    scan = env.cli("scan", db=db)
    assert scan.code == 0, scan.stdout + scan.stderr
    row = missing(db, APT_HOST)[APP]
    assert (row["version"], row["installed_version"]) == ("1.2-1", "1.1-1")

    # the same version again changes nothing the hosts read
    inrelease = env.lab.dir / "repo/debian/dists/bookworm/InRelease"
    before = inrelease.read_bytes()
    again = env.cli("lab", "repo", "publish", APP, "1.2-1", "--drop-older")
    assert again.code == 0, again.stderr
    assert "nothing changed" in again.stdout
    assert inrelease.read_bytes() == before


def test_dnf_publish_supersedes_with_an_advisory(publish_lab: LabEnv, tmp_path: Path) -> None:
    """dnf (and zypper, the same repository) sees only 1.2-1 after a publish with --drop-older;
    a rescan classifies it by its advisory.

    Breaking it: index_repo without the rename of the new repomd.xml leaves dnf offering 1.0-1
    and 1.1-1 (run and failed here)."""
    env = publish_lab
    db = tmp_path / "scan.db"
    result = env.cli(
        "lab",
        "repo",
        "publish",
        APP,
        "1.2-1",
        "--pkg-mgr",
        "dnf",
        "--drop-older",
        "--classification",
        "security",
        "--severity",
        "Important",
    )
    assert result.code == 0, result.stderr
    assert "dropped 1.0-1, 1.1-1" in result.stdout
    listed = env.ssh(DNF_HOST, f"LANG=C dnf -q list --available --showduplicates {APP}").stdout
    offered = {parts[1] for parts in (line.split() for line in listed.splitlines()) if parts[0].startswith(APP)}
    assert offered == {"1.2-1"}
    assert env.cli("scan", db=db).code == 0
    row = missing(db, DNF_HOST)[APP]
    assert (row["version"], row["classification"], row["severity"]) == ("1.2-1", "security", "important")


def test_publish_errors_are_one_line_usage_errors(publish_lab: LabEnv, tmp_path: Path) -> None:
    bad = publish_lab.cli("lab", "repo", "publish", APP, "1.3")
    assert bad.code == 2
    assert bad.stderr.startswith("patchctl: error: lab repo publish: VERSION") and bad.stderr.count("\n") == 1
    down = dict(publish_lab.env, PATCHCTL_LAB_DIR=str(tmp_path / "no-lab"))
    result = LabEnv(publish_lab.lab, publish_lab.home, down).cli("lab", "repo", "publish", APP, "1.3-1")
    assert result.code == 2
    assert result.stderr.startswith("patchctl: error: lab: not up") and result.stderr.count("\n") == 1
