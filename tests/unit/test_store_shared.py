"""A store shared by several processes and control nodes, on SQLite and PostgreSQL: locks that hold
across processes, deploys and promotions that take turns, the append-only audit trail."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from patchctl.render.report_json import full_report_json
from patchctl.report import full_report
from patchctl.rules.model import ApplyOutcome, HostScan
from patchctl.rules.policy import Wave
from patchctl.store import Store
from patchctl.store.locks import LockBusy, store_lock
from patchctl.store.rollouts import Decision, RolloutStore
from tests.unit.test_store import CURL, NGINX, OPENSSL, T0, ok_scan, sql

PATCHCTL = [sys.executable, "-m", "patchctl"]
NOW = (T0 + timedelta(days=1)).isoformat()

# Takes the lock three times, 0.2 s each; prints when it held it.
_TAKER = """
import json, sys, time
from patchctl.store import Store
from patchctl.store.locks import store_lock
store = Store.open(sys.argv[1])
held = []
for _ in range(3):
    with store_lock(store, "rollout 1", wait=60):
        start = time.monotonic(); time.sleep(0.2); held.append((start, time.monotonic()))
print(json.dumps(held))
"""

# Takes the lock, says so, and holds it until killed.
_HOLDER = """
import sys, time
from patchctl.store import Store
from patchctl.store.locks import store_lock
store = Store.open(sys.argv[1])
with store_lock(store, "rollout 1"):
    print("locked", flush=True)
    time.sleep(600)
