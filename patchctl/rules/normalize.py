"""Turn a Linux scan module's result (`patch_scan_linux`) into the normalized model.

Pure functions: no I/O, no Ansible, no SQL. The input is the JSON the module returned for one
host (the whole result, or just its ``patchctl_scan`` dict); anything that does not have the
documented shape raises :class:`ScanResultError` with a one-line message naming the field, so a
host that answers garbage fails that host and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from patchctl.errors import EXIT_HOST_FAILURES, PatchctlError
from patchctl.rules.model import CLASSIFICATIONS, HOST_OK, HostScan, Update

SCAN_SCHEMA = 1
SCAN_KEY = "patchctl_scan"
PKG_MGRS = ("apt", "dnf", "zypper")

_REPR_MAX = 60


class ScanResultError(PatchctlError):
    """A host's scan result does not have the shape of the scan module's contract (exit 1)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_HOST_FAILURES)


@dataclass(frozen=True)
class LinuxScan:
    """What one Linux scan result says, validated and normalized."""

    pkg_mgr: str
    os_family: str | None
    distribution: str | None
    os_version: str | None
    codename: str | None
    refreshed: bool
    reboot_required: bool
    reboot_required_pkgs: tuple[str, ...] = ()
    updates: list[Update] = field(default_factory=list)
    installed: dict[str, str] = field(default_factory=dict)
    # updates a package hold keeps back (never missing, never deployed), and the holds
    held: list[Update] = field(default_factory=list)
    holds: tuple[tuple[str, str], ...] = ()


