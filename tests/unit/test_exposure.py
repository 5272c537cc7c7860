"""The exposure clock (``v_host_exposure``, migration 0009) through ``patchctl report --json
--now``, on SQLite and PostgreSQL: per host and lineage, missing since the first version of the
lineage the host was found missing, surviving supersedes, ended by an install."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from click.testing import CliRunner

from patchctl.cli import cli
from patchctl.rules.model import Update
from patchctl.store import Store
from tests.unit.test_store import T0, ok_scan

APP = "patchctl-demo-app"


def scan(
    db_url: str, days: float, versions: list[str], installed: dict[str, str] | None = None, host: str = "web01"
) -> None:
    """A scan of ``host`` ``days`` after T0 listing ``versions`` of the app missing (and web02 clean)."""
    at = T0 + timedelta(days=days)
    have = installed or {APP: "1.0-1"}
    with Store.open(db_url) as store:
        run = store.start_run("scan", "inv", None, 2, now=at)
        updates = [Update("apt", APP, v, "security", installed_version=have[APP]) for v in versions]
        store.record_host_scan(run, ok_scan(host, at, updates, installed=have))
        store.record_host_scan(run, ok_scan("web02", at, []))
        store.finish_run(run, "ok", now=at)


def report(db_url: str, days: float) -> dict[str, Any]:
    now = (T0 + timedelta(days=days)).isoformat()
    result = CliRunner().invoke(cli, ["--db", db_url, "--now", now, "report", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert isinstance(data, dict)
    return data


def exposure(data: dict[str, Any], host: str) -> Any:
    return next(h for h in data["hosts"] if h["name"] == host)["exposure"]


def test_the_exposure_clock_survives_two_supersedes_and_an_install_ends_it(db_url: str) -> None:
    """1.1-1 missing from day 0, superseded by 1.2-1 on day 3 and by 1.3-1 on day 6: on day 10
    web01 has been exposed 10 days (not 4, the age of 1.3-1), in its host row and in the missing
    update's row. 1.3-1 installed on day 11 ends it; 1.4-1 on day 12 starts a new one; on web03,
    whose scan of day 11 finds 1.3-1 installed and 1.4-1 already offered, the new one starts at
    the install. Breaking it: the view without the chaining (since = the oldest first_seen_at of
    the missing rows only) gave 4.0 days on day 10; with installed rows chained like the others
    (neither left out nor cutting the rows before them), web03 gave 13.0 on day 13 (both run and
    failed here)."""
    for host in ("web01", "web03"):
        scan(db_url, 0, ["1.1-1"], host=host)
        scan(db_url, 3, ["1.2-1"], host=host)
        scan(db_url, 6, ["1.3-1"], host=host)
    data = report(db_url, 10)
    since = T0.isoformat().replace("+00:00", "Z")
    assert exposure(data, "web01") == {"lineage": f"apt:{APP}", "since": since, "days": 10.0}
    assert exposure(data, "web02") is None
    assert [(m["uid"], m["exposure_days"]) for m in data["top_missing"]] == [(f"apt:{APP}:1.3-1", 10.0)]
    scan(db_url, 11, [], installed={APP: "1.3-1"})
    assert exposure(report(db_url, 11.5), "web01") is None
    scan(db_url, 12, ["1.4-1"], installed={APP: "1.3-1"})
    scan(db_url, 11, ["1.4-1"], installed={APP: "1.3-1"}, host="web03")
    later = report(db_url, 13)
    assert (exposure(later, "web01")["days"], exposure(later, "web03")["days"]) == (1.0, 2.0)
    with Store.open(db_url) as store, store.engine.connect() as conn:
        import sqlalchemy as sa

        rows = conn.execute(sa.text("SELECT host, source, name FROM v_host_exposure")).all()
    assert sorted(tuple(r) for r in rows) == [("web01", "apt", APP), ("web03", "apt", APP)]
