"""The store's tests run against both backends: SQLite, and PostgreSQL from ``make pg``.

``db_url`` is parametrized ``sqlite`` / ``postgresql``: a fresh SQLite file under ``tmp_path``, or
a fresh schema of the PostgreSQL test cluster (tests/pg.py), dropped afterwards. Without a
reachable server the PostgreSQL cases fail, naming what to run; they are never skipped in CI.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pg import pg_base_url, pg_url  # noqa: F401 - fixtures, used by name

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """A store URL of a new, empty database on ``backend`` (see the module docstring).

    The SQLite file is in directories not made yet, under ``PATCHCTL_HOME`` (``tmp_path/state``),
    the one place patchctl makes a store's directories unasked.
    """
    if backend == "sqlite":
        monkeypatch.setenv("PATCHCTL_HOME", str(tmp_path / "state"))
        return f"sqlite:///{tmp_path / 'state' / 'nested' / 'patchctl.db'}"
    return str(request.getfixturevalue("pg_url"))
