"""Hostile and broken input: a corpus of malformed policy (baselines, waves, windows), config and
inventory files, many generated with hypothesis, and odd host names and update titles.

Every case states its outcome and the test checks exactly that: refused (exit 2, exactly one
``patchctl: error:`` line on stderr naming the file and the field) or accepted (exit 0). A
generated case's outcome is worked out from what was written (the document read back), a
handwritten one's is written beside it. Each refusal runs against a populated store, compared
whole (every row of every table) afterwards. Odd host names and update titles are read back
field by field from the store's tables on SQLite and PostgreSQL. No shell gets host data: the
subprocesses take argument lists, a local ``sh -c`` a constant script, the commands ssh hands an
execution node quote every path, and the roles run no shell but the operator's own commands.

Seen failing: with ``parse_policy`` returning the built-in policy (every refused policy case
exited 0: 21 tests failed); with ``App.policy`` changing a row of the store before loading the
policy (every refused handwritten case: the store compared unequal); with the finite check left
out of the policy's numbers (``max_fail_percent: .nan`` and ``bake_days: .inf`` exited 0); with
scan_write storing the update's name as its title (the round trip, on both backends).
"""

from __future__ import annotations

import ast
import copy
import json
import re
import shlex
import sqlite3
import subprocess
import sys
import uuid
import zoneinfo
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from patchctl.cli import cli
from patchctl.config import KEYS
from patchctl.errors import StoreError
from patchctl.render.escape import printable
from patchctl.rules.model import CLASSIFICATIONS, HOST_FAILED, HOST_OK, HostScan, Update
from patchctl.rules.policy import FAMILIES
from patchctl.store import Store, schema
from tests.pg import with_search_path

ROOT = Path(__file__).resolve().parents[2]
ODD_TEXT = [
    "ünïcødé-hôst-名前",
    "quote'in\"side",
    "$(touch /tmp/patchctl-pwned)",
    "`touch /tmp/patchctl-pwned`",
    "a; rm -rf / #",
    "a && touch /tmp/patchctl-pwned",
    "| cat /etc/shadow",
    "{{ lookup('pipe', 'touch /tmp/patchctl-pwned') }}",
    "\x1b[31mred\x1b[0m",
    "x" * 5000,
    "new\nline",
    "tab\there",
    "%s%n%x",
    "../../etc/passwd",
    "",
]
VALID_POLICY: dict[str, Any] = {
    "baselines": {"debian": {"classifications": ["security", "bugfix"], "approve_after_days": 0}},
    "waves": [
        {"name": "pilot", "hosts": "pilot", "bake_days": 7, "max_concurrency": 1, "max_fail_percent": 0},
        {"name": "fleet", "hosts": "all", "max_concurrency": "25%", "max_fail_percent": 10},
    ],
    "windows": [{"name": "nightly", "start": "0 1 * * *", "duration": "4h", "timezone": "Europe/Berlin"}],
}
TOP_KEYS = ("version", "baselines", "waves", "windows", "freezes", "roles", "fast_lane", "fast_lane_bake_days", "sla")
YAML_BREAKS = set("\x85\u2028\u2029")
WAVE_KEYS = (
    "name",
    "hosts",
    "bake_days",
    "max_concurrency",
    "max_fail_percent",
    "min_success_percent",
    "install_window",
)
BASELINE_KEYS = ("classifications", "severities", "approve_after_days", "reject", "allow")


@dataclass(frozen=True)
class Expect:
    """A case's stated outcome: accepted, or refused with an error line saying ``says`` (the
    field and its problem) after naming the file."""

    says: str | None = None

    @property
    def refused(self) -> bool:
        return self.says is not None


ACCEPTED = Expect()


def refused(says: str) -> Expect:
    return Expect(says)


yaml_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(ODD_TEXT),
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.text(max_size=12), st.sampled_from(["baselines", "waves", "windows", "name"])),
            children,
            max_size=4,
        ),
    ),
    max_leaves=12,
)


# --- the generated cases' outcomes, worked out from the text that was written ----------------


