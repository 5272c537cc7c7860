"""Debian changelogs of real security uploads (tests/data/apt/changelogs/, each file's source in its
README) read by rules/changelog.py: the CVEs, urgency and DSA/DLA ids an update brings between
the installed and the candidate version."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from patchctl.rules import changelog

DATA = Path(__file__).resolve().parents[1] / "data" / "apt" / "changelogs"


def recorded(name: str) -> str:
    return gzip.decompress((DATA / name).read_bytes()).decode("utf-8")


def test_openssl_two_entries_of_bookworm_security() -> None:
    """openssl 3.0.22-1~deb12u2 over 3.0.20-1~deb12u2: the newest entry's six CVEs and the nine of
    3.0.22-1~deb12u1, the higher urgency of the two (high). Seen failing with ``<=`` turned into
    ``<`` in ``between`` (the candidate's own entry left out: three CVEs short of nine)."""
    entries = changelog.parse(recorded("openssl_3.0.22-1~deb12u2.changelog.Debian.gz"))
    assert entries[0].version == "3.0.22-1~deb12u2"
    assert entries[0].urgency == "high"
    assert len(entries[0].cves) == 6
    brought = changelog.between(entries, "3.0.20-1~deb12u2", "3.0.22-1~deb12u2")
    assert [e.version for e in brought] == ["3.0.22-1~deb12u2", "3.0.22-1~deb12u1"]
    facts = changelog.facts(brought)
    assert facts.urgency == "high"
    assert "CVE-2026-84782" in facts.cves and "CVE-2026-42767" in facts.cves
    assert len(facts.cves) == len(set(entries[0].cves) | set(entries[1].cves))
    assert list(facts.cves) == sorted(facts.cves)


def test_tilde_deb12u_sorts_before_the_release_it_backports() -> None:
    """~deb12u1 is older than -1 of the same upstream: a host on 3.0.22-1~deb12u1 gets only the
    newest entry. Seen failing with the versions compared as strings (every entry was brought)."""
    entries = changelog.parse(recorded("openssl_3.0.22-1~deb12u2.changelog.Debian.gz"))
    brought = changelog.between(entries, "3.0.22-1~deb12u1", "3.0.22-1~deb12u2")
    assert [e.version for e in brought] == ["3.0.22-1~deb12u2"]


def test_epoch_versions_bind9() -> None:
    """bind9's versions carry the epoch 1:, kept in each entry's version and honoured when
    comparing: a host on 1:9.18.44-1~deb12u1 gets the four newer entries up to 1:9.18.49-1~deb12u3.
    Seen failing with the epoch dropped when the entries were read (no entry was newer than
    the installed 1:9.18.44-1~deb12u1)."""
    entries = changelog.parse(recorded("bind9_9.18.49-1~deb12u3.changelog.Debian.gz"))
    assert entries[0].version == "1:9.18.49-1~deb12u3"
    brought = changelog.between(entries, "1:9.18.44-1~deb12u1", "1:9.18.49-1~deb12u3")
    assert [e.version for e in brought] == [
        "1:9.18.49-1~deb12u3",
        "1:9.18.49-1~deb12u2",
        "1:9.18.49-1~deb12u1",
        "1:9.18.47-1~deb12u1",
    ]
    # without the epoch the installed version is older than every entry
    assert len(changelog.between(entries, "9.18.44-1~deb12u1", "1:9.18.49-1~deb12u3")) == len(entries)
    assert changelog.facts(brought).cves


def test_binnmu_entry_comes_first_and_brings_no_cve() -> None:
    """A binNMU's own entry (changelog.Debian.amd64.gz, read in front of the source changelog):
    from 1.3+dfsg-9 to 1.3+dfsg-9+b1 only the rebuild entry, urgency low, no CVE. Seen failing
    with the .amd64.gz file left out (no entry between the two versions)."""
    text = (
        recorded("a56_1.3+dfsg-9+b1.changelog.Debian.amd64.gz")
        + "\n"
        + recorded("a56_1.3+dfsg-9+b1.changelog.Debian.gz")
    )
    entries = changelog.parse(text)
    brought = changelog.between(entries, "1.3+dfsg-9", "1.3+dfsg-9+b1")
    assert [e.version for e in brought] == ["1.3+dfsg-9+b1"]
    assert changelog.facts(brought) == changelog.Facts(cves=(), urgency="low", advisories=(), entries=1)


def test_dsa_ids_of_an_entry() -> None:
    """gnutls28 (bullseye-security): an old entry names DSA-1581-1 beside its CVEs; the range
    from the first Debian upload that has it brings the DSA id. Seen failing with the advisory
    pattern's group left as the whole match's prefix only ("DSA" alone)."""
    entries = changelog.parse(recorded("gnutls28_3.7.1-5+deb11u10.changelog.Debian.gz"))
    with_dsa = [e for e in entries if e.advisories]
    assert with_dsa and with_dsa[0].advisories == ("DSA-1581-1",)
    assert {"CVE-2008-1948", "CVE-2008-1949", "CVE-2008-1950"} <= set(with_dsa[0].cves)
    facts = changelog.facts(changelog.between(entries, None, entries[0].version))
    assert "DSA-1581-1" in facts.advisories
    # the newest entry: LTS, urgency high, CVEs, no DLA id written in it
    assert entries[0].urgency == "high" and entries[0].cves and not entries[0].advisories


def test_a_changelog_without_cves() -> None:
    """tzdata's security-archive upload names no CVE: empty CVEs, its urgency kept. Seen failing
    (with the others) with ``<=`` turned into ``<`` in ``between`` (two entries, not three)."""
    entries = changelog.parse(recorded("tzdata_2026f-0+deb12u1.changelog.Debian.gz"))
    facts = changelog.facts(changelog.between(entries, entries[3].version, entries[0].version))
    assert facts.cves == () and facts.entries == 3
    assert facts.urgency in changelog.URGENCIES


def test_glibc_binary_of_another_source_name() -> None:
    """libc6's changelog is glibc's: entries named by version alone, urgency medium or high."""
    entries = changelog.parse(recorded("glibc_2.36-9+deb12u7.changelog.Debian.gz"))
    assert entries[0].version == "2.36-9+deb12u7"
    facts = changelog.facts(changelog.between(entries, "2.36-9+deb12u4", "2.36-9+deb12u7"))
    assert facts.cves and facts.entries == 3


def test_openssh_epoch_and_oldest() -> None:
    """The lowest installed version of the hosts decides the catalog's range; unknown is None."""
    assert changelog.oldest(["1:9.2p1-2+deb12u3", "1:9.2p1-2+deb12u7", "1:9.2p1-2"]) == "1:9.2p1-2"
    assert changelog.oldest(["1.0-1", None]) is None
    entries = changelog.parse(recorded("openssh_9.2p1-2+deb12u9.changelog.Debian.gz"))
    assert entries[0].version == "1:9.2p1-2+deb12u9"
    assert changelog.between(entries, "1:9.2p1-2+deb12u9", "1:9.2p1-2+deb12u9") == []


@pytest.mark.parametrize("text", ["", "   \n", "this is no changelog\nat all\n", b"\xff\xfe binary junk"])
def test_unreadable_text_is_a_reason_not_a_traceback(text: str | bytes) -> None:
    """Seen failing with the empty-entries check removed (text that is no changelog came back as
    an empty list, no reason)."""
    with pytest.raises(changelog.ChangelogUnreadable):
        changelog.parse(text)


def test_entries_round_trip_through_json() -> None:
    entries = changelog.parse(recorded("openssl_3.0.22-1~deb12u2.changelog.Debian.gz"))
    assert changelog.entries_from_json([e.as_dict() for e in entries]) == entries
