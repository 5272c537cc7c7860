"""The pinned collections' own Python code (``.collections/``, collections/requirements.yml),
imported through ansible-core's collection loader as Ansible itself imports a plugin."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

COLLECTIONS = Path(__file__).resolve().parents[2] / ".collections"


def import_plugin(name: str) -> ModuleType:
    """``name`` (``ansible_collections.NS.COLL.plugins....``) from the pinned collections, with
    ansible-core's collection finder installed for ``.collections`` when none is yet."""
    from ansible.utils.collection_loader import AnsibleCollectionConfig
    from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder

    if AnsibleCollectionConfig.collection_finder is None:
        _AnsibleCollectionFinder(paths=[str(COLLECTIONS)])._install()
    return importlib.import_module(name)


def win_updates_action() -> ModuleType:
    """ansible.windows' ``win_updates`` action plugin module (plugins/action/win_updates.py)."""
    return import_plugin("ansible_collections.ansible.windows.plugins.action.win_updates")
