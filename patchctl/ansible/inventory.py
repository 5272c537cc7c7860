"""The inventory as patchctl sees it: hosts, their groups and variables, and host patterns.

:func:`load_inventory` is the one way patchctl reads an inventory: :func:`list_inventory` runs
``ansible-inventory --list`` (through ansible-runner, as every Ansible command) and
:meth:`Inventory.from_ansible_json` builds the model from its JSON. Pattern matching follows
Ansible's host pattern rules for the forms operators use: names, groups, ``*`` wildcards,
``~regex``, ``,`` or ``:`` unions, ``&`` intersections and ``!`` exclusions.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import ansible_runner

from patchctl.ansible.runner import (
    ORIGIN_RE,
    ansible_bin_dir,
    ansible_env,
    ansible_error,
    plain_text,
    private_data_dir,
    require_inventory,
)
from patchctl.errors import ConfigError

_PLUGIN_FAIL_RE = re.compile(r"^\[WARNING\]: Failed to parse inventory with '(?P<plugin>[\w.]+)' "
                             r"plugin: (?P<msg>.*)$")  # fmt: skip


def load_inventory(source: str) -> Inventory:
    """The inventory ``source`` (a file or directory) as Ansible reads it; ConfigError with one
    line naming the file and what is wrong when it is missing, malformed or has no hosts."""
    return Inventory.from_ansible_json(source, list_inventory(source))


@dataclass
class Inventory:
    source: str
    hostvars: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def from_ansible_json(cls, source: str, data: dict[str, Any]) -> Inventory:
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: inventory did not parse into a mapping")
        meta = data.get("_meta", {})
        hostvars: dict[str, dict[str, Any]] = dict(meta.get("hostvars", {}) or {})
        direct: dict[str, set[str]] = {}
        children: dict[str, list[str]] = {}
        for name, body in data.items():
            if name == "_meta" or not isinstance(body, dict):
                continue
            direct[name] = set(body.get("hosts", []) or [])
            children[name] = list(body.get("children", []) or [])
            for host in direct[name]:
                hostvars.setdefault(host, {})

        resolved: dict[str, set[str]] = {}

        def resolve(group: str, seen: frozenset[str]) -> set[str]:
            if group in resolved:
                return resolved[group]
            members = set(direct.get(group, set()))
            for child in children.get(group, []):
                if child not in seen:
                    members |= resolve(child, seen | {child})
            resolved[group] = members
            return members

        for group in direct:
            resolve(group, frozenset({group}))
        resolved["all"] = set(hostvars)
        resolved.setdefault("ungrouped", set())
        return cls(source=source, hostvars=hostvars, groups=resolved)

    @property
    def hosts(self) -> list[str]:
        return sorted(self.hostvars)

    def groups_of(self, host: str) -> tuple[str, ...]:
        return tuple(
            sorted(g for g, members in self.groups.items() if host in members and g not in ("all", "ungrouped"))
        )

    def var(self, host: str, name: str, default: Any = None) -> Any:
        return self.hostvars.get(host, {}).get(name, default)

    def _match_term(self, term: str) -> set[str]:
        if term.startswith("~"):
            try:
                rx = re.compile(term[1:])
            except re.error as exc:
                raise ConfigError(f"--limit: bad regular expression {term!r}: {exc}") from exc
            return {h for h in self.hostvars if rx.search(h)} | set().union(
                *(m for g, m in self.groups.items() if rx.search(g))
            )
        if term in self.groups:
            return set(self.groups[term])
        if term in self.hostvars:
            return {term}
        if any(ch in term for ch in "*?["):
            found = {h for h in self.hostvars if fnmatch.fnmatchcase(h, term)}
            for group, members in self.groups.items():
                if fnmatch.fnmatchcase(group, term):
                    found |= members
            return found
        return set()

    def match(self, pattern: str | None) -> list[str]:
        """Hosts matching an Ansible-style host pattern; every unknown term is an error."""
        if pattern is None or pattern.strip() in ("", "all", "*"):
            return self.hosts
        terms = [t.strip() for t in re.split(r"[,:]", pattern) if t.strip()]
        if not terms:
            raise ConfigError(f"--limit: empty host pattern {pattern!r}")
        selected: set[str] = set()
        positives = [t for t in terms if not t.startswith(("!", "&"))]
        if not positives:
            selected = set(self.hostvars)
        for term in positives:
            found = self._match_term(term)
            if not found:
                raise ConfigError(f"--limit: {term!r} matches no host or group in {self.source}")
            selected |= found
        for term in terms:
            if term.startswith("&"):
                found = self._match_term(term[1:])
                if not found:
                    raise ConfigError(f"--limit: {term[1:]!r} matches no host or group in {self.source}")
                selected &= found
        for term in terms:
            if term.startswith("!"):
                selected -= self._match_term(term[1:])
        if not selected:
            raise ConfigError(f"--limit: {pattern!r} selects no host in {self.source}")
        return sorted(selected)


def _inventory_error(inventory: Path, stderr: str, rc: int | None = None) -> str:
    """One line saying what is wrong with ``inventory``, taken from ansible-inventory's stderr
    (and its exit status ``rc`` when the stderr names no cause)."""
    text = plain_text(stderr)
    lines = [ln.strip() for ln in text.splitlines()]
    failures: dict[str, str] = {}
    for ln in lines:
        m = _PLUGIN_FAIL_RE.match(ln)
        if m:
            failures.setdefault(m["plugin"], m["msg"].strip())
    location = ""
    for ln in lines:
        m = ORIGIN_RE.match(ln)
        if m is None:
            continue
        origin = Path(m["file"])
        if origin == inventory or inventory in origin.parents:
            where = f"{origin.name} " if inventory.is_dir() else ""
            location = f"{where}line {m['line']}" + (f", column {m['col']}" if m["col"] else "")
            break
    if inventory.suffix in (".yml", ".yaml", ".json"):
        order = ("yaml", "auto", "ini", "toml", "script", "host_list")
    else:
        order = ("ini", "yaml", "auto", "toml", "script", "host_list")
    reason = next((failures[p] for p in order if p in failures), None)
    if reason is None and failures:
        reason = next(iter(failures.values()))
    if reason is None:
        reason = ansible_error(text)
    if reason is None:
        last = next((ln for ln in reversed(lines) if ln), "")
        status = "" if rc is None else f"exit {rc}" + (f" (killed by signal {-rc})" if rc < 0 else "")
        detail = "; ".join(part for part in (status, last[:300]) if part)
        reason = "ansible-inventory could not read it" + (f" ({detail})" if detail else "")
    reason = reason.splitlines()[0]
    return f"inventory {inventory}: {location + ': ' if location else ''}{reason}"


def inventory_hosts(data: Mapping[str, Any]) -> set[str]:
    """Every host named in ``ansible-inventory --list`` output."""
    hosts: set[str] = set((data.get("_meta") or {}).get("hostvars") or {})
    for name, group in data.items():
        if name != "_meta" and isinstance(group, dict):
            hosts.update(str(h) for h in group.get("hosts") or [])
    return hosts


def list_inventory(inventory: str, *, allow_empty: bool = False) -> dict[str, Any]:
    """``ansible-inventory --list`` of ``inventory``, as a dict.

    Raises ConfigError with one line naming the file and what is wrong when the inventory is
    missing or malformed, or (unless ``allow_empty``) has no hosts.
    """
    inv_path = require_inventory(inventory)
    exe = ansible_bin_dir() / "ansible-inventory"
    command = str(exe) if exe.exists() else (shutil.which("ansible-inventory") or "")
    if not command:
        raise ConfigError("ansible-inventory not found (is ansible-core installed?)")
    # stdin is /dev/null, not patchctl's own: Ansible refuses to start on a non-blocking stdin
    # ("Ansible requires blocking IO"), and a caller's stdin can be left non-blocking by another
    # process that shares it (an ssh client killed before it restored the flag, a CI runner).
    with private_data_dir() as pdd, open(os.devnull, "rb") as devnull:
        try:
            out, err, rc = ansible_runner.run_command(
                executable_cmd=command,
                cmdline_args=["--list", "-i", str(inv_path)],
                runner_mode="subprocess",
                private_data_dir=str(pdd),
                envvars=ansible_env(),
                quiet=True,
                suppress_env_files=True,
                input_fd=devnull,
            )
        except ansible_runner.exceptions.AnsibleRunnerException as exc:
            raise ConfigError(f"inventory {inv_path}: cannot run ansible-inventory: {exc}") from exc
    if rc != 0:
        raise ConfigError(_inventory_error(inv_path, str(err or out), int(rc) if rc is not None else None))
    try:
        data = json.loads(str(out))
    except ValueError as exc:
        raise ConfigError(f"inventory {inv_path}: ansible-inventory gave no JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"inventory {inv_path}: ansible-inventory gave no mapping")
    if not allow_empty and not inventory_hosts(data):
        raise ConfigError(f"inventory {inv_path}: no hosts in it")
    return cast("dict[str, Any]", data)
