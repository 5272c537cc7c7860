"""``patchctl cve`` on a mixed apt/dnf/zypper lab agrees with the RPM repository's advisories
(patchctl/lab/rpm.py) and the apt packages' changelogs (patchctl/lab/repo.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from patchctl.lab import repo, rpm
from patchctl.rules import changelog
from tests.integration.conftest import OWN_LAB_SUBNET, LabEnv, own_lab

pytestmark = [pytest.mark.integration, pytest.mark.lab]


@pytest.fixture(scope="module")
def mixed_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabEnv]:
    with own_lab(tmp_path_factory, "patchctl-cve-mixed", OWN_LAB_SUBNET, 1, dnf_hosts=1, zypper_hosts=1) as env:
        yield env


def test_cve_agrees_with_advisories_and_changelogs(mixed_lab: LabEnv) -> None:
    """Every CVE of the RPM advisories has the dnf and zypper hosts exposed, fixed by the
    advisory's package; every CVE the apt changelogs name between the base and the candidate
    versions has the apt host exposed. Seen failing with the dnf/zypper update CVEs dropped in
    the cve flow's host_cves (KeyError: CVE-2024-90101, the dnf advisory's CVE, not listed)."""
    db = mixed_lab.home / "cve.db"
    scan = mixed_lab.cli("scan", db=db)
    assert scan.code == 0, scan.stdout + scan.stderr
    out = mixed_lab.cli("cve", "--json", db=db)
    assert out.code == 0, out.stderr
    doc = out.json()
    assert isinstance(doc, dict)
    got = {c["cve"]: c for c in doc["cves"]}

    expected_rpm = {cve: a for a in rpm.ADVISORIES for cve in a.cves}
    for cve, advisory in expected_rpm.items():
        exposed = {h["host"] for h in got[cve]["hosts"]}
        assert len(exposed) == 2 and all(h.startswith(("dnf-", "zyp-")) for h in exposed), (cve, exposed)
        assert {f["name"] for f in got[cve]["fixes"]} == {advisory.package.name}

    base = {p.name: p.version for p in repo.PACKAGES if p.base}
    expected_apt: dict[str, set[str]] = {}
    for pkg in repo.PACKAGES:
        if pkg.base or pkg.name not in base or not pkg.changelog or pkg.doc_link:
            continue
        entries = changelog.parse(repo.changelog_text(pkg))
        for cve in changelog.facts(changelog.between(entries, base[pkg.name], pkg.version)).cves:
            expected_apt.setdefault(cve, set()).add(pkg.name)
    assert expected_apt  # the lab's apt security fix names CVEs
    for cve, names in expected_apt.items():
        exposed = {h["host"] for h in got[cve]["hosts"]}
        assert len(exposed) == 1 and not any(h.startswith(("dnf-", "zyp-")) for h in exposed), (cve, exposed)
        assert {f["name"] for f in got[cve]["fixes"]} == names
    assert set(got) == set(expected_rpm) | set(expected_apt)
