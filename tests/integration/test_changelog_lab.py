"""apt updates get their CVE ids, Debian urgency and DSA ids from the candidate's changelog,
fetched once per source package and version for the whole fleet, on real lab hosts over SSH.

The lab repository's packages carry Debian changelogs (patchctl/lab/repo.py): patchctl-demo-ssl
1.0-2 (urgency high, two CVEs, a DSA id), patchctl-demo-tls 1.0-2 (urgency emergency, one CVE;
its binary patchctl-demo-tls-utils has its doc directory as a symlink to
patchctl-demo-tls-common's) and patchctl-demo-db 2.0-1 (no changelog at all). The lab's
supervisor logs every request its repository answers, so the test counts the package downloads.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from patchctl.lab.supervisor import REQUEST_LOG
from tests.integration.conftest import OWN_LAB_SUBNET, LabEnv, own_lab

pytestmark = [pytest.mark.integration, pytest.mark.lab]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with own_lab(tmp_path_factory, "patchctl-cve", OWN_LAB_SUBNET, 3) as env:
        yield env


def deb_requests(env: LabEnv) -> Counter[str]:
    log = env.lab.dir / REQUEST_LOG
    lines = log.read_text().splitlines() if log.exists() else []
    return Counter(Path(line.split(" ", 1)[1]).name for line in lines if line.endswith(".deb"))


def test_one_download_per_source_and_version(lab: LabEnv) -> None:
    """Three hosts report patchctl-demo-ssl 1.0-2, two of them patchctl-demo-tls-utils 1.0-2: each
    package file is downloaded once for the fleet (and tls-common once, for the symlinked doc
    directory); the catalog gets the changelog's CVEs, urgency and DSA id; a package without a
    changelog keeps empty CVEs with the reason; the fast lane approves the KEV-listed fix at once
    and freezes it into a rollout of its own; with --now 12 days on, the SLA section has the
    emergency fix breached and the security fix at risk; a second scan downloads nothing. Seen failing
    with plan_fetches giving every host its updates (three downloads of the ssl package), and
    with the module's symlink fallback removed (tls-common never downloaded)."""
    # the lab's scans verify every pending package file (a download per host): off here, so the
    # repository's log counts the changelog fetches alone
    inv = yaml.safe_load(lab.inventory.read_text())
    inv["all"]["vars"]["patch_scan_linux_verify_downloads"] = False
    lab.inventory.write_text(yaml.safe_dump(inv))
    hosts = sorted(inv["all"]["hosts"])
    for host in hosts[:2]:
        lab.ssh(host, "apt-get update -q >/dev/null && apt-get install -y -q patchctl-demo-tls-utils=1.0-1 >/dev/null")
    (lab.lab.dir / REQUEST_LOG).unlink(missing_ok=True)
    db = lab.home / "cve.db"

    scan = lab.cli("scan", "--json", db=db)
    assert scan.code == 0, scan.stderr
    got = scan.json()
    assert isinstance(got, dict)
    debs = deb_requests(lab)
    assert debs["patchctl-demo-ssl_1.0-2_all.deb"] == 1, debs
    assert debs["patchctl-demo-tls-utils_1.0-2_all.deb"] == 1, debs
    assert debs["patchctl-demo-tls-common_1.0-2_all.deb"] == 1, debs
    assert debs["patchctl-demo-db_2.0-1_all.deb"] == 1, debs
    assert all(n == 1 for n in debs.values()), debs
    assert got["changelogs"]["downloads"] == sum(debs.values())

    updates = lab.cli("updates", "--json", db=db)
    assert updates.code == 0, updates.stderr
    listed = updates.json()
    assert isinstance(listed, list)
    rows = {r["uid"]: r for r in listed}
    ssl = rows["apt:patchctl-demo-ssl:1.0-2"]
    assert ssl["cves"] == ["CVE-2099-10001", "CVE-2099-10002"]
    assert ssl["urgency"] == "high" and ssl["advisory_ids"] == ["DSA-9901-1"]
    assert ssl["cves_reason"] is None and ssl["source_package"] == "patchctl-demo-ssl"
    tls = rows["apt:patchctl-demo-tls-utils:1.0-2"]
    assert tls["cves"] == ["CVE-2099-20001"] and tls["urgency"] == "emergency"
    assert tls["source_package"] == "patchctl-demo-tls"
    db20 = rows["apt:patchctl-demo-db:2.0-1"]
    assert db20["cves"] == [] and "unreadable" in db20["cves_reason"]
    app = rows["apt:patchctl-demo-app:1.1-1"]
    assert app["cves"] == [] and app["cves_reason"] is None and app["urgency"] == "medium"

    report = lab.cli("report", "--format", "json", db=db)
    assert report.code == 0, report.stderr
    doc = report.json()
    assert isinstance(doc, dict)
    top = {m["uid"]: m for m in doc["top_missing"]}
    assert top["apt:patchctl-demo-ssl:1.0-2"]["urgency"] == "high"
    assert top["apt:patchctl-demo-ssl:1.0-2"]["cves"] == ["CVE-2099-10001", "CVE-2099-10002"]

    text = lab.cli("updates", db=db)
    assert "CVE-2099-10001" in text.stdout and "high" in text.stdout

    # the fast lane: the lab's emergency fix is listed in a KEV catalog (CISA's format): approved
    # at once although the baseline waits 7 days, in a rollout of its own baking 1 day
    kev = lab.home / "kev.json"
    kev.write_text(
        json.dumps(
            {
                "title": "CISA Catalog of Known Exploited Vulnerabilities",
                "catalogVersion": "lab",
                "dateReleased": "2026-12-06T00:00:00.0000Z",
                "count": 1,
                "vulnerabilities": [
                    {
                        "cveID": "CVE-2099-20001",
                        "vendorProject": "patchctl lab",
                        "product": "patchctl-demo-tls",
                        "vulnerabilityName": "lab remote code execution",
                        "dateAdded": "2026-12-06",
                        "shortDescription": "the lab's known-exploited case",
                        "requiredAction": "Apply updates.",
                        "dueDate": "2026-12-27",
                        "knownRansomwareCampaignUse": "Unknown",
                        "notes": "",
                        "cwes": [],
                    }
                ],
            }
        )
    )
    policy = lab.home / "fast-lane.yml"
    policy.write_text(
        "baselines:\n  debian:\n    classifications: [security]\n    approve_after_days: 7\n"
        "fast_lane:\n  kev: kev.json\n"
        "waves:\n  - name: pilot\n    hosts: all\n    bake_days: 7\n"
    )
    decided = lab.cli("--policy", str(policy), "updates", "--json", db=db)
    assert decided.code == 0, decided.stderr
    states = {r["uid"]: (r["state"], r["reason"]) for r in decided.json()}  # type: ignore[union-attr] # a list
    assert states["apt:patchctl-demo-tls-utils:1.0-2"] == (
        "approved",
        "fast lane: fixes CVE-2099-20001, known exploited (kev.json)",
    )
    assert states["apt:patchctl-demo-ssl:1.0-2"][0] == "waiting"
    made = lab.cli("--policy", str(policy), "rollout", "create", "--json", db=db)
    assert made.code == 0, made.stderr
    rollouts = made.json()["rollouts"]  # type: ignore[index] # a dict
    assert [(r["fast_lane"], r["updates"], r["pilot_bake_days"]) for r in rollouts] == [
        (True, ["apt:patchctl-demo-tls-utils:1.0-2"], 1.0)
    ]

    # SLAs on the exposure clock: with --now 12 days on, the security updates (14 days) are at
    # risk, the emergency fix (urgency emergency: 3 days) breached
    sla_policy = lab.home / "sla.yml"
    sla_policy.write_text(
        "baselines:\n  debian:\n    classifications: [security]\nsla:\n  emergency: 3\n  security: 14\n"
    )
    later = (datetime.now(UTC) + timedelta(days=12)).isoformat()
    sla_run = lab.cli("--policy", str(sla_policy), "--now", later, "report", "--format", "json", db=db)
    assert sla_run.code == 0, sla_run.stderr
    sla_doc = sla_run.json()
    assert isinstance(sla_doc, dict)
    sla_states = {(i["host"], i["uid"]): i["state"] for i in sla_doc["sla"]["items"]}
    assert sla_states[(hosts[0], "apt:patchctl-demo-tls-utils:1.0-2")] == "breached"
    assert sla_states[(hosts[0], "apt:patchctl-demo-ssl:1.0-2")] == "at_risk"
    assert (hosts[2], "apt:patchctl-demo-tls-utils:1.0-2") not in sla_states  # never installed there

    again = lab.cli("scan", "--json", db=db)
    assert again.code == 0, again.stderr
    assert deb_requests(lab) == debs  # reused: nothing downloaded again
    second = again.json()
    assert isinstance(second, dict) and second["changelogs"]["asked"] == 0
