"""The policy's fast lane: updates fixing a listed or known-exploited CVE (a KEV catalog in CISA's
format, tests/data/kev/), or of a listed urgency or severity, approved at once; their rollout of
their own with the short pilot bake; bad input as one line."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from patchctl.cli import cli
from patchctl.config import load_policy
from patchctl.errors import ConfigError
from patchctl.rollouts import create_rollouts
from patchctl.rules.model import Update
from patchctl.rules.policy import STATE_APPROVED, STATE_NEW, STATE_WAITING, UpdateFacts, evaluate, parse_policy
from patchctl.store import Store
from tests.unit.test_store import T0, ok_scan

KEV = Path(__file__).resolve().parents[1] / "data" / "kev" / "known_exploited_vulnerabilities.json"
POLICY = """
baselines:
  debian:
    classifications: [security]
    approve_after_days: 7
fast_lane:
  cves: [cve-2099-20001]
  kev: kev.json
  urgency: [high, emergency, critical]
  severities: [critical]
fast_lane_bake_days: 0.5
waves:
  - name: pilot
    hosts: web01
    bake_days: 7
  - name: fleet
    hosts: all
"""


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    shutil.copy(KEV, tmp_path / "kev.json")
    path = tmp_path / "policy.yml"
    path.write_text(POLICY)
    return path


def facts(**kw: object) -> UpdateFacts:
    base = UpdateFacts("apt:x:1", "apt", "x", "security", T0)
    return replace(base, **kw)  # type: ignore[arg-type] # the test's keywords are UpdateFacts fields


def test_what_the_fast_lane_approves_at_once(policy_file: Path) -> None:
    """KEV-listed and named CVEs whatever the class; urgency and severity within the baseline's
    classes; never a major or rejected update. Seen failing with the KEV catalog not read
    (with_kev left out of load_policy: the Log4j fix kept waiting 7 days)."""
    pol = load_policy(str(policy_file))
    now = T0 + timedelta(hours=1)
    kev = evaluate(pol, facts(cves=("CVE-2021-44228",), classification="bugfix"), now)
    assert (kev.state, kev.reason) == (STATE_APPROVED, "fast lane: fixes CVE-2021-44228, known exploited (kev.json)")
    assert (
        evaluate(pol, facts(cves=("CVE-2099-20001",)), now).reason == "fast lane: fixes CVE-2099-20001 (fast_lane.cves)"
    )
    assert evaluate(pol, facts(urgency="emergency"), now).reason == "fast lane: Debian urgency emergency"
    assert evaluate(pol, facts(source="dnf", severity="Critical"), now).state == STATE_NEW  # no redhat baseline
    assert evaluate(pol, facts(urgency="high", classification="bugfix"), now).state == STATE_NEW
    assert evaluate(pol, facts(urgency="medium"), now).state == STATE_WAITING
    assert evaluate(pol, facts(cves=("CVE-2021-44228",), major=True), now).state != STATE_APPROVED


def test_fast_lane_updates_get_a_rollout_of_their_own(policy_file: Path, db_url: str) -> None:
    """The KEV fix goes into a rollout whose pilot bakes 0.5 days, the update approved by age
    into the usual one. Seen failing with fast_lane_waves returning the policy's waves (pilot 7)."""
    pol = load_policy(str(policy_file))
    log4j = Update(
        "apt", "liblog4j2-java", "2.17.1-1", "security", installed_version="2.15.0-1", cves=("CVE-2021-44228",)
    )
    old = Update("apt", "curl", "7.88.1-10+deb12u6", "security", installed_version="7.88.1-10+deb12u5")
    with Store.open(db_url) as store:
        run = store.start_run("scan", "inv", None, 1, now=T0)
        store.record_host_scan(run, ok_scan("web01", T0, [log4j, old]))
        store.finish_run(run, "ok", now=T0)
    made = create_rollouts(db_url, pol, T0 + timedelta(days=8))
    assert [(m.fast_lane, [u.name for u in m.updates], m.waves[0].bake_days) for m in made] == [
        (True, ["liblog4j2-java"], 0.5),
        (False, ["curl"], 7.0),
    ]


@pytest.mark.parametrize(
    ("kev_text", "says"),
    [
        ("not json", "kev.json: not JSON"),
        ('{"title": "x"}', "kev.json: vulnerabilities: missing or not a list"),
        ('{"vulnerabilities": [{"cveID": "log4shell"}]}', "kev.json: vulnerabilities[0].cveID: must be a CVE id"),
    ],
)
def test_a_bad_kev_file_is_one_line(policy_file: Path, kev_text: str, says: str) -> None:
    (policy_file.parent / "kev.json").write_text(kev_text)
    with pytest.raises(ConfigError, match=says.replace("[", r"\[").replace("]", r"\]")):
        load_policy(str(policy_file))
    out = CliRunner().invoke(cli, ["--policy", str(policy_file), "--db", "sqlite:///x.db", "updates"])
    assert out.exit_code == 2 and out.output.count("\n") == 1 and says in out.output


def test_bad_fast_lane_fields(tmp_path: Path) -> None:
    """Seen failing with the urgency check removed (an unknown urgency was accepted)."""
    with pytest.raises(ConfigError, match=r"fast_lane.urgency\[0\]: unknown urgency 'urgent'"):
        parse_policy("baselines:\n  debian: {}\nfast_lane:\n  urgency: [urgent]\n", "p.yml")
    with pytest.raises(ConfigError, match=r"fast_lane.cves\[0\]: 'log4shell' is not a CVE id"):
        parse_policy("baselines:\n  debian: {}\nfast_lane:\n  cves: [log4shell]\n", "p.yml")
    with pytest.raises(ConfigError, match=r"fast_lane.exploited: unknown field"):
        parse_policy("baselines:\n  debian: {}\nfast_lane:\n  exploited: [x]\n", "p.yml")
    missing = tmp_path / "p.yml"
    missing.write_text("baselines:\n  debian: {}\nfast_lane:\n  kev: nowhere.json\n")
    with pytest.raises(ConfigError, match=r"fast_lane.kev: cannot read .*nowhere.json"):
        load_policy(str(missing))
