"""Write docs/index.md from README.md for the documentation site (``make docs``).

The README links pages as ``docs/x.md`` (right on GitHub, from the repository's root); inside the
site the same pages are ``x.md``. Nothing else changes, so the site's home page is the README.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    text = (root / "README.md").read_text(encoding="utf-8")
    text = re.sub(r"\]\(docs/", "](", text)
    (root / "docs" / "index.md").write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