"""


def baked_rollout(url: str) -> int:
    """A rollout whose pilot wave (web01) finished ok at T0 without bake; fleet is next."""
    with Store.open(url) as store:
        run = store.start_run("scan", "inv", None, 1, now=T0)
        store.record_host_scan(run, ok_scan("web01", T0, [OPENSSL]))
        store.finish_run(run, "ok", now=T0)
        rs = RolloutStore(store)
        entries = rs.catalog()
        rs.record_decisions([(e, Decision("approved", "tester", "test", T0), False) for e in entries])
        waves = [Wave("pilot", "web01", bake_days=0), Wave("fleet", "all", bake_days=0)]
        rid = rs.create_rollout(T0, "tester", "policy.yml", waves, entries)
        rs.set_wave(rid, 0, T0, "tester", "deploy start", state="deploying", hosts=["web01"], started_at=T0)
        deploy_run = rs.start_deploy_run(rid, "pilot", "tester", T0)
        rs.record_deploy_result(deploy_run, rid, "pilot", ApplyOutcome("web01", "ok", installed=[OPENSSL.uid]), T0)
        rs.finish_deploy_run(deploy_run, "finished", T0)
        rs.set_wave(rid, 0, T0, "tester", "wave finished", state="finished", finished_at=T0)
        return rid


def patchctl(url: str, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATCHCTL_")}
    return subprocess.Popen(
        [*PATCHCTL, "--db", url, "--now", NOW, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_two_processes_never_hold_a_lock_at_once(db_url: str) -> None:
    Store.open(db_url).close()
    taker = [sys.executable, "-c", _TAKER, db_url]
    procs = [subprocess.Popen(taker, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    spans = sorted(tuple(span) for out, _ in outs for span in json.loads(out))
    assert len(spans) == 6
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, f"two holders at once: {spans}"


def test_busy_lock_names_its_holder_and_a_killed_holder_frees_it(db_url: str) -> None:
    with Store.open(db_url) as store:
        holder = subprocess.Popen([sys.executable, "-c", _HOLDER, db_url], stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "locked"
            started = time.monotonic()
            busy = rf"rollout 1 is in use by .*\bpid {holder.pid}\b"
            with pytest.raises(LockBusy, match=busy), store_lock(store, "rollout 1", wait=0.5):
                pass
            assert time.monotonic() - started >= 0.5  # it waited as long as asked
            with store_lock(store, "rollout 2"):  # other names are free
                pass
        finally:
            holder.send_signal(signal.SIGKILL)
            holder.wait(timeout=30)
            if holder.stdout is not None:
                holder.stdout.close()
        # The holder died without releasing: the kernel (SQLite) or the server (PostgreSQL) frees it.
        with store_lock(store, "rollout 1", wait=10):
            pass


def test_deploy_is_refused_while_another_patchctl_holds_the_rollout(db_url: str, tmp_path: Path) -> None:
    rid = baked_rollout(db_url)
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("web01 ansible_host=127.0.0.1\n")
    with Store.open(db_url) as store, store_lock(store, f"rollout {rid}"):
        proc = patchctl(db_url, "deploy", "--rollout", str(rid), "-i", str(inventory))
        _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err  # blocked: try again when the other run ends
    assert f"rollout {rid} is in use by " in err
    assert f"pid {os.getpid()}" in err
    assert sql(db_url, "SELECT COUNT(*) FROM deploy_runs") == [(1,)]  # the fixture's pilot run only


def test_racing_promoters_wait_for_the_lock_and_promote_once(db_url: str) -> None:
    rid = baked_rollout(db_url)
    with Store.open(db_url) as store:
        with store_lock(store, f"rollout {rid}"):
            procs = [patchctl(db_url, "rollout", "promote", str(rid)) for _ in range(2)]
            time.sleep(3)  # both are started and waiting for the lock
            assert [p.poll() for p in procs] == [None, None]
            released = time.monotonic()
        outs = [p.communicate(timeout=120) for p in procs]
    assert time.monotonic() > released
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    said = sorted(out.strip() for out, _ in outs)
    assert any("promoted wave fleet" in line for line in said), said
    assert sum("promoted wave fleet" in line for line in said) == 1, said
    assert sql(db_url, "SELECT COUNT(*) FROM audit_events WHERE action = 'promote'") == [(1,)]


@pytest.mark.parametrize("table", ["decisions", "audit_events", "rollout_updates"])
def test_audit_trail_tables_refuse_update_and_delete(db_url: str, table: str) -> None:
    baked_rollout(db_url)
    (before,) = sql(db_url, f"SELECT COUNT(*) FROM {table}")  # noqa: S608 - a fixed table name
    assert before[0] > 0
    column = "actor" if table == "audit_events" else "uid"
    for statement in (f"UPDATE {table} SET {column} = 'x'", f"DELETE FROM {table}"):  # noqa: S608 - fixed names
        with pytest.raises(sa.exc.DBAPIError, match=f"{table} is append-only"):
            sql(db_url, statement)
    assert sql(db_url, f"SELECT COUNT(*) FROM {table}") == [before]  # noqa: S608 - a fixed table name


def _fill(url: str) -> None:
    """The same history on any backend: two scan runs over three hosts, a rollout, a failed deploy."""
    rid = baked_rollout(url)
    with Store.open(url) as store:
        for day in (1, 2):
            at = T0 + timedelta(days=day)
            run = store.start_run("scan", "inv", None, 3, now=at)
            store.record_host_scan(run, ok_scan("web01", at, [] if day == 2 else [OPENSSL], reboot_required=day == 2))
            store.record_host_scan(run, ok_scan("web02", at, [OPENSSL, CURL, NGINX]))
            store.record_host_scan(run, HostScan("db01", "unreachable", at, error="ssh: connection refused"))
            store.finish_run(run, "host failures", now=at)
        rs = RolloutStore(store)
        at = T0 + timedelta(days=2)
        rs.set_wave(rid, 1, at, "tester", "deploy start", state="deploying", hosts=["web02", "db01"], started_at=at)
        deploy_run = rs.start_deploy_run(rid, "fleet", "tester", at)
        failed = ApplyOutcome("web02", "failed", failed={OPENSSL.uid: "dpkg error"}, error="install failed")
        rs.record_deploy_result(deploy_run, rid, "fleet", failed, at)
        rs.record_deploy_result(deploy_run, rid, "fleet", ApplyOutcome("db01", "unreachable", error="timeout"), at)


def test_reports_and_views_read_the_same_on_both_backends(tmp_path: Path, pg_url: str) -> None:
    """The views and the report's SQL give the same answers on SQLite and on PostgreSQL."""
    sqlite_url = f"sqlite:///{tmp_path / 'patchctl.db'}"
    for url in (sqlite_url, pg_url):
        _fill(url)
    now = T0 + timedelta(days=3)
    reports = [full_report_json(full_report(url, None, now, stale_days=7, top=10)) for url in (sqlite_url, pg_url)]
    assert reports[0] == reports[1]
    assert reports[0]["hosts"]  # not two empty reports
    views = ("v_host_compliance", "v_missing_updates", "v_wave_progress", "v_update_catalog", "v_audit_log")
    for view in views:
        got = []
        for url in (sqlite_url, pg_url):
            with Store.open(url) as store, store.engine.connect() as conn:
                rows = conn.execute(sa.text(f"SELECT * FROM {view}")).mappings().all()  # noqa: S608 - a fixed view name
            plain = [{k: _plain(v) for k, v in r.items() if not k.endswith("id")} for r in rows]
            got.append(sorted(json.dumps(r, sort_keys=True) for r in plain))
        assert got[0] == got[1], view
        assert got[0], f"{view} is empty"


def _plain(value: object) -> object:
    """A view's value as both backends can agree on it (SQLite: 0/1 and naive UTC text)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] == " ":
        return datetime.fromisoformat(value).isoformat(sep=" ")
    return value
