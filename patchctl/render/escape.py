"""Text from hosts and files made safe for a terminal: one rule for error lines, tables and plain
output."""

from __future__ import annotations

import unicodedata

# Control characters (C0, DEL, C1: ESC starts an ANSI sequence, U+009B is a one-character CSI) and
# the line and paragraph separators, which a host name, an update title or a file name may carry.
_ESCAPED_CATEGORIES = ("Cc", "Zl", "Zp")


def printable(text: str) -> str:
    """``text`` with every control and line-separating character shown escaped (``\\x1b``,
    ``\\n``, ``\\u2028``), so nothing in it reaches a terminal raw; other characters unchanged."""
    if text.isprintable():
        return text
    return "".join(
        ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch) in _ESCAPED_CATEGORIES else ch
        for ch in text
    )
