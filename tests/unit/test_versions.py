"""Package version ordering (patchctl/rules/versions.py), checked against known orderings.

Debian cases follow Debian Policy 5.6.12 and the examples dpkg's documentation gives; the RPM
cases follow rpm's documented comparison (segments, ``~`` and ``^``)."""

from __future__ import annotations

import random
import re
import shutil
import subprocess

import pytest

from patchctl.rules.versions import compare_debian, compare_rpm, older

DEBIAN_ASCENDING = [
    "0.9",
    "1.0~rc1",
    "1.0~rc1-1",
    "1.0",
    "1.0-1",
    "1.0-1+deb12u1",
    "1.0-2",
    "1.0-10",
    "1.0a",
    "1.0+b1",
    "1.0.1",
    "1.1~beta",
    "1.1",
    "2.0",
    "10.0",
    "1:0.1",
    "2:0.0",
]

RPM_ASCENDING = [
    "0.9-1",
    "1.0~rc1-1",
    "1.0-1",
    "1.0-1.el9",
    "1.0-2",
    "1.0-10",
    "1.0^git1-1",
    "1.0a-1",
    "1.0.1-1",
    "1.1-1",
    "10.0-1",
    "1:0.1-1",
]


@pytest.mark.parametrize(("compare", "ascending"), [(compare_debian, DEBIAN_ASCENDING), (compare_rpm, RPM_ASCENDING)])
def test_every_pair_is_ordered_as_listed(compare: object, ascending: list[str]) -> None:
    assert callable(compare)
    for i, a in enumerate(ascending):
        for j, b in enumerate(ascending):
            expected = (i > j) - (i < j)
            assert compare(a, b) == expected, (a, b)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("1.0", "1.00", 0),  # numbers compare as numbers
        ("0:1.0-1", "1.0-1", 0),  # epoch 0 is no epoch
        ("1.0-1", "1.0-1", 0),
        ("1.2.3-4ubuntu1", "1.2.3-4", 1),
        ("7.88.1-10+deb12u5", "7.88.1-10+deb12u12", -1),
    ],
)
def test_debian_cases(a: str, b: str, expected: int) -> None:
    assert compare_debian(a, b) == expected
    assert compare_debian(b, a) == -expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("1.0-1", "1_0-1", 0),  # separators only separate
        ("2.0.1-1", "2.0.01-1", 0),
        ("1.0-1", "1.0-1.1", -1),
        ("4.18.0-513.el8", "4.18.0-553.el8", -1),
    ],
)
def test_rpm_cases(a: str, b: str, expected: int) -> None:
    assert compare_rpm(a, b) == expected
    assert compare_rpm(b, a) == -expected


def test_older_by_source() -> None:
    assert older("apt", "1.0-1", "1.1-1") is True
    assert older("apt", "1.1-1", "1.1-1") is False
    assert older("dnf", "1.2-1", "1.1-1") is False
    assert older("dnf", "1.1-1", "1.1-1") is False  # seen failing with "<= 0" and "< 1"
    assert older("zypper", "1.0-1", "1.0-2") is True
    assert older("chocolatey", "1.0", "2.0") is None
    assert older("windows", "1", "2") is None


def _random_versions(rnd: random.Random, alphabet: str, n: int) -> list[tuple[str, str]]:
    def one() -> str:
        epoch = f"{rnd.randint(0, 2)}:" if rnd.random() < 0.2 else ""
        upstream = str(rnd.randint(0, 12)) + "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 6)))
        revision = "-" + "".join(rnd.choice(alphabet + "0123456789") for _ in range(rnd.randint(1, 4)))
        return epoch + upstream + revision

    pairs = []
    for _ in range(n):
        a = one()
        # half the pairs share a prefix, so that the interesting tails meet
        b = a[: rnd.randint(0, len(a))] + one()[rnd.randint(0, 2) :] if rnd.random() < 0.5 else one()
        pairs.append((a, b.lstrip("-:") or "0"))
    return pairs


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="dpkg is not installed")
def test_debian_order_agrees_with_dpkg() -> None:
    rnd = random.Random(20261126)  # noqa: S311 - reproducible test data
    for a, b in _random_versions(rnd, "0123456789.+~abz", 300):
        if not all(re.fullmatch(r"(\d+:)?\d[A-Za-z0-9.+~]*(-[A-Za-z0-9.+~]+)?", v) for v in (a, b)):
            continue
        lt = subprocess.run(["dpkg", "--compare-versions", a, "lt", b], check=False).returncode == 0
        eq = subprocess.run(["dpkg", "--compare-versions", a, "eq", b], check=False).returncode == 0
        assert compare_debian(a, b) == (-1 if lt else 0 if eq else 1), (a, b)


