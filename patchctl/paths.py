"""Where patchctl finds its Ansible content and keeps its state.

From a checkout the content lives at the repository root (``playbooks/``, ``roles/``,
``plugins/``); an installed package carries a copy under ``patchctl/_content/``.
"""

from __future__ import annotations

import os
from pathlib import Path

_PKG_DIR = Path(__file__).resolve().parent


def content_root() -> Path:
    """The directory holding ``playbooks/``, ``roles/`` and ``plugins/``."""
    checkout = _PKG_DIR.parent
    if (checkout / "playbooks").is_dir() and (checkout / "roles").is_dir():
        return checkout
    return _PKG_DIR / "_content"


def playbook(name: str) -> Path:
    return content_root() / "playbooks" / name


def roles_dir() -> Path:
    return content_root() / "roles"


def modules_dir() -> Path:
    return content_root() / "plugins" / "modules"


def module_utils_dir() -> Path:
    return content_root() / "plugins" / "module_utils"


def home() -> Path:
    """patchctl's state directory: ``$PATCHCTL_HOME``, else ``$XDG_DATA_HOME/patchctl``."""
    env = os.environ.get("PATCHCTL_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "patchctl"


def collections_dir() -> Path:
    """The pinned collections (installed by ``make`` / ``patchctl-collections``)."""
    env = os.environ.get("PATCHCTL_COLLECTIONS")
    if env:
        return Path(env).expanduser()
    checkout = content_root() / ".collections"
    if checkout.is_dir():
        return checkout
    return home() / "collections"


def default_db_url() -> str:
    return f"sqlite:///{home() / 'patchctl.db'}"


def lab_dir() -> Path:
    env = os.environ.get("PATCHCTL_LAB_DIR")
    if env:
        return Path(env).expanduser()
    return home() / "lab"


def cache_dir() -> Path:
    env = os.environ.get("PATCHCTL_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "patchctl"
