"""patchctl's database: schema, Alembic migrations, SQL views and the :class:`Store`.

Open a store with ``Store.open(url)``; see :mod:`patchctl.store.db` for the API and
:mod:`patchctl.store.schema` for the tables and the views reports read.
"""

from __future__ import annotations

from patchctl.store.db import (
    HostComplianceRow,
    MissingUpdateRow,
    ScanRunRow,
    Store,
    alembic_config,
)

__all__ = [
    "HostComplianceRow",
    "MissingUpdateRow",
    "ScanRunRow",
    "Store",
    "alembic_config",
]
