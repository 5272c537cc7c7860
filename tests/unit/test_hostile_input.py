"""Hostile and broken input: a corpus of malformed policy (baselines, waves, windows), config and
inventory files, many generated with hypothesis, and odd host names and update titles. Every case
ends with one line "patchctl: error: ..." and exit 2 (or is handled: exit 0), never a traceback,
never a half-written store; no code path hands a shell a string."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patchctl.cli import cli
from patchctl.rules.model import HOST_OK, HostScan, Update
from patchctl.store import Store

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


yaml_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(ODD_TEXT),
)
yaml_keys = st.one_of(st.text(max_size=12), st.sampled_from(["baselines", "waves", "windows", "name", "hosts"]))
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


def _mutate(doc: Any, path: list[Any], value: Any) -> Any:
    """``doc`` with the node at ``path`` (followed as far as it goes) replaced by ``value``."""
    if not path or not isinstance(doc, dict | list):
        return value
    key = path[0]
    if isinstance(doc, dict):
        keys = sorted(doc, key=str)
        k = keys[key % len(keys)] if keys else "x"
        return {**doc, k: _mutate(doc.get(k), path[1:], value)}
    if not doc:
        return [value]
    i = key % len(doc)
    return [*doc[:i], _mutate(doc[i], path[1:], value), *doc[i + 1 :]]


mutated_policies = st.builds(
    _mutate,
    st.just(VALID_POLICY),
    st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=4),
    yaml_values,
)


def invoke(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, args, env=env, catch_exceptions=True)
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        raise AssertionError(f"{args}: uncaught {type(exc).__name__}: {exc}") from exc
    assert "Traceback" not in result.output + result.stderr
    return result.exit_code, result.stderr


def check_refused_or_ok(code: int, stderr: str) -> None:
    assert code in (0, 2), (code, stderr)
    if code == 2:
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(("patchctl: error: ", "Error: ")), stderr
        assert len(lines[0]) < 2000


def store_is_whole(db: Path) -> None:
    if db.exists():
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def run_policy(tmp: Path, text: str | bytes) -> None:
    policy = tmp / "policy.yml"
    if isinstance(text, bytes):
        policy.write_bytes(text)
    else:
        policy.write_text(text, encoding="utf-8", errors="surrogatepass")
    db = tmp / "store.db"
    Store.open(f"sqlite:///{db}").close()  # a store to evaluate against: 'updates' only reads one
    code, stderr = invoke(["--db", f"sqlite:///{db}", "--policy", str(policy), "updates"])
    check_refused_or_ok(code, stderr)
    store_is_whole(db)


@pytest.fixture
def tmp(tmp_path: Path, patchctl_home: Path) -> Path:
    return tmp_path


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=yaml_values)
def test_generated_policy_documents(tmp: Path, doc: Any) -> None:
    run_policy(tmp, yaml.safe_dump(doc, allow_unicode=True))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=mutated_policies)
def test_policies_with_one_field_broken(tmp: Path, doc: Any) -> None:
    """Waves, windows and baselines each with a wrong type, value or odd text somewhere."""
    run_policy(tmp, yaml.safe_dump(doc, allow_unicode=True))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_policy_files_that_are_not_yaml(tmp: Path, raw: bytes | str) -> None:
    run_policy(tmp, raw)


HANDWRITTEN_POLICIES = [
    "baselines: [",
    "baselines: {debian: {classifications: [security]}}\nwaves: &a [*a]\n",
    "a: &a [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b]\n",
    "!!python/object/apply:os.system ['touch /tmp/patchctl-pwned']\n",
    "baselines: {debian: {classifications: [security]}}\nwaves: [{name: a, hosts: all, max_concurrency: 0}]\n",
    "baselines: {debian: {classifications: [security]}}\nwaves: [{name: a, hosts: all, max_fail_percent: 101}]\n",
    "baselines: {debian: {classifications: [security]}}\nwaves: [{name: a, hosts: all}, {name: a, hosts: all}]\n",
    "baselines: {debian: {classifications: [security]}}\nwaves: [{name: a, hosts: all, bake_days: -1}]\n",
    "baselines: {debian: {classifications: [security]}}\nwindows: [{name: w, start: '61 25 * * *', duration: 1h}]\n",
    "baselines: {debian: {classifications: [security]}}\nwindows: [{name: w, start: '0 1 * * *', duration: 1h, "
    "timezone: 'Mars/Olympus'}]\n",
    "baselines: {debian: {classifications: [security]}}\nwindows: [{name: w, start: '0 1 * * *', duration: -4h}]\n",
    "baselines: {debian: {classifications: [security]}}\nwindows: [{name: w, start: '0 1 * * *', duration: 99999d}]\n",
    "\ufeffbaselines: {debian: {classifications: [security]}}\n",
    "baselines:\n\tdebian: {}\n",
    "x" * 1_000_000,
]


@pytest.mark.parametrize("text", HANDWRITTEN_POLICIES, ids=range(len(HANDWRITTEN_POLICIES)))
def test_handwritten_bad_policies(tmp: Path, text: str) -> None:
    run_policy(tmp, text)
    assert not Path("/tmp/patchctl-pwned").exists()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=yaml_values)
def test_generated_config_files(tmp: Path, doc: Any) -> None:
    config = tmp / "patchctl.yml"
    config.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8", errors="surrogatepass")
    code, stderr = invoke(["config", "show"], env={"PATCHCTL_CONFIG": str(config)})
    check_refused_or_ok(code, stderr)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=100))
def test_config_files_that_are_not_text(tmp: Path, raw: bytes) -> None:
    config = tmp / "patchctl.yml"
    config.write_bytes(raw)
    code, stderr = invoke(["config", "show"], env={"PATCHCTL_CONFIG": str(config)})
    check_refused_or_ok(code, stderr)


BAD_INVENTORIES = [
    "all: [",
    "all:\n  hosts: 12\n",
    "[servers\nweb1\n",
    "all:\n  hosts:\n    'a;touch /tmp/patchctl-pwned': {}\n  children: 5\n",
    "\x00\x01\x02",
    "all:\n  vars: &a [*a]\n",
]


@pytest.mark.parametrize("text", BAD_INVENTORIES, ids=range(len(BAD_INVENTORIES)))
def test_bad_inventories(tmp: Path, text: str) -> None:
    """Through the real CLI process and ansible-inventory: one line, exit 2, nothing run."""
    inv = tmp / "inventory.yml"
    inv.write_text(text)
    db = tmp / "store.db"
    proc = subprocess.run(
        [sys.executable, "-m", "patchctl", "--db", f"sqlite:///{db}", "scan", "-i", str(inv)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    store_is_whole(db)
    assert not Path("/tmp/patchctl-pwned").exists()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(host=st.one_of(st.sampled_from(ODD_TEXT), st.text(min_size=1, max_size=300)), title=st.text(max_size=2000))
def test_odd_host_names_and_update_titles_round_trip_through_the_store(tmp: Path, host: str, title: str) -> None:
    host = host.replace("\x00", "") or "h"
    title = title.replace("\x00", "")
    now = datetime.now(UTC)
    with Store.open(f"sqlite:///{tmp / 'odd.db'}") as store:
        run = store.start_run("scan", "inv", None, 1)
        upd = Update(
            source="apt",
            name=host,
            version="1.0",
            classification="security",
            title=title,
        )
        store.record_host_scan(
            run, HostScan(host=host, status=HOST_OK, scanned_at=now, updates=[upd], installed={host: "0.9"})
        )
        rows = [r for r in store.missing_updates() if r.host == host]
    assert [(r.host, r.name) for r in rows] == [(host, host)]


SHELL_CALL = re.compile(r"shell\s*=\s*True|os\.system\(|os\.popen\(|subprocess\.getoutput|commands\.getoutput")


def test_no_code_hands_a_shell_a_string() -> None:
    """Every subprocess of patchctl and its modules takes an argument list, never a shell string."""
    offenders = []
    for path in [*ROOT.joinpath("patchctl").rglob("*.py"), *ROOT.joinpath("plugins").rglob("*.py")]:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if SHELL_CALL.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
            if "use_unsafe_shell=True" in line:
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert offenders == []
