"""The flow of ``patchctl db``: the store's schema.

``patchctl db upgrade`` migrates an existing store to the newest schema revision. The commands
that only read never migrate (they name the pending migrations and stop); those that write
migrate as they open the store. Upgrading creates nothing: no store at the URL is an error.
"""

from __future__ import annotations

from patchctl.store.db import SchemaUpgrade, Store


def upgrade(db_url: str) -> SchemaUpgrade:
    """Migrate the store at ``db_url`` to the newest schema revision; from which to which."""
    return Store.upgrade(db_url)