def _load(text: str | bytes) -> tuple[str | None, Any]:
    """(why it is not a document, the document): the way any YAML reader sees the file."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            return "not UTF-8 text", None
    try:
        return None, yaml.safe_load(text)
    except yaml.YAMLError:
        return "invalid YAML", None
    except ValueError:  # a surrogate the file could not hold as UTF-8
        return "not UTF-8 text", None


def expected_for_policy(text: str | bytes) -> Expect:
    """What parse_policy must do with a document that is not a near-valid policy.

    Fields are checked in the file's order, and a generated document's keys are sorted (as
    yaml.safe_dump writes them); a document deep enough to be valid is not stated (assumed away).
    """
    problem, doc = _load(text)
    if problem is not None:
        return refused(problem)
    if doc is None:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        is_empty = not yaml.compose(text)
        return refused("the file is empty" if is_empty else "(top level): must be a mapping")
    if not isinstance(doc, dict):
        return refused("(top level): must be a mapping")
    for key in doc:
        if str(key) not in TOP_KEYS:
            return refused(f"{key}: unknown field")
    if "version" in doc:
        assume(False)
    if "baselines" not in doc:
        return refused("baselines: missing")
    base = doc["baselines"]
    if not isinstance(base, dict):
        return refused("baselines: must be a mapping")
    for key in base:
        if str(key) not in FAMILIES:
            return refused(f"baselines.{key}: unknown field")
    if not base:
        return refused("baselines: must name at least one OS family")
    assume(False)
    raise AssertionError("unreachable")


def expected_for_config(text: str | bytes) -> Expect:
    """What the config loader must do with a document that sets no known key."""
    problem, doc = _load(text)
    if problem is not None:
        return refused(problem)
    if doc is None:
        return ACCEPTED
    if not isinstance(doc, dict):
        return refused(f"expected a mapping of settings, got {type(doc).__name__}")
    names = sorted(str(k) for k in doc)
    if not names:
        return ACCEPTED
    if any(n in KEYS or any(k.startswith(f"{n}.") for k in KEYS) for n in names):
        assume(False)  # a real setting: its value's check is another test's
    return refused(f"unknown key {names[0]!r}")


# --- one field of the valid policy broken, with the field the error must name ----------------


def _no_digit(text: str) -> bool:
    return not any(ch.isdigit() for ch in text)


def _not_a_zone(text: str) -> bool:
    try:
        zoneinfo.ZoneInfo(text.strip())
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return True
    return False


not_numbers = st.one_of(st.text(max_size=20), st.booleans(), st.none(), st.lists(st.integers(), max_size=2))
blank_or_not_text = st.one_of(
    st.integers(), st.none(), st.booleans(), st.lists(st.text(max_size=3), max_size=2), st.sampled_from(["", " ", "\t"])
)
# (path in the document, the field as the error names it, values that field must refuse)
BROKEN_FIELDS: list[tuple[tuple[Any, ...], str, st.SearchStrategy[Any]]] = [
    (
        ("baselines", "debian", "approve_after_days"),
        "baselines.debian.approve_after_days: must be an integer",
        st.one_of(st.integers(max_value=-1), st.floats(), not_numbers),
    ),
    (
        ("baselines", "debian", "classifications"),
        "baselines.debian.classifications",
        st.one_of(
            st.text(max_size=10),
            st.integers(),
            st.none(),
            st.lists(st.text(max_size=10).filter(lambda t: t.strip() not in CLASSIFICATIONS), min_size=1, max_size=3),
        ),
    ),
    (
        ("waves", 0, "max_fail_percent"),
        "waves[0] (pilot).max_fail_percent: must be a number between 0 and 100",
        st.one_of(st.floats().filter(lambda x: not 0 <= x <= 100), st.integers(min_value=101), not_numbers),
    ),
    (
        ("waves", 1, "min_success_percent"),
        "waves[1] (fleet).min_success_percent: must be a number between 0 and 100",
        st.one_of(st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: not 0 <= x <= 100), not_numbers),
    ),
    (
        ("waves", 0, "bake_days"),
        "waves[0] (pilot).bake_days: must be a number",
        st.one_of(st.floats().filter(lambda x: not 0 <= x < float("inf")), st.integers(max_value=-1), not_numbers),
    ),
    (
        ("waves", 1, "max_concurrency"),
        "waves[1] (fleet).max_concurrency: must be a host count",
        st.one_of(
            st.integers(max_value=0),
            st.text(max_size=10).filter(_no_digit),
            st.floats(),
            st.booleans(),
            st.none(),
            st.sampled_from(["0%", "101%", "-5%", "5%%"]),
        ),
    ),
    (("waves", 0, "name"), "waves[0].name: must be a non-empty string", blank_or_not_text),
    (("waves", 1, "hosts"), "waves[1] (fleet).hosts: must be a non-empty string", blank_or_not_text),
    (
        ("windows", 0, "timezone"),
        "windows[0] (nightly).timezone",
        st.one_of(
            st.text(min_size=1, max_size=20).filter(_not_a_zone), st.integers(), st.sampled_from(["Mars/Olympus"])
        ),
    ),
    (
        ("windows", 0, "duration"),
        "windows[0] (nightly).duration",
        st.one_of(st.sampled_from(["-4h", "0m", "99999d", "4 hours", "8d", ""]), st.integers(max_value=0), st.none()),
    ),
    (
        ("windows", 0, "start"),
        "windows[0] (nightly).start",
        st.sampled_from(["61 25 * * *", "* * *", "0 1 * * 8", "every night", "", "0 1 32 * *"]),
    ),
]
# (path, values the field must accept)
GOOD_FIELDS: list[tuple[tuple[Any, ...], st.SearchStrategy[Any]]] = [
    (("baselines", "debian", "approve_after_days"), st.integers(min_value=0, max_value=10**6)),
    (("baselines", "debian", "classifications"), st.lists(st.sampled_from(CLASSIFICATIONS), max_size=4)),
    (("waves", 0, "max_fail_percent"), st.floats(min_value=0, max_value=100)),
    (("waves", 0, "bake_days"), st.floats(min_value=0, max_value=3650)),
    (
        ("waves", 1, "max_concurrency"),
        st.one_of(st.integers(min_value=1, max_value=10**6), st.integers(1, 100).map(lambda n: f"{n}%")),
    ),
    (("waves", 0, "name"), st.sampled_from(ODD_TEXT).filter(lambda t: t.strip() not in ("", "fleet"))),
    (("waves", 1, "hosts"), st.sampled_from(ODD_TEXT).filter(lambda t: bool(t.strip()))),
]


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    out = copy.deepcopy(doc)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


@st.composite
def broken_policies(draw: st.DrawFn) -> tuple[dict[str, Any], Expect]:
    """The valid policy with one field broken (a wrong type or value, or an unknown key)."""
    kind = draw(st.integers(0, len(BROKEN_FIELDS) + 2))
    if kind < len(BROKEN_FIELDS):
        path, says, values = BROKEN_FIELDS[kind]
        return _set(VALID_POLICY, path, draw(values)), refused(says)
    where, known, shown = [
        (("waves", 0), WAVE_KEYS, "waves[0]"),
        (("baselines", "debian"), BASELINE_KEYS, "baselines.debian"),
        ((), TOP_KEYS, ""),
    ][kind - len(BROKEN_FIELDS)]
    # a YAML line break in a key (NEL, U+2028/9) reaches the reader folded to a space: not this key
    key = draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in known and not set(k) & YAML_BREAKS))
    shown_key = f"{shown}.{key}" if shown else key
    return _set(VALID_POLICY, (*where, key), 1) if where else {**VALID_POLICY, key: 1}, refused(
        f"{shown_key}: unknown field"
    )


# --- running a case against a populated store ------------------------------------------------


def invoke(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, args, env=env, catch_exceptions=True)
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        raise AssertionError(f"{args}: uncaught {type(exc).__name__}: {exc}") from exc
    assert "Traceback" not in result.output + result.stderr
    return result.exit_code, result.stderr


def check_outcome(code: int, stderr: str, expect: Expect, file: Path, kind: str) -> None:
    """Exactly the stated outcome: exit 0 and no error, or exit 2 and one ``patchctl: error:``
    line naming ``file`` (after ``kind``: "policy file", "inventory") and saying ``expect.says``."""
    if not expect.refused:
        assert (code, stderr) == (0, ""), f"stated accepted, got exit {code}: {stderr}"
        return
    assert code == 2, f"stated refused ({expect.says}), got exit {code}: {stderr}"
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"patchctl: error: {kind} {printable(str(file))}"), lines[0]
    assert expect.says is not None and printable(expect.says) in lines[0], (expect.says, lines[0])


def dump(db: Path) -> list[str]:
    """Every row of every table of a SQLite store, as SQL."""
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return list(conn.iterdump())


@pytest.fixture
def tmp(tmp_path: Path, patchctl_home: Path) -> Path:
    return tmp_path


@pytest.fixture
def store_db(tmp: Path) -> Path:
    """A store with a finished scan of two hosts (one failed) and their missing updates."""
    db = tmp / "store.db"
    now = datetime.now(UTC)
    with Store.open(f"sqlite:///{db}") as store:
        run = store.start_run("scan", "inv", None, 2)
        upd = Update(source="apt", name="openssl", version="3.0.15-1", classification="security", title="OpenSSL")
        store.record_host_scan(
            run,
            HostScan(host="web1", status=HOST_OK, scanned_at=now, updates=[upd], installed={"openssl": "3.0.14-1"}),
        )
        store.record_host_scan(run, HostScan(host="db1", status=HOST_FAILED, scanned_at=now, error="sudo: a password"))
        store.finish_run(run, "ok", now=now)
    return db


def run_policy(tmp: Path, db: Path, text: str | bytes, expect: Expect) -> None:
    """``patchctl updates`` with the policy ``text``: the stated outcome, and after a refusal the
    store exactly as it was."""
    policy = tmp / "policy.yml"
    if isinstance(text, bytes):
        policy.write_bytes(text)
    else:
        policy.write_text(text, encoding="utf-8", errors="surrogatepass")
    before = dump(db)
    code, stderr = invoke(["--db", f"sqlite:///{db}", "--policy", str(policy), "updates"])
    check_outcome(code, stderr, expect, policy, "policy file")
    if expect.refused:
        assert dump(db) == before


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=yaml_values)
def test_generated_policy_documents(tmp: Path, store_db: Path, doc: Any) -> None:
    text = yaml.safe_dump(doc, allow_unicode=True)
    run_policy(tmp, store_db, text, expected_for_policy(text))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=broken_policies())
def test_policies_with_one_field_broken(tmp: Path, store_db: Path, case: tuple[dict[str, Any], Expect]) -> None:
    """Waves, windows and baselines each with a wrong type, value or odd text in one field:
    refused, naming that field."""
    doc, expect = case
    run_policy(tmp, store_db, yaml.safe_dump(doc, allow_unicode=True), expect)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(GOOD_FIELDS).flatmap(lambda f: st.tuples(st.just(f[0]), f[1])))
def test_policies_with_one_field_changed_within_its_range_are_accepted(
    tmp: Path, store_db: Path, field: tuple[tuple[Any, ...], Any]
) -> None:
    path, value = field
    run_policy(tmp, store_db, yaml.safe_dump(_set(VALID_POLICY, path, value), allow_unicode=True), ACCEPTED)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_policy_files_that_are_not_yaml(tmp: Path, store_db: Path, raw: bytes | str) -> None:
    if isinstance(raw, str):
        try:
            raw.encode("utf-8")
        except UnicodeEncodeError:
            assume(False)
    run_policy(tmp, store_db, raw, expected_for_policy(raw))


_B = "baselines: {debian: {classifications: [security]}}\n"
HANDWRITTEN_POLICIES: list[tuple[str, Expect]] = [
    ("baselines: [", refused("line 1: invalid YAML")),
    (_B + "waves: &a [*a]\n", refused("line 2: waves[0]: must be a mapping")),
    (
        "a: &a [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: [*b, *b, *b, *b, *b, *b]\n",
        refused("line 1: a: unknown field"),
    ),
    (
        "!!python/object/apply:os.system ['touch /tmp/patchctl-pwned']\n",
        refused("line 1: (top level): must be a mapping"),
    ),
    (_B + "waves: [{name: a, hosts: all, max_concurrency: 0}]\n", refused("waves[0] (a).max_concurrency: must be")),
    (_B + "waves: [{name: a, hosts: all, max_fail_percent: 101}]\n", refused("waves[0] (a).max_fail_percent: must be")),
    (
        _B + "waves: [{name: a, hosts: all, max_fail_percent: .nan}]\n",
        refused("waves[0] (a).max_fail_percent: must be"),
    ),
    (_B + "waves: [{name: a, hosts: all, bake_days: .inf}]\n", refused("waves[0] (a).bake_days: must be")),
    (_B + "waves: [{name: a, hosts: all}, {name: a, hosts: all}]\n", refused("waves[1].name: wave 'a' is named twice")),
    (_B + "waves: [{name: a, hosts: all, bake_days: -1}]\n", refused("waves[0] (a).bake_days: must be a number")),
    (
        _B + "windows: [{name: w, start: '61 25 * * *', duration: 1h}]\n",
        refused("windows[0] (w).start: invalid cron expression '61 25 * * *'"),
    ),
    (
        _B + "windows: [{name: w, start: '0 1 * * *', duration: 1h, timezone: 'Mars/Olympus'}]\n",
        refused("windows[0] (w).timezone: unknown time zone 'Mars/Olympus'"),
    ),
    (
        _B + "windows: [{name: w, start: '0 1 * * *', duration: -4h}]\n",
        refused("windows[0] (w).duration: not a duration: '-4h'"),
    ),
    (
        _B + "windows: [{name: w, start: '0 1 * * *', duration: 99999d}]\n",
        refused("windows[0] (w).duration: must be between 1m and 7d"),
    ),
    ("\ufeff" + _B, ACCEPTED),  # a byte order mark is not content
    ("baselines:\n\tdebian: {}\n", refused("line 2: invalid YAML: found character '\\t'")),
    ("x" * 1_000_000, refused("line 1: (top level): must be a mapping")),
    (_B + "version: 2\n", refused("version: must be 1, got 2")),
    ("", refused("the file is empty")),
    (_B, ACCEPTED),
]


@pytest.mark.parametrize(("text", "expect"), HANDWRITTEN_POLICIES, ids=range(len(HANDWRITTEN_POLICIES)))
def test_handwritten_bad_policies(tmp: Path, store_db: Path, text: str, expect: Expect) -> None:
    run_policy(tmp, store_db, text, expect)
    assert not Path("/tmp/patchctl-pwned").exists()


def run_config(tmp: Path, db: Path, text: str | bytes, expect: Expect) -> None:
    config = tmp / "patchctl.yml"
    if isinstance(text, bytes):
        config.write_bytes(text)
    else:
        config.write_text(text, encoding="utf-8", errors="surrogatepass")
    before = dump(db)
    code, stderr = invoke(["config", "show"], env={"PATCHCTL_CONFIG": str(config), "PATCHCTL_DB": f"sqlite:///{db}"})
    check_outcome(code, stderr, expect, config, "config file")
    assert dump(db) == before


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=yaml_values)
def test_generated_config_files(tmp: Path, store_db: Path, doc: Any) -> None:
    text = yaml.safe_dump(doc, allow_unicode=True)
    run_config(tmp, store_db, text, expected_for_config(text))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=100))
def test_config_files_that_are_not_text(tmp: Path, store_db: Path, raw: bytes) -> None:
    run_config(tmp, store_db, raw, expected_for_config(raw))


BAD_INVENTORIES: list[tuple[str, str]] = [
    ("all: [", "line 2, column 1: YAML parsing failed"),
    ("all:\n  hosts: 12\n", 'Invalid "hosts" entry for "all" group, requires a dictionary'),
    ("[servers\nweb1\n", "line 3, column 1: YAML parsing failed"),
    (
        "all:\n  hosts:\n    'a;touch /tmp/patchctl-pwned': {}\n  children: 5\n",
        'Invalid "children" entry for "all" group, requires a dictionary',
    ),
    ("\x00\x01\x02", "embedded null byte"),
    ("all:\n  vars: &a [*a]\n", 'Invalid "vars" entry for "all" group, requires a dictionary'),
]


@pytest.mark.parametrize(("text", "says"), BAD_INVENTORIES, ids=range(len(BAD_INVENTORIES)))
def test_bad_inventories(tmp: Path, store_db: Path, text: str, says: str) -> None:
    """Through the real CLI process and ansible-inventory: refused, one line naming the file and
    what is wrong in it, exit 2, nothing run, the store unchanged."""
    inv = tmp / "inventory.yml"
    inv.write_text(text)
    before = dump(store_db)
    proc = subprocess.run(
        [sys.executable, "-m", "patchctl", "--db", f"sqlite:///{store_db}", "scan", "-i", str(inv)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in proc.stderr
    check_outcome(proc.returncode, proc.stderr, refused(says), inv, "inventory")
    assert dump(store_db) == before
    assert not Path("/tmp/patchctl-pwned").exists()


# --- odd names and titles through the store, both backends ------------------------------------


def _limit(column: sa.Column[Any]) -> int:
    length = getattr(column.type, "length", None)
    return int(length) if length else 5000


def odd(column: sa.Column[Any], reserve: int = 0) -> st.SearchStrategy[str]:
    """Odd text that fits ``column`` (its declared length, less ``reserve``), without NUL (which
    PostgreSQL's text cannot hold)."""
    limit = _limit(column) - reserve
    return st.one_of(st.sampled_from([t for t in ODD_TEXT if len(t) <= limit]), st.text(max_size=min(limit, 300))).map(
        lambda t: t.replace("\x00", "")
    )


@contextmanager
def fresh_store(backend: str, tmp: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new, empty store's URL on ``backend``, for one hypothesis example."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / f'{uuid.uuid4().hex}.db'}"
        return
    base: str = request.getfixturevalue("pg_base_url")
    name = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(base)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {name}")
        yield with_search_path(base, name)
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        engine.dispose()


H, U, HU = schema.hosts.c, schema.updates.c, schema.host_updates.c
odd_scans = st.fixed_dictionaries(
    {
        "host": odd(H.name).map(lambda t: t or "h"),
        "address": odd(H.address),
        "distribution": odd(H.distribution),
        "os_version": odd(H.os_version),
        "patch_role": odd(H.patch_role),
        "patch_window": odd(H.patch_window),
        "groups": st.lists(odd(H.name), max_size=3).map(tuple),
        "error": odd(H.last_error).map(lambda t: t or "e"),  # an empty error is stored as the status
        "name": odd(U.name, reserve=10),
        "version": odd(U.version),
        "arch": odd(U.arch),
        "severity": odd(U.severity),
        "title": st.text(max_size=2000).map(lambda t: t.replace("\x00", "")),
        "origin": odd(U.origin),
        "cves": st.lists(odd(U.title), max_size=3).map(tuple),
        "advisory_ids": st.lists(odd(U.title), max_size=2).map(tuple),
        "kbs": st.lists(odd(U.title), max_size=2).map(tuple),
        "installed_version": odd(HU.installed_version),
    }
)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(f=odd_scans)
def test_odd_host_names_and_update_titles_round_trip_through_the_store(
    tmp: Path, request: pytest.FixtureRequest, backend: str, f: dict[str, Any]
) -> None:
    """Every field of an odd host and its odd update, read back from the tables: what was
    written, exactly, on SQLite and PostgreSQL. Seen failing with scan_write storing the update's
    name as its title (the title column differed, on both backends)."""
    now = datetime.now(UTC)
    upd = Update(
        source="apt",
        name=f["name"],
        version=f["version"],
        classification="security",
        installed_version=f["installed_version"],
        arch=f["arch"],
        severity=f["severity"],
        cves=f["cves"],
        advisory_ids=f["advisory_ids"],
        kbs=f["kbs"],
        title=f["title"],
        origin=f["origin"],
        major=True,
        reboot_hint=True,
    )
    scan = HostScan(
        host=f["host"],
        status=HOST_OK,
        scanned_at=now,
        os_family="Debian",
        distribution=f["distribution"],
        os_version=f["os_version"],
        pkg_mgr="apt",
        updates=[upd],
        groups=f["groups"],
        address=f["address"],
        patch_role=f["patch_role"],
        patch_window=f["patch_window"],
    )
    failed = f"{f['host'][:200]}-failed"
    with fresh_store(backend, tmp, request) as url:
        with Store.open(url) as store:
            run = store.start_run("scan", "inv", None, 2)
            store.record_host_scan(run, scan)
            store.record_host_scan(run, HostScan(host=failed, status=HOST_FAILED, scanned_at=now, error=f["error"]))
            missing = [(r.host, r.name, r.version) for r in store.missing_updates()]
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                host = conn.execute(sa.select(schema.hosts).where(H.name == f["host"])).mappings().one()
                bad = conn.execute(sa.select(schema.hosts).where(H.name == failed)).mappings().one()
                bad_scan = (
                    conn.execute(sa.select(schema.scans).where(schema.scans.c.host_id == bad["id"])).mappings().one()
                )
                update = conn.execute(sa.select(schema.updates)).mappings().one()
                link = conn.execute(sa.select(schema.host_updates)).mappings().one()
        finally:
            engine.dispose()
    wrote_host = {k: f[k] for k in ("address", "distribution", "os_version", "patch_role", "patch_window")}
    assert {k: host[k] for k in wrote_host} == wrote_host
    assert (host["os_family"], host["pkg_mgr"], tuple(host["groups"] or ())) == ("Debian", "apt", f["groups"])
    assert (bad["last_error"], bad_scan["error"]) == (f["error"], f["error"])
    wrote_update = {k: f[k] for k in ("name", "version", "arch", "severity", "title", "origin")}
    assert {k: update[k] for k in wrote_update} == wrote_update
    assert (update["uid"], update["source"], update["classification"]) == (upd.uid, "apt", "security")
    assert [tuple(update[k] or ()) for k in ("cves", "advisory_ids", "kbs")] == [f["cves"], f["advisory_ids"], f["kbs"]]
    assert (update["major"], update["reboot_hint"]) == (True, True)
    assert (link["host_id"], link["update_id"], link["state"]) == (host["id"], update["id"], "missing")
    assert link["installed_version"] == f["installed_version"]
    assert missing == [(f["host"], f["name"], f["version"])]


def test_a_host_name_longer_than_the_schema_allows(tmp: Path, request: pytest.FixtureRequest) -> None:
    """A 5000-character host name: SQLite keeps it whole; PostgreSQL (the column is 255
    characters) refuses the scan with one StoreError and writes none of it."""
    name = "x" * 5000
    now = datetime.now(UTC)
    for backend in ("sqlite", "postgresql"):
        with fresh_store(backend, tmp, request) as url, Store.open(url) as store:
            run = store.start_run("scan", "inv", None, 1)
            scan = HostScan(host=name, status=HOST_OK, scanned_at=now, updates=[Update("apt", "n", "1", title=name)])
            if backend == "sqlite":
                store.record_host_scan(run, scan)
                assert [r.host for r in store.missing_updates()] == [name]
                continue
            with pytest.raises(StoreError, match=r"cannot record the scan of x+"):
                store.record_host_scan(run, scan)
            assert store.missing_updates() == []
            engine = sa.create_engine(url)
            try:
                with engine.connect() as conn:
                    counts = [
                        conn.execute(sa.select(sa.func.count()).select_from(t)).scalar()
                        for t in (schema.hosts, schema.scans, schema.updates, schema.host_updates)
                    ]
            finally:
                engine.dispose()
            assert counts == [0, 0, 0, 0]


SHELL_CALL = re.compile(r"shell\s*=\s*True|os\.system\(|os\.popen\(|subprocess\.getoutput|commands\.getoutput")


def test_no_code_hands_a_shell_a_string() -> None:
    """Every subprocess of patchctl and its modules takes an argument list, never a shell string
    (the shells that run by design are the next tests')."""
    offenders = []
    for path in [*ROOT.joinpath("patchctl").rglob("*.py"), *ROOT.joinpath("plugins").rglob("*.py")]:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if SHELL_CALL.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
            if "use_unsafe_shell=True" in line:
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert offenders == []


def _constant_names(tree: ast.AST) -> dict[str, bool]:
    """Each name assigned in ``tree``: True while every assignment to it is a string constant."""
    out: dict[str, bool] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    constant = isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
                    out[target.id] = out.get(target.id, True) and constant
    return out


def test_a_local_shell_gets_a_constant_script_and_the_data_as_arguments() -> None:
    """Wherever patchctl runs ``sh -c`` (the lab's tmpfs mount), the script is a string constant and
    the data follow it as positional arguments. Seen failing with the lab's script made an
    f-string of the mount target."""
    found, offenders = 0, []
    for path in ROOT.joinpath("patchctl").rglob("*.py"):
        tree = ast.parse(path.read_text())
        constants = _constant_names(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.List | ast.Tuple):
                continue
            items = node.elts
            for i in range(len(items) - 2):
                a, b, script = items[i], items[i + 1], items[i + 2]
                if not (isinstance(a, ast.Constant) and a.value in ("sh", "bash") and isinstance(b, ast.Constant)):
                    continue
                if b.value != "-c":
                    continue
                found += 1
                ok = (isinstance(script, ast.Constant) and isinstance(script.value, str)) or (
                    isinstance(script, ast.Name) and constants.get(script.id, False)
                )
                if not ok:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found >= 1 and offenders == [], offenders


HOSTILE_DIR = "/srv/a b'; touch /tmp/patchctl-pwned; echo '$(id)`id`"


def _shell_words(command: str) -> list[str]:
    """The words a POSIX shell makes of ``command``; ``sh -c SCRIPT`` is followed into SCRIPT."""
    words = shlex.split(command)
    if words[:2] == ["sh", "-c"] and len(words) == 3:
        return shlex.split(words[2])
    return words


def test_commands_sent_to_an_execution_node_quote_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ssh hands the node's shell one string: in every command of ``node bootstrap`` and in the
    remote ``ansible-runner worker`` line, a node directory full of shell syntax (from the
    inventory's ``patchctl_node_dir``) stays one word. Seen failing with the worker's
    ``--private-data-dir`` unquoted (as it was: the directory split at its space and ran
    ``touch``) and with bootstrap's ``shlex.quote`` of the directory taken out."""
    from patchctl.ansible import nodes
    from patchctl.ansible.streaming import node_worker_command

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "pip-24.0-py3-none-any.whl").write_bytes(b"wheel")
    (tmp_path / "collections" / "ansible_collections").mkdir(parents=True)
    versions = {"ansible-core": "2.0", "ansible-runner": "2.0"}
    sent: list[str] = []

    def fake_ssh(_node: nodes.ExecutionNode, command: str, **_kw: Any) -> str:
        sent.append(command)
        return f"{json.dumps(versions)}\n2\n2048\n" if command.startswith("sh -c") else ""

    monkeypatch.setattr(nodes, "_ssh", fake_ssh)
    monkeypatch.setattr(nodes, "controller_versions", lambda: versions)
    monkeypatch.setattr(nodes, "ensure_wheels", lambda _v: wheels)
    monkeypatch.setattr(nodes.paths, "collections_dir", lambda: tmp_path / "collections")
    node = nodes.ExecutionNode(name="n1", ssh=("ssh", "n1"), node_dir=HOSTILE_DIR)
    nodes.bootstrap(node)
    assert len(sent) == 4, sent
    for command in sent:
        words = _shell_words(command)
        assert "touch" not in words and "/tmp/patchctl-pwned;" not in words, (command, words)
        assert any(HOSTILE_DIR in w for w in words), words
    remote = f"{HOSTILE_DIR}/jobs/0123"
    assert shlex.split(node_worker_command(node, remote)) == [
        f"PATH={HOSTILE_DIR}/venv/bin:$PATH",
        "ansible-runner",
        "worker",
        f"--private-data-dir={remote}",
        "--delete",
    ]


SHELL_MODULES = {
    "ansible.builtin.shell",
    "shell",
    "ansible.windows.win_shell",
    "win_shell",
    "ansible.builtin.raw",
    "raw",
    "ansible.builtin.script",
    "script",
}
COMMAND_MODULES = SHELL_MODULES | {"ansible.builtin.command", "command", "ansible.windows.win_command", "win_command"}
# The shells the roles run by design: the operator's own hook commands and boot time command
# (inventory variables, the operator's text), each a whole template of one role variable.
OPERATOR_SHELLS = {
    # the operator's install hooks (patch_hooks), each command in its own PowerShell
    (
        "ansible.windows.win_shell",
        "{{ __patch_apply_windows_hook_wrapper }}",
        "{{ patch_apply_windows_hooks[__patch_apply_windows_hook_phase] | default([]) }}",
    ),
    ("ansible.builtin.shell", "{{ item }}", "{{ patch_reboot_pre_commands }}"),
    ("ansible.builtin.shell", "{{ item }}", "{{ patch_reboot_post_commands }}"),
    ("ansible.builtin.shell", "{{ item.command }}", "{{ patch_reboot_hooks }}"),
    ("ansible.windows.win_shell", "{{ item }}", "{{ patch_reboot_pre_commands }}"),
    ("ansible.windows.win_shell", "{{ item }}", "{{ patch_reboot_post_commands }}"),
    (
        "ansible.windows.win_shell",
        "{{ patch_reboot_boot_time_command | default(__patch_reboot_windows_boot_id_command, true) }}",
        None,
    ),
}
HOST_DATA = re.compile(r"ansible_facts|hostvars|inventory_hostname|ansible_host|ansible_hostname|\.stdout|\.stderr")


def _tasks(items: Any) -> Iterator[dict[str, Any]]:
    for item in items or []:
        if not isinstance(item, dict):
            continue
        yield item
        for key in ("block", "rescue", "always", "tasks", "pre_tasks", "post_tasks", "handlers"):
            yield from _tasks(item.get(key))


def test_the_roles_run_no_shell_but_the_operators_commands() -> None:
    """In every role and playbook: no shell, raw or script task except the operator's hook and
    boot time commands, and no command of any kind built from host data (facts, hostvars, the
    host's name, another task's output). Seen failing with a shell task added to patch_apply_linux
    and with ``{{ inventory_hostname }}`` put in the reboot role's boot id command."""
    files = sorted([*ROOT.joinpath("roles").glob("*/tasks/*.yml"), *ROOT.joinpath("playbooks").glob("*.yml")])
    shells, built_from_host = set(), []
    for path in files:
        for task in _tasks(yaml.safe_load(path.read_text())):
            module = next((k for k in task if k in COMMAND_MODULES), None)
            if module is None:
                continue
            args = task[module]
            text = args if isinstance(args, str) else json.dumps(args)
            if module in SHELL_MODULES:
                shells.add((module, text.strip(), task.get("loop")))
            if HOST_DATA.search(text):
                built_from_host.append(f"{path.relative_to(ROOT)}: {task.get('name')}: {text}")
    assert shells == OPERATOR_SHELLS
    assert built_from_host == []
