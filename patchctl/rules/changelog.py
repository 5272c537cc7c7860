"""What a Debian package's changelog says about security: the CVE ids, the upload urgency and the
DSA/DLA ids of each entry, and which entries an update brings to a host.

The changelog is the candidate package's ``usr/share/doc/PKG/changelog.Debian.gz`` (a binNMU's
``changelog.Debian.ARCH.gz`` in front of it), fetched once per source package and version. Its
structure (entry headings, versions, urgency, trailer lines) is read by python-debian's
:class:`debian.changelog.Changelog`; only the ids inside an entry's text are found by pattern.

An update from ``installed`` to ``candidate`` brings the entries with ``installed < version <=
candidate`` in Debian's version order (``debian.debian_support.Version``: epochs, ``~deb12u1``
before ``-1``, a binNMU's ``+b1`` after its source version).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from debian.changelog import Changelog, ChangelogParseError
from debian.debian_support import Version

from patchctl.rules.model import URGENCIES

__all__ = [
    "FETCH_FAILED",
    "PARSED",
    "UNREADABLE",
    "URGENCIES",
    "ChangelogUnreadable",
    "Entry",
    "Facts",
    "between",
    "entries_from_json",
    "facts",
    "oldest",
    "parse",
]


_CVE = re.compile(r"\bCVE-\d{4}-\d{4,}\b")
_ADVISORY = re.compile(r"\b(DSA|DLA)-\d+(?:-\d+)?\b")

# the changelog states of a catalog entry (apt_changelogs.status)
PARSED = "parsed"
UNREADABLE = "unreadable"  # the package came, its changelog could not be read: final
FETCH_FAILED = "fetch_failed"  # the package could not be had (host down, download refused): tried again

# python-debian logs each line it skips in a non-strict parse; patchctl keeps the count instead
logging.getLogger("debian.changelog").addHandler(logging.NullHandler())
logging.getLogger("debian.changelog").propagate = False


class ChangelogUnreadable(ValueError):
    """The text is not a Debian changelog (or has no entry); the message says why."""


@dataclass(frozen=True)
class Entry:
    """One changelog entry (one upload)."""

    version: str
    urgency: str | None  # one of URGENCIES, None when the heading gives another word
    cves: tuple[str, ...]
    advisories: tuple[str, ...]  # DSA-NNNN-N / DLA-NNNN-N named in the entry
    date: str | None  # the trailer's RFC 2822 date, as written

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "urgency": self.urgency,
            "cves": list(self.cves),
            "advisories": list(self.advisories),
            "date": self.date,
        }


@dataclass(frozen=True)
class Facts:
    """What an update brings, summed over its entries: the parsed fields of a catalog entry."""

    cves: tuple[str, ...] = ()
    urgency: str | None = None  # the highest urgency of the entries
    advisories: tuple[str, ...] = ()
    entries: int = 0


def _urgency(value: str | None) -> str | None:
    word = (value or "").strip().split(" ")[0].lower()
    return word if word in URGENCIES else None


def _ids(pattern: re.Pattern[str], text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(m.group(0) for m in pattern.finditer(text)))


def parse(text: str | bytes) -> list[Entry]:
    """The entries of a changelog, newest first. Raises :class:`ChangelogUnreadable`."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if not text.strip():
        raise ChangelogUnreadable("the changelog is empty")
    try:
        changelog = Changelog(text, strict=False)
    except (ChangelogParseError, ValueError) as exc:
        raise ChangelogUnreadable(f"not a Debian changelog: {exc}") from None
    entries = []
    for block in changelog:
        if block.version is None:
            continue
        body = "\n".join(block.changes())
        entries.append(
            Entry(
                version=str(block.version),
                urgency=_urgency(block.urgency),
                cves=_ids(_CVE, body),
                advisories=_ids(_ADVISORY, body),
                date=block.date,
            )
        )
    if not entries:
        raise ChangelogUnreadable("not a Debian changelog: no entry heading found")
    return entries


def between(entries: Iterable[Entry], installed: str | None, candidate: str) -> list[Entry]:
    """The entries an update from ``installed`` to ``candidate`` brings (installed < v <= candidate).
    ``installed`` None (not known): every entry up to the candidate."""
    top = Version(candidate)
    low = Version(installed) if installed else None
    return [e for e in entries if Version(e.version) <= top and (low is None or Version(e.version) > low)]


def facts(entries: Sequence[Entry]) -> Facts:
    """The CVEs (sorted), the highest urgency and the DSA/DLA ids of ``entries``."""
    urgencies = [e.urgency for e in entries if e.urgency]
    return Facts(
        cves=tuple(sorted({c for e in entries for c in e.cves})),
        urgency=max(urgencies, key=URGENCIES.index) if urgencies else None,
        advisories=tuple(dict.fromkeys(a for e in entries for a in e.advisories)),
        entries=len(entries),
    )


def oldest(versions: Iterable[str | None]) -> str | None:
    """The lowest of ``versions`` in Debian's order; None when one is unknown (None) or none given."""
    known = list(versions)
    if not known or any(v is None for v in known):
        return None
    return str(min(Version(v) for v in known if v is not None))


def entries_from_json(rows: Sequence[Mapping[str, Any]]) -> list[Entry]:
    """Entries as :meth:`Entry.as_dict` stored them."""
    return [
        Entry(
            version=str(r["version"]),
            urgency=r.get("urgency"),
            cves=tuple(r.get("cves") or ()),
            advisories=tuple(r.get("advisories") or ()),
            date=r.get("date"),
        )
        for r in rows
    ]
