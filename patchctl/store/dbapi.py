"""SQL on the DBAPI connection: what the store's writers that bypass SQLAlchemy's Connection share.

A scan's write (:mod:`patchctl.store.scan_write`) and the kept counts' refresh
(:mod:`patchctl.store.counters`) run plain SQL on a DBAPI cursor: written once with ``?``
placeholders and made the driver's here (``?`` for sqlite3, ``%s`` for psycopg), with ``IN`` lists
and multi-row inserts in a few lengths only, and timestamps converted into what a ``UTCDateTime``
column keeps.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from patchctl.store import schema as t

IN_CHUNK = 500  # values per IN (...) clause, well under every database's limit
# A transaction-level advisory lock (PostgreSQL) on a name in the current schema: released at commit.
XACT_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || ?, 0))"


def chunks(items: Sequence[Any], size: int = IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def padded(values: Sequence[Any]) -> list[Any]:
    """``values`` (not empty) to the next power-of-two length, the last one repeated (an IN list
    means the same with it)."""
    size = 1 << (len(values) - 1).bit_length()
    return [*values, *([values[-1]] * (size - len(values)))]


class Dialect:
    """What the writers on the DBAPI cursor need to know of the database behind it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sqlite = name == "sqlite"
        self._sql: dict[tuple[str, int, str], str] = {}

    def time(self, value: datetime) -> Any:
        """``value`` as a UTCDateTime column keeps it: naive UTC text on SQLite, else aware UTC."""
        return t.sqlite_timestamp(value) if self.sqlite else t.as_utc(value)

    def sql(self, text: str, n: int = 0, row: str = "") -> str:
        """``text`` for the driver: ``{in}`` made ``n`` placeholders, ``{rows}`` ``n`` times ``row``;
        ``?`` (sqlite3) or ``%s``."""
        key = (text, n, row)
        found = self._sql.get(key)
        if found is None:
            found = text.replace("{in}", ", ".join("?" * n)).replace("{rows}", ", ".join([row] * n)) if n else text
            if not self.sqlite:
                found = found.replace("?", "%s")
            self._sql[key] = found
        return found


def dbapi_cursor(conn: Connection) -> Any:
    """A cursor of the DBAPI connection under ``conn``: it runs in ``conn``'s transaction."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    return raw.cursor()
