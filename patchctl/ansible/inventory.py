"""The inventory as patchctl sees it: hosts, their groups and variables, and host patterns.

Built from ``ansible-inventory --list`` JSON (the runner produces it); pattern matching follows
Ansible's host pattern rules for the forms operators use: names, groups, ``*`` wildcards,
``~regex``, ``,`` or ``:`` unions, ``&`` intersections and ``!`` exclusions.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any

from patchctl.errors import ConfigError


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
