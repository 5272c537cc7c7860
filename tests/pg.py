"""PostgreSQL for tests: the cluster of ``make pg`` (tools/pg.sh), one fresh schema per test.

The URL comes from ``PATCHCTL_TEST_PG_URL`` or the checkout's ``.pg/url``. Without a reachable
server the tests that use it fail, naming what to run; ``PATCHCTL_TEST_PG=off`` skips them for a
developer without PostgreSQL, and is refused in CI (``CI`` set), so there they always run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]


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