class _Checker:
    """Type checks that name the offending field in their error."""

    def __init__(self, host: str | None) -> None:
        self.prefix = f"scan result from {host}" if host else "scan result"

    def fail(self, path: str, problem: str) -> ScanResultError:
        return ScanResultError(f"{self.prefix}: field '{path}' {problem}")

    def mapping(self, value: object, path: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(path, f"must be an object, got {_kind(value)}")
        return value

    def text(self, value: object, path: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(path, f"must be a non-empty string, got {_describe(value)}")
        return value

    def optional_text(self, value: object, path: str) -> str | None:
        return None if value is None else self.text(value, path)

    def flag(self, value: object, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, f"must be true or false, got {_describe(value)}")
        return value

    def texts(self, value: object, path: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.fail(path, f"must be a list, got {_kind(value)}")
        return tuple(self.text(item, f"{path}[{i}]") for i, item in enumerate(value))

    def choice(self, value: object, path: str, choices: tuple[str, ...]) -> str:
        if value not in choices:
            raise self.fail(path, f"must be one of {', '.join(choices)}, got {_describe(value)}")
        assert isinstance(value, str)
        return value

    def required(self, data: Mapping[str, Any], key: str, path: str) -> object:
        if key not in data:
            raise self.fail(path, "is missing")
        return data[key]


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "list", str: "string", bool: "boolean"}.get(type(value), type(value).__name__)


def _describe(value: object) -> str:
    if isinstance(value, str | int | float) or value is None:
        text = repr(value) if value is not None else "null"
        return text if len(text) <= _REPR_MAX else text[: _REPR_MAX - 3] + "..."
    return _kind(value)


def scan_payload(result: object, *, host: str | None = None) -> Mapping[str, Any]:
    """The ``patchctl_scan`` dict of a module result (or the dict itself, if given that).

    ``result`` may also be the result's JSON text.
    """
    check = _Checker(host)
    if isinstance(result, str | bytes):
        try:
            result = json.loads(result)
        except ValueError as exc:
            raise ScanResultError(f"{check.prefix}: not JSON ({exc})") from None
    data = check.mapping(result, SCAN_KEY)
    if SCAN_KEY not in data and "schema" in data:
        return data
    if data.get("failed") is True:
        msg = str(data.get("msg") or "no message").replace("\n", " ")
        raise ScanResultError(f"{check.prefix}: the scan failed: {msg}")
    return check.mapping(check.required(data, SCAN_KEY, SCAN_KEY), SCAN_KEY)


def normalize_update(item: object, pkg_mgr: str, path: str, *, host: str | None = None) -> Update:
    """One entry of ``updates`` as an :class:`Update` of source ``pkg_mgr``."""
    check = _Checker(host)
    data = check.mapping(item, path)

    def get(key: str) -> object:
        return check.required(data, key, f"{path}.{key}")

    return Update(
        source=pkg_mgr,
        name=check.text(get("name"), f"{path}.name"),
        version=check.text(get("version"), f"{path}.version"),
        installed_version=check.optional_text(get("installed_version"), f"{path}.installed_version"),
        arch=check.optional_text(get("arch"), f"{path}.arch"),
        origin=check.optional_text(get("origin"), f"{path}.origin"),
        classification=check.choice(get("classification"), f"{path}.classification", CLASSIFICATIONS),
        major=check.flag(get("major"), f"{path}.major"),
        severity=check.optional_text(data.get("severity"), f"{path}.severity"),
        cves=check.texts(data.get("cves", []), f"{path}.cves"),
        advisory_ids=check.texts(data.get("advisory_ids", []), f"{path}.advisory_ids"),
        held=check.optional_text(data.get("held"), f"{path}.held"),
        source_package=check.optional_text(data.get("source_package"), f"{path}.source_package"),
        source_version=check.optional_text(data.get("source_version"), f"{path}.source_version"),
    )


def normalize_scan(result: object, *, host: str | None = None) -> LinuxScan:
    """Validate a module result and turn it into a :class:`LinuxScan`.

    Raises :class:`ScanResultError` naming the first field that is missing or malformed.
    """
    check = _Checker(host)
    data = scan_payload(result, host=host)

    def get(key: str) -> object:
        return check.required(data, key, key)

    schema = get("schema")
    if schema != SCAN_SCHEMA or isinstance(schema, bool):
        raise check.fail("schema", f"must be {SCAN_SCHEMA}, got {_describe(schema)}")
    pkg_mgr = check.choice(get("pkg_mgr"), "pkg_mgr", PKG_MGRS)

    os_info = check.mapping(get("os"), "os")
    os_fields = {
        key: check.optional_text(os_info.get(key), f"os.{key}")
        for key in ("family", "distribution", "version", "codename")
    }

    raw_updates = get("updates")
    if not isinstance(raw_updates, list):
        raise check.fail("updates", f"must be a list, got {_kind(raw_updates)}")
    updates: list[Update] = []
    seen: set[str] = set()
    for i, item in enumerate(raw_updates):
        update = normalize_update(item, pkg_mgr, f"updates[{i}]", host=host)
        if update.uid in seen:
            raise check.fail(f"updates[{i}].name", f"repeats update {update.uid}")
        seen.add(update.uid)
        updates.append(update)

    raw_installed = check.mapping(data.get("installed", {}), "installed")
    installed = {
        check.text(name, "installed"): check.text(version, f"installed.{name}")
        for name, version in raw_installed.items()
    }

    raw_holds = data.get("holds", [])
    if not isinstance(raw_holds, list):
        raise check.fail("holds", f"must be a list, got {_kind(raw_holds)}")
    holds = []
    for i, item in enumerate(raw_holds):
        hold = check.mapping(item, f"holds[{i}]")
        holds.append((check.text(hold.get("name"), f"holds[{i}].name"), check.text(hold.get("by"), f"holds[{i}].by")))

    return LinuxScan(
        held=[u for u in updates if u.held],
        holds=tuple(holds),
        pkg_mgr=pkg_mgr,
        os_family=os_fields["family"],
        distribution=os_fields["distribution"],
        os_version=os_fields["version"],
        codename=os_fields["codename"],
        refreshed=check.flag(get("refreshed"), "refreshed"),
        reboot_required=check.flag(get("reboot_required"), "reboot_required"),
        reboot_required_pkgs=check.texts(data.get("reboot_required_pkgs", []), "reboot_required_pkgs"),
        updates=[u for u in updates if not u.held],
        installed=installed,
    )


def normalize_updates(result: object, *, host: str | None = None) -> list[Update]:
    """Just the updates of a module result."""
    return normalize_scan(result, host=host).updates


def host_scan(host: str, scanned_at: datetime, result: object) -> HostScan:
    """A successful :class:`HostScan` of ``host`` from its module result."""
    scan = normalize_scan(result, host=host)
    return HostScan(
        host=host,
        status=HOST_OK,
        scanned_at=scanned_at,
        os_family=scan.os_family,
        distribution=scan.distribution,
        os_version=scan.os_version,
        pkg_mgr=scan.pkg_mgr,
        reboot_required=scan.reboot_required,
        updates=list(scan.updates),
        installed=dict(scan.installed),
        held=list(scan.held),
        holds=scan.holds,
    )
