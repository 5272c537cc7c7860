"""Alembic migrations of the patchctl store (run by :meth:`patchctl.store.Store.open`)."""
