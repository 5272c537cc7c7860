"""The policy engine: approve_after_days boundary, reject/allow precedence, majors, validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from patchctl.errors import ConfigError
from patchctl.rules.policy import (
    BUILTIN,
    STATE_APPROVED,
    STATE_MANUAL,
    STATE_NEW,
    STATE_REJECTED,
    STATE_WAITING,
    Concurrency,
    Evaluation,
    Policy,
    UpdateFacts,
    Wave,
    evaluate,
    parse_policy,
)

SEEN = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

POLICY = """\
---
version: 1
baselines:
  debian:
    classifications: [security, bugfix]
    approve_after_days: 3
    reject: ["*-dbg", "patchctl-demo-broken"]
    allow: ["openssl", "*-dbg", "apt:bigdb:*"]
  windows:
    classifications: [security, critical]
    severities: [critical, important]
    approve_after_days: 0
    reject: [KB5034441]
waves:
  - name: pilot
    hosts: pilot
    bake_days: 7
    max_concurrency: 1
  - name: fleet
    hosts: all
    max_concurrency: "25%"
    max_fail_percent: 10
"""


def facts(name: str = "curl", **kw: object) -> UpdateFacts:
    base: dict[str, Any] = {
        "uid": f"apt:{name}:2.0-1",
        "source": "apt",
        "name": name,
        "classification": "security",
        "first_seen_at": SEEN,
    }
    base.update(kw)
    return UpdateFacts(**base)


@pytest.fixture
def policy() -> object:
    return parse_policy(POLICY, "policy.yml")


def test_approve_after_days_boundary(policy: Policy) -> None:
    days3 = SEEN + timedelta(days=3)
    just_before = evaluate(policy, facts(), days3 - timedelta(seconds=1))
    assert just_before.state == STATE_WAITING
    assert just_before.waiting_days(days3 - timedelta(seconds=1)) == 1
    assert evaluate(policy, facts(), days3).state == STATE_APPROVED
    assert evaluate(policy, facts(), SEEN).waiting_days(SEEN) == 3


def test_unapproved_classification_stays_new(policy: Policy) -> None:
    later = SEEN + timedelta(days=30)
    assert evaluate(policy, facts(classification="feature"), later).state == STATE_NEW


def test_reject_wins_over_allow(policy: Policy) -> None:
    ev = evaluate(policy, facts("curl-dbg"), SEEN + timedelta(days=30))
    assert ev.state == STATE_REJECTED
    assert "*-dbg" in ev.reason


def test_allow_approves_at_once_whatever_the_classification(policy: Policy) -> None:
    ev = evaluate(policy, facts("openssl", classification="other"), SEEN)
    assert ev.state == STATE_APPROVED


def test_major_is_never_approved_by_a_rule(policy: Policy) -> None:
    later = SEEN + timedelta(days=365)
    assert evaluate(policy, facts(major=True), later).state == STATE_MANUAL
    # not even by an allow pattern (matched on the uid here)
    assert evaluate(policy, facts("bigdb", major=True), later).state == STATE_MANUAL
    # but a reject pattern still rejects it
    assert evaluate(policy, facts("patchctl-demo-broken", major=True), later).state == STATE_REJECTED


def test_windows_baseline_severity_and_kb_patterns(policy: Policy) -> None:
    win = {"source": "windows", "uid": "windows:abc", "classification": "security"}
    assert evaluate(policy, facts("Update A", severity="Critical", **win), SEEN).state == STATE_APPROVED
    assert evaluate(policy, facts("Update B", severity="Low", **win), SEEN).state == STATE_NEW
    assert evaluate(policy, facts("Update C", kbs=("KB5034441",), **win), SEEN).state == STATE_REJECTED


def test_family_without_baseline_is_new(policy: Policy) -> None:
    ev = evaluate(policy, facts(source="dnf", uid="dnf:curl:2.0-1"), SEEN + timedelta(days=30))
    assert ev.state == STATE_NEW and "redhat" in ev.reason


def test_waves_parsed_with_defaults(policy: Policy) -> None:
    pilot, fleet = policy.waves
    assert (pilot.name, pilot.hosts, pilot.bake_days, pilot.max_fail_percent) == ("pilot", "pilot", 7, 0)
    assert fleet.max_concurrency == Concurrency(25, percent=True)
    assert fleet.max_concurrency.hosts(3) == 1 and fleet.max_concurrency.hosts(10) == 3


def test_builtin_default_waves() -> None:
    assert [w.name for w in BUILTIN.waves] == ["pilot", "fleet"]
    assert BUILTIN.waves[0].bake_days == 7


def test_shipped_policies_are_valid() -> None:
    root = Path(__file__).resolve().parents[2] / "policies"
    files = sorted(root.glob("*.yml"))
    assert files
    for file in files:
        parse_policy(file.read_text(), str(file))


@pytest.mark.parametrize(
    ("text", "line", "field", "problem"),
    [
        ("baselines:\n  debian:\n    approve_after_days: soon\n", 3, "baselines.debian.approve_after_days", "integer"),
        ("baselines:\n  debian:\n    approve_after_days: -1\n", 3, "baselines.debian.approve_after_days", "at least 0"),
        ("baselines:\n  debian:\n    classifications: [security, urgent]\n", 3, "baselines.debian.classifications[1]",
         "unknown classification 'urgent'"),
        ("baselines:\n  debian: {}\n  plan9: {}\n", 3, "baselines.plan9", "unknown field"),
        ("baselines:\n  debian:\n    reject: openssl\n", 3, "baselines.debian.reject", "list of strings"),
        ("baselines:\n  debian: {}\nwaves:\n  - name: pilot\n    hosts: pilot\n    max_concurrency: 0\n", 6,
         "waves[0] (pilot).max_concurrency", "host count"),
        ("baselines:\n  debian: {}\nwaves:\n  - name: pilot\n    hosts: pilot\n    max_fail_percent: 150\n", 6,
         "waves[0] (pilot).max_fail_percent", "between 0 and 100"),
        ("baselines:\n  debian: {}\nwaves:\n  - name: pilot\n    bake_days: 7\n", 4, "waves[0].hosts", "missing"),
        ("baselines:\n  debian: {}\nwaves:\n  - {name: a, hosts: x}\n  - {name: a, hosts: y}\n", 5, "waves[1].name",
         "named twice"),
        ("baselines:\n  debian: {}\n  debian: {}\n", 3, "baselines.debian", "given twice"),
        ("waves: []\n", 1, "baselines", "missing"),
        ("baselines:\n  debian:\n    successors: upgrade\n", 3, "baselines.debian.successors",
         "must be one of repilot, install, block, got 'upgrade'"),
    ],
)  # fmt: skip
def test_validation_errors_name_file_line_and_field(text: str, line: int, field: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_policy(text, "/etc/patchctl/policy.yml")
    message = err.value.message
    assert message.startswith(f"policy file /etc/patchctl/policy.yml, line {line}: {field}: "), message
    assert problem in message
    assert "\n" not in message


def test_invalid_yaml_names_the_line() -> None:
    with pytest.raises(ConfigError, match=r"policy file p\.yml, line 3: invalid YAML"):
        parse_policy("baselines:\n  debian:\n    reject: a: b\n  windows: {}\n", "p.yml")


def test_empty_file_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"policy file p\.yml: the file is empty"):
        parse_policy("", "p.yml")


@pytest.mark.parametrize("value", ["!!int x", "!!float x", "!!timestamp x"], ids=["int", "float", "timestamp"])
def test_a_tag_the_value_does_not_fit_is_a_one_line_error_naming_the_line(value: str) -> None:
    """``approve_after_days: !!int x``: pyyaml raises ValueError, not YAMLError, while it builds the
    value. Seen failing (a ValueError traceback out of parse_policy) with the ValueError branch of
    ``YamlDoc.value`` removed."""
    text = f"baselines:\n  debian:\n    classifications: [security]\n    approve_after_days: {value}\n"
    with pytest.raises(ConfigError) as exc:
        parse_policy(text, "p.yml")
    message = exc.value.message
    assert message.startswith("policy file p.yml, line 4: ") and "invalid YAML" in message, message
    assert "\n" not in message


def test_successors_default_repilot_and_parsed() -> None:
    """Breaking it: the successors key left out of the known fields makes the second parse an
    'unknown field' error; a default other than repilot fails the first assertion."""
    assert parse_policy("baselines:\n  debian: {}\n", "p.yml").baselines["debian"].successors == "repilot"
    parsed = parse_policy("baselines:\n  debian:\n    successors: install\n  redhat:\n    successors: block\n", "p")
    assert (parsed.baselines["debian"].successors, parsed.baselines["redhat"].successors) == ("install", "block")


def test_every_evaluation_whole(policy: Policy) -> None:
    """Each branch of the policy's decision, its whole answer compared (state, reason, approve_at):
    the reasons are what `patchctl updates` shows in its "why" column. Found by mutation testing:
    23 mutants of ``evaluate`` (reasons dropped or changed, ``approve_at`` lost, the family of an
    unknown source dropped) survived the state checks above."""
    later, at = SEEN + timedelta(days=30), SEEN + timedelta(days=3)
    flatpak = facts(source="flatpak", uid="flatpak:curl:2.0-1")
    assert evaluate(policy, flatpak, later) == Evaluation(STATE_NEW, "no baseline for flatpak in policy.yml")
    assert evaluate(policy, facts("curl-dbg"), later) == Evaluation(STATE_REJECTED, "matches reject pattern '*-dbg'")
    assert evaluate(policy, facts(unmanaged=True), later) == Evaluation(
        STATE_MANUAL, "installed outside Chocolatey: only 'patchctl approve ID --take-over' approves it"
    )
    assert evaluate(policy, facts(major=True), later) == Evaluation(
        STATE_MANUAL, "major upgrade: only 'patchctl approve ID --major' approves it"
    )
    assert evaluate(policy, facts("openssl"), SEEN) == Evaluation(STATE_APPROVED, "matches allow pattern 'openssl'")
    assert evaluate(policy, facts(classification="feature"), later) == Evaluation(
        STATE_NEW, "classification 'feature' is not approved by the policy"
    )
    low = facts(source="windows", uid="windows:kb1:1", severity="Low")
    assert evaluate(policy, low, later) == Evaluation(STATE_NEW, "severity 'Low' is not approved by the policy")
    assert evaluate(policy, facts(), SEEN) == Evaluation(
        STATE_WAITING, "security, approved 3 days after first seen", at
    )
    assert evaluate(policy, facts(), later) == Evaluation(
        STATE_APPROVED, "security, 3 days since first seen have passed", at
    )


# --- answers whole (found by mutation testing: each case below was seen failing by its mutant) ----

_B = "baselines: {debian: {}}\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ": the file is empty (expected baselines: and waves:)"),
        (
            "bogus: 1\n" + _B,
            ", line 1: bogus: unknown field (known: version, baselines, waves, windows, "
            "freezes, roles, fast_lane, fast_lane_bake_days, sla)",
        ),
        ("version: 2\n" + _B, ", line 1: version: must be 1, got 2"),
        ("waves: []\n", ", line 1: baselines: missing (a mapping of OS family to baseline)"),
        ("baselines: {}\n", ", line 1: baselines: must name at least one OS family"),
        (_B + "waves: []\n", ", line 2: waves: must be a non-empty list of waves"),
        (_B + "waves: {a: 1}\n", ", line 2: waves: must be a non-empty list of waves"),
        (_B + "waves:\n  - name: a\n", ", line 3: waves[0].hosts: missing"),
        (
            _B + "waves:\n  - {name: a, hosts: all, foo: 1}\n",
            ", line 3: waves[0].foo: unknown field (known: name, hosts, bake_days, max_concurrency, "
            "max_fail_percent, min_success_percent, install_window)",
        ),
        (_B + "waves:\n  - {name: [1], hosts: all}\n", ", line 3: waves[0].name: must be a non-empty string, got [1]"),
        (
            _B + "waves:\n  - {name: a, hosts: [1]}\n",
            ", line 3: waves[0] (a).hosts: must be a non-empty string, got [1]",
        ),
        (
            _B + "waves:\n  - {name: a, hosts: all, bake_days: x}\n",
            ", line 3: waves[0] (a).bake_days: must be a number at least 0, got 'x'",
        ),
        (
            _B + "waves:\n  - {name: a, hosts: all, max_concurrency: 0}\n",
            ", line 3: waves[0] (a).max_concurrency: must be a host count >= 1 or a percentage like '25%', got 0",
        ),
        (
            "baselines: {debian: {classifications: [bogus]}}\n",
            ", line 1: baselines.debian.classifications[0]: unknown classification 'bogus' (known: security, critical, "
            "bugfix, enhancement, feature, rollup, definition, driver, other)",
        ),
        (
            "baselines: {debian: {foo: 1}}\n",
            ", line 1: baselines.debian.foo: unknown field (known: classifications, severities, "
            "approve_after_days, reject, allow, successors, successor_bake_days, starved_after_days)",
        ),
        ("baselines: {debian: {severities: 5}}\n", ", line 1: baselines.debian.severities: must be a list of strings"),
        (
            "baselines: {debian: {successors: [1]}}\n",
            ", line 1: baselines.debian.successors: must be a non-empty string, got [1]",
        ),
        (
            "baselines: {debian: {successor_bake_days: x}}\n",
            ", line 1: baselines.debian.successor_bake_days: must be a number at least 0, got 'x'",
        ),
        (
            "baselines: {debian: {starved_after_days: x}}\n",
            ", line 1: baselines.debian.starved_after_days: must be a number at least 0, got 'x'",
        ),
    ],
)
def test_policy_errors_whole(text: str, expected: str) -> None:
    """Every refusal's whole message: line, field and problem. Seen failing with the node, the
    field or the problem dropped or changed, the version check skipped, the known fields of the
    top level, a baseline or a wave dropped (anything then accepted) or their path dropped,
    ``and`` for ``or`` in the waves check, and the classifications joined otherwise."""
    with pytest.raises(ConfigError) as exc:
        parse_policy(text, "p.yml")
    assert exc.value.message == f"policy file p.yml{expected}"


def test_parsed_policy_whole() -> None:
    """Seen failing with the built-in waves lost (``None``) when the file has none, the source
    dropped, the waves given dropped, ``bake_days`` or ``min_success_percent`` not read, and a
    lineage number not read (``None``, or the key node read for the value)."""
    default = parse_policy(_B, "p.yml")
    assert (default.source, default.waves) == ("p.yml", BUILTIN.waves)
    text = (
        "baselines: {debian: {successor_bake_days: 3, starved_after_days: 40}}\n"
        "waves:\n  - {name: a, hosts: all, bake_days: 2, max_fail_percent: 10, min_success_percent: 50}\n"
    )
    policy = parse_policy(text, "p.yml")
    assert policy.waves == (
        Wave("a", "all", bake_days=2, max_concurrency=Concurrency(1), max_fail_percent=10, min_success_percent=50),
    )
    baseline = policy.baselines["debian"]
    assert (baseline.successor_bake_days, baseline.starved_after_days) == (3, 40)


def test_a_source_without_its_family_falls_back_to_default() -> None:
    """Seen failing with the fallback baseline looked up as ``None``, ``XXdefaultXX`` or
    ``DEFAULT``."""
    policy = parse_policy("baselines: {default: {approve_after_days: 5}, redhat: {}}\n", "p.yml")
    assert policy.baseline_for("apt") is policy.baselines["default"]
    assert policy.baseline_for("dnf") is policy.baselines["redhat"]


def test_concurrency_hosts_and_parse_exact() -> None:
    """Seen failing with ``< 0`` or ``<= 1`` for ``<= 0``, 1 host for an empty wave, every count
    read as a percentage, ``/ 101``, ``>= 100`` or ``> 101`` for the percentage bound, and the
    refused text dropped from the error."""
    assert Concurrency(5).hosts(0) == 0
    assert Concurrency(5).hosts(1) == 1
    assert Concurrency(3).hosts(10) == 3
    assert Concurrency(100, percent=True).hosts(101) == 101
    assert Concurrency.parse("100%") == Concurrency(100, percent=True)
    with pytest.raises(ValueError) as exc:
        Concurrency.parse("101%")
    assert str(exc.value) == "101%"


def test_waiting_days_exact() -> None:
    """Seen failing with ``and`` for ``or`` (a date of an approved update counted), 1 for 0, and
    ``/ 86401``."""
    now = SEEN
    later = now + timedelta(days=1, seconds=1)
    assert Evaluation(STATE_APPROVED, "r", approve_at=later).waiting_days(now) == 0
    assert Evaluation(STATE_WAITING, "r").waiting_days(now) == 0
    assert Evaluation(STATE_WAITING, "r", approve_at=later).waiting_days(now) == 2


def test_a_wave_as_stored_and_read_back_whole() -> None:
    """A wave frozen into a rollout (``as_dict``) and read back (``from_dict``): every field, the
    concurrency as written (``25%``, ``2``). Seen failing with a key renamed or dropped on either
    side and the percent sign dropped from the concurrency."""
    pct = Wave("b", "web", bake_days=1.5, max_concurrency=Concurrency(25, percent=True), max_fail_percent=5.0)
    assert pct.as_dict() == {
        "name": "b",
        "hosts": "web",
        "bake_days": 1.5,
        "max_concurrency": "25%",
        "max_fail_percent": 5.0,
        "min_success_percent": 100,
    }
    count = Wave("c", "db", bake_days=0, max_concurrency=Concurrency(2), min_success_percent=90.0)
    assert count.as_dict()["max_concurrency"] == "2"
    for wave in (pct, count):
        assert Wave.from_dict(wave.as_dict()) == wave
