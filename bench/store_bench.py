#!/usr/bin/env python3
"""Store benchmark: a synthetic store of a large fleet, ``patchctl report`` on it, and ingest.

* ``generate``: a SQLite store of N hosts (default 10,000), each missing M updates (default 100)
  out of a shared catalog, with history: one scan per host per nightly run for D days (default
  30), as many resolved (installed or gone) updates per host as missing ones, and the approval
  decisions the shipped policy and operators would have made on the catalog (most updates
  approved, some waiting, new or declined), so ``report`` counts approved missing updates as it
  does in use. The schema is the real one (``Store.open`` migrates it); the rows are written
  with plain SQL, quickly, then ``Store.refresh_summaries`` fills the summary counts patchctl's
  writers keep as they go.
* ``report``: wall time of ``patchctl report`` and ``patchctl report --json`` on that store (a
  subprocess each, start-up included; best of ``--repeat``).
* ``ingest``: wall time of writing N hosts' scan results with ``Store.record_host_scan`` (one
  transaction per host, as ``patchctl scan`` does): into an empty store, and as a rescan into a
  copy of the generated store. The scans are at versions the generated store has as known
  updates but not as the ones missing on each host: every host reports 100 updates new to it and
  its 100 missing ones are resolved, the most churn a rescan can bring (the README says so).
* ``all``: the three, in order; ``--csv`` appends the figures.

Example::

    .venv/bin/python bench/store_bench.py all --hosts 10000 --csv bench/results/store.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from patchctl.config import load_policy  # noqa: E402 - after the sys.path setup
from patchctl.decisions import POLICY_ACTOR  # noqa: E402 - after the sys.path setup
from patchctl.rules.model import HOST_OK, HOST_UNREACHABLE, HostScan, Update  # noqa: E402 - after the sys.path setup
from patchctl.rules.policy import (  # noqa: E402 - after the sys.path setup
    STATE_APPROVED,
    STATE_MANUAL,
    STATE_REJECTED,
    STATE_WAITING,
    UpdateFacts,
    evaluate,
)
from patchctl.store import Store  # noqa: E402 - after the sys.path setup

CLASSES = (("security", 30), ("bugfix", 50), ("other", 15), ("enhancement", 5))
SEED = 7


def _ts(dt: datetime) -> str:
    """How SQLAlchemy keeps a UTC timestamp in SQLite."""
    return dt.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def _catalog(packages: int, rnd: random.Random) -> list[dict[str, object]]:
    """Three versions of each package: 1.0-1 (old, installed), 1.0-2 and 1.1-1 or 2.0-1 (new)."""
    weights = [w for _c, w in CLASSES]
    rows = []
    for i in range(packages):
        name = f"pkg{i:05d}"
        cls = rnd.choices([c for c, _w in CLASSES], weights)[0]
        major = rnd.random() < 0.05
        for version in ("1.0-2", "2.0-1" if major else "1.1-1", "1.0-3"):
            rows.append(
                {"name": name, "version": version, "classification": cls, "major": major and version == "2.0-1"}
            )
    return rows


def generate(db: Path, hosts: int, missing: int, days: int) -> dict[str, float]:
    """Write the synthetic store to ``db`` (replaced); returns timing figures."""
    start = time.perf_counter()
    rnd = random.Random(SEED)  # noqa: S311 - synthetic data, reproducible
    if db.exists():
        db.unlink()
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    Store.open(f"sqlite:///{db}").close()  # the real schema, migrated
    now = datetime.now(UTC).replace(hour=2, minute=0, second=0, microsecond=0)
    packages = max(missing * 20, 2000)
    catalog = _catalog(packages, rnd)
    first = now - timedelta(days=days + 60)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    with conn:
        conn.executemany(
            "INSERT INTO updates (id, uid, source, name, version, arch, classification, cves, advisory_ids, kbs,"
            " origin, major, reboot_hint, first_seen_at, last_seen_at)"
            " VALUES (?, ?, 'apt', ?, ?, 'amd64', ?, '[]', '[]', '[]', ?, ?, 0, ?, ?)",
            (
                (
                    i + 1,
                    f"apt:{u['name']}:{u['version']}",
                    u["name"],
                    u["version"],
                    u["classification"],
                    "bookworm-security" if u["classification"] == "security" else "bookworm",
                    int(bool(u["major"])),
                    _ts(first + timedelta(days=rnd.randint(0, 60))),
                    _ts(now),
                )
                for i, u in enumerate(catalog)
            ),
        )
        run_days = [now - timedelta(days=d) for d in range(days, 0, -1)]
        conn.executemany(
            "INSERT INTO scan_runs (id, kind, started_at, finished_at, inventory, status, hosts_total, hosts_ok,"
            " hosts_failed, hosts_unreachable) VALUES (?, 'scan', ?, ?, 'inventories/prod', 'ok', ?, ?, 0, 0)",
            ((i + 1, _ts(d), _ts(d + timedelta(minutes=40)), hosts, hosts) for i, d in enumerate(run_days)),
        )
        last = run_days[-1]
        host_rows = []
        hu_rows: list[tuple[object, ...]] = []
        scan_rows: list[tuple[object, ...]] = []
        for h in range(hosts):
            name = f"host-{h:05d}"
            role = "server" if h % 3 else "client"
            unreachable = h % 100 == 99
            reboot = h % 17 == 0
            host_rows.append(
                (
                    h + 1,
                    name,
                    f"10.{h // 65536}.{h // 256 % 256}.{h % 256}",
                    role,
                    "nightly" if role == "server" else None,
                    json.dumps(sorted([role + "s", "debian"])),
                    _ts(first),
                    _ts(last),
                    _ts(last - timedelta(days=1) if unreachable else last),
                    HOST_UNREACHABLE if unreachable else HOST_OK,
                    "ssh: connect to host: Connection timed out" if unreachable else None,
                    int(reboot),
                    _ts(last) if reboot else None,
                )
            )
            pkgs = rnd.sample(range(packages), missing * 2)
            for j, p in enumerate(pkgs):
                # the first half is missing now (newest version), the rest was resolved earlier
                base = p * 3
                if j < missing:
                    since = last - timedelta(days=rnd.randint(0, days))
                    hu_rows.append((h + 1, base + 2, "missing", "1.0-1", _ts(since), _ts(last), None))
                else:
                    state = "installed" if j % 4 else "gone"
                    seen = last - timedelta(days=rnd.randint(2, days))
                    before = seen - timedelta(days=1)
                    hu_rows.append((h + 1, base + 1, state, "1.0-1", _ts(before), _ts(seen), _ts(seen)))
            by_class = json.dumps({"bugfix": missing // 2, "security": missing // 2})
            for r, d in enumerate(run_days):
                at = _ts(d + timedelta(seconds=h % 2400))
                scan_rows.append((r + 1, h + 1, at, "ok", int(reboot), missing, missing // 2, 0, by_class))
            if len(hu_rows) > 200_000:
                _flush(conn, host_rows, hu_rows, scan_rows)
        _flush(conn, host_rows, hu_rows, scan_rows)
        conn.executemany(
            "INSERT INTO decisions (update_id, uid, state, actor, automatic, major, reason, decided_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            _decisions(conn, now),
        )
    conn.close()
    with Store.open(f"sqlite:///{db}") as store:
        # The hosts' summary counts and the runs' history points, as patchctl's writers keep them.
        store.refresh_summaries()
    conn = sqlite3.connect(db)
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return {"generate_s": time.perf_counter() - start, "db_mb": db.stat().st_size / 2**20}


def _decisions(conn: sqlite3.Connection, now: datetime) -> list[tuple[object, ...]]:
    """Decisions as ``patchctl updates`` and operators append them, oldest first.

    The shipped policy evaluates each update the night after it is first seen (security and bugfix:
    waiting, then approved 7 days later; other and enhancement: new; major: needs manual approval).
    Operators approve half the majors (``--major``) and a few updates the policy leaves new, and
    decline about 3% of all updates.
    """
    rnd = random.Random(SEED + 2)  # noqa: S311 - synthetic data, reproducible
    policy = load_policy(str(ROOT / "policies" / "default.yml"))
    found: list[tuple[datetime, tuple[object, ...]]] = []
    for row in conn.execute("SELECT id, uid, source, name, classification, major, first_seen_at FROM updates"):
        update_id, uid, source, name, classification, major, first_seen = row
        seen = datetime.fromisoformat(first_seen).replace(tzinfo=UTC)
        facts = UpdateFacts(uid, source, name, classification, seen, major=bool(major))
        # (when, state, reason, by the policy, a major approval)
        made: list[tuple[datetime, str, str, bool, bool]] = []
        at = seen.replace(hour=2, minute=30) + timedelta(days=1)  # the next night's evaluation
        first = evaluate(policy, facts, at)
        made.append((at, first.state, first.reason, True, False))
        if first.state == STATE_WAITING and first.approve_at is not None:
            later = first.approve_at.replace(hour=2, minute=30) + timedelta(days=1)
            if later <= now:
                ev = evaluate(policy, facts, later)
                made.append((later, ev.state, ev.reason, True, False))
        by_hand = at + timedelta(days=rnd.randint(1, 10), hours=rnd.randint(6, 10))
        if by_hand <= now:
            if first.state == STATE_MANUAL and rnd.random() < 0.5:
                made.append((by_hand, STATE_APPROVED, "major upgrade approved by an operator (--major)", False, True))
            elif rnd.random() < 0.03:
                made.append((by_hand, STATE_REJECTED, "declined by an operator", False, False))
            elif first.state not in (STATE_WAITING, STATE_MANUAL) and rnd.random() < 0.05:
                made.append((by_hand, STATE_APPROVED, "approved by an operator", False, False))
        for when, state, reason, automatic, is_major in made:
            actor = POLICY_ACTOR if automatic else "ops"
            found.append((when, (update_id, uid, state, actor, int(automatic), int(is_major), reason, _ts(when))))
    found.sort(key=lambda d: d[0])
    return [d for _at, d in found]


def _flush(
    conn: sqlite3.Connection,
    host_rows: list[tuple[object, ...]],
    hu_rows: list[tuple[object, ...]],
    scan_rows: list[tuple[object, ...]],
) -> None:
    conn.executemany(
        "INSERT INTO hosts (id, name, address, os_family, distribution, os_version, pkg_mgr, patch_role,"
        " patch_window, groups, first_seen_at, last_scan_at, last_ok_scan_at, last_status, last_error,"
        " reboot_required, reboot_required_since)"
        " VALUES (?, ?, ?, 'Debian', 'Debian', '12', 'apt', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        host_rows,
    )
    conn.executemany(
        "INSERT INTO host_updates (host_id, update_id, state, installed_version, first_seen_at, last_seen_at,"
        " resolved_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        hu_rows,
    )
    conn.executemany(
        "INSERT INTO scans (run_id, host_id, scanned_at, status, reboot_required, missing_total, missing_security,"
        " missing_major, missing_by_class) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        scan_rows,
    )
    host_rows.clear()
    hu_rows.clear()
    scan_rows.clear()


def _timed_cli(args: list[str], repeat: int) -> tuple[float, int]:
    """Best wall time of ``patchctl ARGS`` (stdout discarded) and the size of its output."""
    times = []
    size = 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATCHCTL_")}
    for _ in range(repeat):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "patchctl", *args], capture_output=True, env=env, check=True)
        times.append(time.perf_counter() - start)
        size = len(out.stdout)
    return min(times), size


def report(db: Path, repeat: int) -> dict[str, float]:
    url = f"sqlite:///{db}"
    table_s, table_bytes = _timed_cli(["--db", url, "report"], repeat)
    json_s, json_bytes = _timed_cli(["--db", url, "report", "--json"], repeat)
    empty = Path(tempfile.mkdtemp()) / "empty.db"
    Store.open(f"sqlite:///{empty}").close()  # created and migrated before the clock starts
    empty_s, _ = _timed_cli(["--db", f"sqlite:///{empty}", "report"], repeat)
    help_s, _ = _timed_cli(["--help"], repeat)
    shutil.rmtree(empty.parent, ignore_errors=True)
    return {
        "report_table_s": table_s,
        "report_json_s": json_s,
        "report_bytes": table_bytes + json_bytes,
        "report_empty_store_s": empty_s,
        "help_s": help_s,
    }


def _scans(hosts: int, missing: int, packages: int, at: datetime) -> Iterator[HostScan]:
    rnd = random.Random(SEED + 1)  # noqa: S311 - synthetic data, reproducible
    for h in range(hosts):
        updates = []
        for p in rnd.sample(range(packages), missing):
            cls = ("security", "bugfix", "other")[p % 3]
            updates.append(
                Update(
                    source="apt",
                    name=f"pkg{p:05d}",
                    version="1.0-3",
                    classification=cls,
                    installed_version="1.0-1",
                    arch="amd64",
                    origin="bookworm-security" if cls == "security" else "bookworm",
                )
            )
        yield HostScan(
            host=f"host-{h:05d}",
            status=HOST_OK,
            scanned_at=at + timedelta(milliseconds=h),
            os_family="Debian",
            distribution="Debian",
            os_version="12",
            pkg_mgr="apt",
            updates=updates,
            groups=("servers", "debian"),
            address=f"10.0.{h // 256 % 256}.{h % 256}",
            patch_role="server",
            patch_window="nightly",
        )


def ingest(db: Path, hosts: int, missing: int, label: str) -> dict[str, float]:
    """Record ``hosts`` scans into ``db`` with Store.record_host_scan, one transaction each."""
    packages = max(missing * 20, 2000)
    scans = list(_scans(hosts, missing, packages, datetime.now(UTC)))
    with Store.open(f"sqlite:///{db}") as store:
        run_id = store.start_run("scan", "bench", None, hosts)
        start, cpu_start = time.perf_counter(), time.process_time()
        for scan in scans:
            store.record_host_scan(run_id, scan)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        store.finish_run(run_id, "ok")
    return {
        f"ingest_{label}_s": elapsed,
        f"ingest_{label}_cpu_s": cpu,
        f"ingest_{label}_ms_per_host": elapsed / hosts * 1000,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("what", choices=("generate", "report", "ingest", "all"))
    default_db = Path(tempfile.gettempdir()) / "patchctl-bench" / "store.db"
    parser.add_argument("--db", type=Path, default=default_db, help=f"the synthetic store (default: {default_db})")
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--missing", type=int, default=100, help="missing updates per host")
    parser.add_argument("--days", type=int, default=30, help="nightly scans of history per host")
    parser.add_argument("--repeat", type=int, default=3, help="report runs to take the best of")
    parser.add_argument("--csv", type=Path, help="append the figures to this CSV")
    args = parser.parse_args(argv)
    args.db.parent.mkdir(parents=True, exist_ok=True)
    figures: dict[str, float] = {}
    if args.what in ("generate", "all"):
        figures |= generate(args.db, args.hosts, args.missing, args.days)
        print(f"generated {args.db}: {args.hosts} hosts x {args.missing} missing, {args.days} days of history, "
              f"{figures['db_mb']:.0f} MB in {figures['generate_s']:.1f} s", flush=True)  # fmt: skip
    if args.what in ("report", "all"):
        figures |= report(args.db, args.repeat)
        print(
            f"patchctl report: table {figures['report_table_s']:.2f} s, json {figures['report_json_s']:.2f} s; "
            f"empty store {figures['report_empty_store_s']:.2f} s; --help {figures['help_s']:.2f} s",
            flush=True,
        )
    if args.what in ("ingest", "all"):
        work = Path(tempfile.mkdtemp(prefix="store-bench-", dir=args.db.parent))
        try:
            figures |= ingest(work / "fresh.db", args.hosts, args.missing, "fresh")
            print(
                f"ingest into an empty store: {figures['ingest_fresh_s']:.1f} s, {figures['ingest_fresh_cpu_s']:.1f} s "
                f"CPU ({figures['ingest_fresh_ms_per_host']:.2f} ms/host)",
                flush=True,
            )
            if args.db.exists():
                shutil.copy(args.db, work / "rescan.db")
                figures |= ingest(work / "rescan.db", args.hosts, args.missing, "rescan")
                print(
                    f"ingest as a rescan of the synthetic store: {figures['ingest_rescan_s']:.1f} s, "
                    f"{figures['ingest_rescan_cpu_s']:.1f} s CPU ({figures['ingest_rescan_ms_per_host']:.2f} ms/host)",
                    flush=True,
                )
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if args.csv:
        row = {"timestamp": datetime.now(UTC).isoformat(timespec="seconds"), "hosts": args.hosts,
               "missing": args.missing, "days": args.days, "cpus": os.cpu_count() or 0,
               "load": round(os.getloadavg()[0], 2)} | {k: round(v, 3) for k, v in figures.items()}  # fmt: skip
        new = not args.csv.exists() or args.csv.stat().st_size == 0
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with args.csv.open("a", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
