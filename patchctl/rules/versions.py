"""Package version ordering, for the sources whose versions patchctl can compare.

* ``apt``: Debian versions, ``[epoch:]upstream[-revision]``, compared as Debian Policy 5.6.12
  describes: epochs as numbers, then upstream and revision each as alternating non-digit and digit
  parts, where in the non-digit parts letters sort before non-letters and ``~`` before everything,
  even the end of the part.
* ``dnf`` and ``zypper``: RPM versions, ``[epoch:]version-release`` as dnf and zypper print them:
  epochs as numbers, then version and release each split into alphanumeric segments (separators
  only separate), digits compared as numbers and above letters, ``~`` sorting before everything
  and ``^`` after the end of a version but before any further segment.

Other sources (Windows updates, Chocolatey packages) have no ordering here: :func:`older` says
None, "not known".
"""

from __future__ import annotations

import re

_DEBIAN_PART = re.compile(r"(\D*)(\d*)")
_RPM_SEGMENT = re.compile(r"~|\^|[0-9]+|[A-Za-z]+")
DEBIAN_SOURCES = frozenset({"apt"})
RPM_SOURCES = frozenset({"dnf", "zypper"})


def _split_epoch(version: str) -> tuple[int, str]:
    head, sep, rest = version.partition(":")
    if sep and head.isdigit():
        return int(head), rest
    return 0, version


def _debian_char_order(c: str) -> int:
    if c == "~":
        return -1
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _debian_nondigit(a: str, b: str) -> int:
    # The end of a string sorts after "~" and before anything else: pad with a value between.
    for i in range(max(len(a), len(b))):
        x = _debian_char_order(a[i]) if i < len(a) else 0
        y = _debian_char_order(b[i]) if i < len(b) else 0
        if x != y:
            return -1 if x < y else 1
    return 0


def _debian_part(a: str, b: str) -> int:
    """Compare two upstream versions (or two revisions)."""
    pa = [m for m in _DEBIAN_PART.findall(a) if m != ("", "")]
    pb = [m for m in _DEBIAN_PART.findall(b) if m != ("", "")]
    for i in range(max(len(pa), len(pb))):
        text_a, num_a = pa[i] if i < len(pa) else ("", "")
        text_b, num_b = pb[i] if i < len(pb) else ("", "")
        order = _debian_nondigit(text_a, text_b)
        if order:
            return order
        na, nb = int(num_a or 0), int(num_b or 0)
        if na != nb:
            return -1 if na < nb else 1
    return 0


def compare_debian(a: str, b: str) -> int:
    """-1, 0 or 1 as Debian version ``a`` sorts before, equal to or after ``b``."""
    epoch_a, rest_a = _split_epoch(a)
    epoch_b, rest_b = _split_epoch(b)
    if epoch_a != epoch_b:
        return -1 if epoch_a < epoch_b else 1
    up_a, sep_a, rev_a = rest_a.rpartition("-")
    if not sep_a:
        up_a, rev_a = rest_a, ""
    up_b, sep_b, rev_b = rest_b.rpartition("-")
    if not sep_b:
        up_b, rev_b = rest_b, ""
    return _debian_part(up_a, up_b) or _debian_part(rev_a, rev_b)


def _rpm_segments(a: str, b: str) -> int:
    """Compare two RPM version (or release) strings."""
    sa, sb = _RPM_SEGMENT.findall(a), _RPM_SEGMENT.findall(b)
    i = 0
    while True:
        x = sa[i] if i < len(sa) else None
        y = sb[i] if i < len(sb) else None
        if x is None and y is None:
            return 0
        # "~" sorts before anything, the end included; "^" after the end, before anything else.
        if x == "~" or y == "~":
            if x != y:
                return -1 if x == "~" else 1
        elif x == "^" or y == "^":
            if x != y:
                if x is None:
                    return -1
                if y is None:
                    return 1
                return -1 if x == "^" else 1
        elif x is None or y is None:
            return -1 if x is None else 1
        elif x.isdigit() != y.isdigit():
            return 1 if x.isdigit() else -1  # a number is newer than letters
        elif x.isdigit():
            nx, ny = int(x), int(y)
            if nx != ny:
                return -1 if nx < ny else 1
        elif x != y:
            return -1 if x < y else 1
        i += 1


def compare_rpm(a: str, b: str) -> int:
    """-1, 0 or 1 as RPM ``[epoch:]version-release`` ``a`` sorts before, equal to or after ``b``."""
    epoch_a, rest_a = _split_epoch(a)
    epoch_b, rest_b = _split_epoch(b)
    if epoch_a != epoch_b:
        return -1 if epoch_a < epoch_b else 1
    ver_a, _, rel_a = rest_a.rpartition("-") if "-" in rest_a else (rest_a, "", "")
    ver_b, _, rel_b = rest_b.rpartition("-") if "-" in rest_b else (rest_b, "", "")
    return _rpm_segments(ver_a, ver_b) or _rpm_segments(rel_a, rel_b)


def older(source: str, installed: str, wanted: str) -> bool | None:
    """Whether ``installed`` is older than ``wanted`` for packages of ``source``; None when
    patchctl cannot order that source's versions."""
    if source in DEBIAN_SOURCES:
        return compare_debian(installed, wanted) < 0
    if source in RPM_SOURCES:
        return compare_rpm(installed, wanted) < 0
    return None
