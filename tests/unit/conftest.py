"""The store's tests run against both backends: SQLite, and PostgreSQL from ``make pg``.

``db_url`` is parametrized ``sqlite`` / ``postgresql``: a fresh SQLite file under ``tmp_path``, or
a fresh schema of the PostgreSQL test cluster (``tools/pg.sh``; its URL in ``.pg/url``, or
``PATCHCTL_TEST_PG_URL``), dropped afterwards. Without a reachable server the PostgreSQL cases
fail, naming what to run. A developer without PostgreSQL may set ``PATCHCTL_TEST_PG=off`` to skip
them; in CI (``CI`` set) that is refused, so they can never be skipped there.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ("sqlite", "postgresql")


def _pg_base_url() -> str | None:
    given = os.environ.get("PATCHCTL_TEST_PG_URL")
    if given:
        return given
    url_file = ROOT / ".pg" / "url"
    return url_file.read_text().strip() if url_file.is_file() else None


@pytest.fixture(scope="session")
def pg_base_url() -> str:
    """The URL of the PostgreSQL test cluster's database, after checking that it answers."""
    if os.environ.get("PATCHCTL_TEST_PG") == "off":
        if os.environ.get("CI"):
            pytest.fail("PATCHCTL_TEST_PG=off is refused in CI: the PostgreSQL store tests must run")
        pytest.skip("PATCHCTL_TEST_PG=off: PostgreSQL store tests skipped")
    url = _pg_base_url()
    if not url:
        pytest.fail("no PostgreSQL for the store tests: run 'make pg' (tools/pg.sh start) or set PATCHCTL_TEST_PG_URL")
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.SQLAlchemyError as exc:
        pytest.fail(f"the PostgreSQL test cluster does not answer (run 'make pg'): {exc}")
    finally:
        engine.dispose()
    return url


def with_search_path(url: str, schema: str) -> str:
    """``url`` with its sessions in ``schema`` (psycopg passes ``options`` to the server)."""
    return str(sa.make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(False))


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty schema of the PostgreSQL test cluster, as a store URL; dropped afterwards."""
    base: str = request.getfixturevalue("pg_base_url")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(base)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        yield with_search_path(base, schema)
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A store URL of a new, empty database on ``backend`` (see the module docstring)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'nested' / 'patchctl.db'}"
    return str(request.getfixturevalue("pg_url"))
