"""The candidate changelogs of apt updates (table ``apt_changelogs``) and the facts they give the
catalog (``updates.cves``, ``advisory_ids``, ``urgency``).

One row per (source package, source version), for the whole fleet: the scan flow asks one host
for each pair that has no row (or whose last fetch failed), records what came back, then
:meth:`ChangelogStore.apply` writes each apt update's facts from the entries between the lowest
version its hosts have installed and its candidate version.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from patchctl.rules import changelog
from patchctl.store import schema as t

if TYPE_CHECKING:
    from patchctl.store.db import Store

# a fetch that failed (host down, download refused) is tried again by this many later scans
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Fetched:
    """What a host brought back for one (source package, source version)."""

    source_package: str
    source_version: str
    status: str  # changelog.PARSED | UNREADABLE | FETCH_FAILED
    reason: str | None
    entries: tuple[changelog.Entry, ...]
    host: str | None
    package: str | None
    downloads: int


class ChangelogStore:
    """The changelog rows of an open store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def link_sources(self, pairs: Iterable[tuple[str, str, str]]) -> None:
        """``(uid, source_package, source_version)``: an apt update's source, set once."""
        rows = [{"p_uid": uid, "p_src": src, "p_ver": ver} for uid, src, ver in pairs]
        if not rows:
            return
        u = t.updates
        with self.store._write("link apt updates to their source packages") as conn:
            conn.execute(
                u.update()
                .where(u.c.uid == sa.bindparam("p_uid"), u.c.source_package.is_(None))
                .values(source_package=sa.bindparam("p_src"), source_version=sa.bindparam("p_ver")),
                rows,
            )

    def wanted(self, keys: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """Of ``keys``, those with no changelog row, or whose fetch failed fewer than MAX_ATTEMPTS times."""
        wanted = set(keys)
        if not wanted:
            return []
        c = t.apt_changelogs
        with self.store._read() as conn:
            rows = conn.execute(sa.select(c.c.source_package, c.c.source_version, c.c.status, c.c.attempts)).all()
        for r in rows:
            key = (r.source_package, r.source_version)
            if key in wanted and (r.status != changelog.FETCH_FAILED or r.attempts >= MAX_ATTEMPTS):
                wanted.discard(key)
        return sorted(wanted)

    def record(self, fetched: Sequence[Fetched], at: datetime) -> None:
        """Store what the hosts brought back (a row per pair; a failed fetch counts an attempt)."""
        if not fetched:
            return
        c = t.apt_changelogs
        with self.store._write("record apt changelogs") as conn:
            for f in fetched:
                where = (c.c.source_package == f.source_package, c.c.source_version == f.source_version)
                old = conn.execute(sa.select(c.c.id, c.c.attempts, c.c.downloads).where(*where)).first()
                values: dict[str, Any] = {
                    "status": f.status,
                    "reason": f.reason,
                    "entries": [e.as_dict() for e in f.entries] if f.status == changelog.PARSED else None,
                    "host": f.host,
                    "package": f.package,
                    "fetched_at": at,
                }
                if old is None:
                    conn.execute(
                        c.insert().values(
                            source_package=f.source_package,
                            source_version=f.source_version,
                            downloads=f.downloads,
                            attempts=1,
                            **values,
                        )
                    )
                else:
                    conn.execute(
                        c.update()
                        .where(c.c.id == old.id)
                        .values(downloads=int(old.downloads) + f.downloads, attempts=int(old.attempts) + 1, **values)
                    )

    def apply(self) -> int:
        """Write each apt update's CVEs, DSA/DLA ids and urgency from its source's parsed
        changelog: the entries between the lowest version installed on a host that lacks it (or,
        when no host lacks it any more, on any host that reported it) and the candidate. Returns
        how many updates changed."""
        u, hu, c = t.updates, t.host_updates, t.apt_changelogs
        with self.store._write("apply apt changelogs to the catalog") as conn:
            logs = {
                (r.source_package, r.source_version): changelog.entries_from_json(r.entries or [])
                for r in conn.execute(
                    sa.select(c.c.source_package, c.c.source_version, c.c.entries).where(c.c.status == changelog.PARSED)
                )
            }
            if not logs:
                return 0
            cols = [u.c.id, u.c.version, u.c.source_package, u.c.source_version]
            cols += [u.c.cves, u.c.advisory_ids, u.c.urgency]
            updates = conn.execute(sa.select(*cols).where(u.c.source == "apt", u.c.source_package.is_not(None))).all()
            installed: dict[int, dict[str, list[str | None]]] = {}
            for h in conn.execute(sa.select(hu.c.update_id, hu.c.state, hu.c.installed_version)):
                installed.setdefault(int(h.update_id), {}).setdefault(h.state, []).append(h.installed_version)
            changed = 0
            for r in updates:
                entries = logs.get((r.source_package, r.source_version))
                if entries is None:
                    continue
                seen = installed.get(int(r.id), {})
                versions = seen.get(t.STATE_MISSING) or [v for vs in seen.values() for v in vs]
                facts = changelog.facts(changelog.between(entries, changelog.oldest(versions), r.version))
                cves, advisories = list(facts.cves), list(facts.advisories)
                if (list(r.cves or []), list(r.advisory_ids or []), r.urgency) == (cves, advisories, facts.urgency):
                    continue
                conn.execute(
                    u.update().where(u.c.id == r.id).values(cves=cves, advisory_ids=advisories, urgency=facts.urgency)
                )
                changed += 1
            return changed

    def entries_of(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], list[changelog.Entry]]:
        """The parsed entries of each (source package, source version) of ``keys`` that has them."""
        wanted = set(keys)
        c = t.apt_changelogs
        with self.store._read() as conn:
            rows = conn.execute(
                sa.select(c.c.source_package, c.c.source_version, c.c.entries).where(c.c.status == changelog.PARSED)
            ).all()
        return {
            (r.source_package, r.source_version): changelog.entries_from_json(r.entries or [])
            for r in rows
            if (r.source_package, r.source_version) in wanted
        }

    def downloads(self) -> dict[tuple[str, str], int]:
        """How many package files each (source package, source version) took, over every fetch."""
        c = t.apt_changelogs
        with self.store._read() as conn:
            rows = conn.execute(sa.select(c.c.source_package, c.c.source_version, c.c.downloads)).all()
        return {(r.source_package, r.source_version): int(r.downloads) for r in rows}
