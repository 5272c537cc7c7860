"""patchctl's database: schema, Alembic migrations, SQL views and the :class:`Store`.

Open a store with ``Store.open(url)``; see :mod:`patchctl.store.db` for the API and
:mod:`patchctl.store.schema` for the tables and the views reports read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from patchctl.store.db import (
        HostComplianceRow,
        MissingUpdateRow,
        ScanRunRow,
        SchemaUpgrade,
        Store,
        alembic_config,
    )


def __getattr__(name: str) -> Any:
    # Imported on first use: SQLAlchemy and Alembic take a good part of a second to import, and
    # `patchctl report` reads a current SQLite store without them (patchctl.store.fastread).
    if name in __all__:
        from patchctl.store import db

        return getattr(db, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "HostComplianceRow",
    "MissingUpdateRow",
    "ScanRunRow",
    "SchemaUpgrade",
    "Store",
    "alembic_config",
]