@pytest.mark.skipif(shutil.which("rpm") is None, reason="rpm is not installed")
def test_rpm_order_agrees_with_rpm() -> None:
    rnd = random.Random(20261127)  # noqa: S311 - reproducible test data
    pairs = [
        (a, b)
        for a, b in _random_versions(rnd, "0123456789.~^abz_", 300)
        if all(re.fullmatch(r"(\d+:)?[A-Za-z0-9._~^]+-[A-Za-z0-9._~^]+", v) for v in (a, b))
    ]
    assert len(pairs) > 100
    # rpm's own comparison, all pairs in one call (rpm.vercmp compares whole [e:]v-r strings)
    lua = "".join(f'print(rpm.vercmp("{a}", "{b}") .. ",") ' for a, b in pairs)
    out = subprocess.run(["rpm", "--eval", f"%{{lua: {lua}}}"], capture_output=True, text=True, check=True).stdout
    expected = [int(x) for x in out.replace("\n", "").split(",") if x]
    assert len(expected) == len(pairs)
    for (a, b), want in zip(pairs, expected, strict=True):
        assert compare_rpm(a, b) == want, (a, b)


DEBIAN_EDGES = [
    ("1", "1.0"),  # no epoch: a bare number is no epoch
    ("1:2:3-1", "2-1"),  # the epoch ends at the first colon
    ("1-2-3", "1-10"),  # the revision starts after the last hyphen
    ("1.0~rc1-1", "1.0-1"),
    ("1.0a-1", "1.0-1"),
    ("1.0+b1", "1.0"),
    ("2:1.0", "1:9.0"),
]
RPM_EDGES = [
    ("1-2-3", "1-10"),  # the release starts after the last hyphen
    ("1.0", "1.0-1"),  # no release
    ("1.0-1", "1.0"),
    ("1.0^1-1", "1.0-1"),
    ("1.0-1", "1.0^1-1"),
    ("1.0^1-1", "1.0.1-1"),
    ("1.0~rc1-1", "1.0-1"),
    ("1.0.1.1-1", "1.0.1.2-1"),
    ("1.a.2-1", "1.a.10-1"),
    ("2:1.0-1", "1:9.0-1"),
    ("1.0^1-1", "1.0A-1"),  # "^" before a further segment, even one ("A") below "^" in ASCII
    ("2.0", "1.0-5"),  # no release on one side: its whole text is the version
    ("1.0", "1.0-A"),  # no release sorts before a release ("A") below any letter of a filler
]


def test_edge_versions_agree_with_dpkg_and_rpm() -> None:
    """Edge pairs, each way round, against the real tools (``make deps`` installs both: this
    fails without them): dpkg --compare-versions, and rpm's own [epoch:]version-release parse
    (``rpm.ver``). Found by mutation testing: an epoch read up to the last colon, a revision or
    release split at the first hyphen, a bare number taken as an epoch, ``^`` compared only when
    on both sides survived the random pairs above; so did ``^`` left to the letter comparison
    (``1.0^1`` above ``1.0A``), a version without a release split as all release (``2.0`` below
    ``1.0-5``) and a missing release filled with letters (``1.0`` above ``1.0-A``), each seen
    failing by its mutant."""
    for a, b in DEBIAN_EDGES + [(b, a) for a, b in DEBIAN_EDGES]:
        lt = subprocess.run(["dpkg", "--compare-versions", a, "lt", b], check=False).returncode == 0
        eq = subprocess.run(["dpkg", "--compare-versions", a, "eq", b], check=False).returncode == 0
        assert compare_debian(a, b) == (-1 if lt else 0 if eq else 1), (a, b)
    pairs = RPM_EDGES + [(b, a) for a, b in RPM_EDGES]
    lua = "".join(
        f'local a, b = rpm.ver("{a}"), rpm.ver("{b}"); print(((a < b) and -1 or (a == b) and 0 or 1) .. ",") '
        for a, b in pairs
    )
    out = subprocess.run(["rpm", "--eval", f"%{{lua: {lua}}}"], capture_output=True, text=True, check=True).stdout
    expected = [int(x) for x in out.replace("\n", "").split(",") if x]
    assert len(expected) == len(pairs)
    for (a, b), want in zip(pairs, expected, strict=True):
        assert compare_rpm(a, b) == want, (a, b, want)
