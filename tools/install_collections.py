#!/usr/bin/env python3
"""Install the pinned Ansible collections into a collections path, without Galaxy.

    tools/install_collections.py [--target .collections] [--cache-dir DIR] [--wheel FILE]

Standard library only, so it runs before patchctl's dependencies are installed. The work is done
by ``patchctl/ansible/collections_install.py`` (also stdlib only), which the installed package offers as
``patchctl-collections``; this script runs it from the checkout, with the checkout's defaults:
``collections/requirements.yml`` and ``.collections``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from patchctl.ansible.collections_install import main  # noqa: E402  (needs the checkout on sys.path first)

if __name__ == "__main__":
    args = sys.argv[1:]
    if not any(a == "--requirements" or a.startswith("--requirements=") for a in args):
        args = ["--requirements", str(ROOT / "collections" / "requirements.yml"), *args]
    if not any(a == "--target" or a.startswith("--target=") for a in args):
        args = ["--target", str(ROOT / ".collections"), *args]
    sys.exit(main(args))
