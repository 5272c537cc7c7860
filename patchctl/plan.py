"""The ``patchctl plan`` flow: when an update (or a class of updates) reaches each wave under
the policy, and whether that is inside the SLA (:mod:`patchctl.rules.plan` does the dating)."""

from __future__ import annotations

from datetime import datetime

from patchctl.ansible.inventory import load_inventory
from patchctl.decisions import facts_of, resolve
from patchctl.errors import ConfigError, PatchctlError
from patchctl.rules.model import CLASSIFICATIONS
from patchctl.rules.plan import Plan, plan
from patchctl.rules.policy import Policy, UpdateFacts
from patchctl.rules.waves import assign_hosts
from patchctl.store import Store
from patchctl.store.rollouts import RolloutStore


def update_plan(
    db_url: str,
    inventory_path: str,
    policy: Policy,
    now: datetime,
    ref: str | None = None,
    classification: str | None = None,
    source: str = "apt",
) -> Plan:
    """The plan of the catalog's update ``ref``, else of a ``classification`` update first seen now."""
    if (ref is None) == (classification is None):
        raise ConfigError("plan: give an UPDATE or --class, one of them")
    inventory = load_inventory(inventory_path)
    matched = []
    for wave in policy.waves:
        try:
            matched.append(inventory.match(wave.hosts))
        except PatchctlError:
            matched.append([])  # a wave whose pattern matches no host of this inventory
    hosts = assign_hosts(policy.waves, matched)
    windows = {
        w.name: [inventory.var(h, "patch_window") for h in hs] for w, hs in zip(policy.waves, hosts, strict=True)
    }
    if ref is not None:
        with Store.open_existing(db_url) as store:
            entry = resolve(RolloutStore(store).catalog(), ref)
        return plan(policy, facts_of(entry), now, windows)
    assert classification is not None
    if classification not in CLASSIFICATIONS:
        raise ConfigError(f"--class: unknown classification {classification!r} (known: {', '.join(CLASSIFICATIONS)})")
    facts = UpdateFacts(f"({classification})", source, f"({classification})", classification, now)
    return plan(policy, facts, now, windows, subject=f"{classification} updates", plural=True)
