"""Build hook: ship the Ansible content inside the package as ``patchctl/_content/``.

From a checkout patchctl finds ``playbooks/``, ``roles/`` and ``plugins/`` at the repository root
(see ``patchctl/paths.py``). An installed package has no checkout, so ``build_py`` copies that
content into ``<build_lib>/patchctl/_content/``. All metadata lives in ``setup.cfg``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent

# What the installed package needs at run time, relative to the repository root.
CONTENT = ("playbooks", "roles", "plugins", "policies", "catalog", "collections/requirements.yml", "ansible.cfg")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "*.retry", ".pytest_cache")


class BuildPyWithContent(build_py):
    """``build_py`` that also copies the Ansible content into the package."""

    def run(self) -> None:
        super().run()
        dest_root = Path(self.build_lib) / "patchctl" / "_content"
        if dest_root.exists():
            shutil.rmtree(dest_root)
        dest_root.mkdir(parents=True)
        for rel in CONTENT:
            src = ROOT / rel
            dest = dest_root / rel
            if src.is_dir():
                shutil.copytree(src, dest, ignore=IGNORE)
            elif src.is_file():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest)
            elif rel in ("playbooks", "roles"):
                # paths.content_root() recognises a content tree by these two directories.
                dest.mkdir(parents=True)
            else:
                self.warn(f"patchctl content {rel} not found; not shipped")

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:  # type: ignore[override]  # setuptools types it loosely
        outputs = list(super().get_outputs(include_bytecode))
        dest_root = Path(self.build_lib) / "patchctl" / "_content"
        if dest_root.is_dir():
            outputs.extend(str(p) for p in sorted(dest_root.rglob("*")) if p.is_file())
        return outputs


setup(cmdclass={"build_py": BuildPyWithContent})
