"""Windows results into the normalized model: Windows Update and Chocolatey applications.

Pure functions: no I/O, no Ansible, no SQL. The inputs are module results exactly as Ansible
returns them for one host:

- ``ansible.windows.win_updates`` (``state: searched`` for a scan, ``installed`` for a deploy):
  ``updates`` and ``filtered_updates`` keyed by update id, each with ``title``, ``kb`` (numbers
  without the ``KB`` prefix), ``categories``, ``downloaded``, ``installed`` and on failure
  ``failure_hresult_code``/``failure_msg``; ``reboot_required``; ``failed``/``msg``;
- ``patch_win_update_info`` (this project's module, optional): per update id the revision,
  ``MsrcSeverity``, CVE ids, bulletin ids, reboot behaviour and ``LastDeploymentChangeTime``;
  the OS; pending-reboot flags; whether Chocolatey is present; recently installed updates;
- ``chocolatey.chocolatey.win_chocolatey_facts``: ``ansible_facts.ansible_chocolatey`` with
  ``packages`` (``package``, ``version``) and ``outdated`` (``package``, ``current_version``,
  ``available_version``, ``pinned``);
- ``chocolatey.chocolatey.win_chocolatey`` loop items of a deploy (``rc``, ``failed``, ``msg``);
- the scan role's ``choco search ID --exact --limit-output`` loop (``ansible.windows.win_command``
  results, ``item`` the catalog entry): what the Chocolatey source offers for an application that
  patch_win_update_info's ``applications`` (the Uninstall registry keys) shows.

A result without the documented shape raises :class:`ScanResultError` naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from patchctl.rules.apps import Catalog
from patchctl.rules.model import HOST_FAILED, HOST_OK, ApplyOutcome, Update
from patchctl.rules.normalize import ScanResultError, _Checker, _kind

WIN_UPDATES_ACTIONS = frozenset({"ansible.windows.win_updates", "win_updates"})
CHOCO_FACTS_ACTIONS = frozenset({"chocolatey.chocolatey.win_chocolatey_facts", "win_chocolatey_facts"})
CHOCO_ACTIONS = frozenset({"chocolatey.chocolatey.win_chocolatey", "win_chocolatey"})
INFO_ACTIONS = frozenset({"patch_win_update_info"})
# the scan role's `choco search` loop (its task event, with every item's result in `results`)
CHOCO_SEARCH_ACTIONS = frozenset({"ansible.windows.win_command", "win_command"})
INFO_KEY = "patchctl_win_info"

# Windows Update category names (as WUA returns them) -> classification, strongest first: an
# update carries its classification category and product categories ("Windows Server 2019").
CATEGORY_CLASSIFICATION: tuple[tuple[str, str], ...] = (
    ("security updates", "security"),
    ("critical updates", "critical"),
    ("upgrades", "feature"),
    ("feature packs", "feature"),
    ("service packs", "rollup"),
    ("update rollups", "rollup"),
    ("definition updates", "definition"),
    ("drivers", "driver"),
    ("updates", "bugfix"),
    ("tools", "other"),
    ("guidance", "other"),
    ("applications", "other"),
    ("connectors", "other"),
    ("developer kits", "other"),
)
_CLASS_RANK = {cls: rank for rank, (_cat, cls) in enumerate(CATEGORY_CLASSIFICATION)}
_CLASSIFICATION_CATEGORIES = frozenset(cat for cat, _cls in CATEGORY_CLASSIFICATION)

# Titles of Windows feature updates (a new Windows release), whatever their category says.
FEATURE_UPDATE_TITLE = re.compile(
    r"^(feature update to windows\b|upgrade to windows\b|windows 1[01](,| version) (version )?\w+$)",
    re.IGNORECASE,
)
FEATURE_CATEGORY = "upgrades"

# WUA reboot behaviour words that mean the update never asks for a reboot.
NEVER_REBOOTS = frozenset({"neverreboots", "0"})

UNSUPPORTED_VERSION = "unsupported"
# win_chocolatey exit codes that are success (chocolatey.chocolatey 1.5.3, SuccessExitCodes in
# plugins/module_utils/Packages.psm1), and those of them that leave a reboot required. Kept in
# step with roles/patch_apply_windows/vars/main.yml.
CHOCO_SUCCESS_EXIT_CODES = frozenset({0, 1605, 1614, 1641, 3010})
CHOCO_REBOOT_EXIT_CODES = frozenset({1641, 3010})
PKG_MGR_WINDOWS = "windows_update"
PKG_MGR_WINDOWS_CHOCO = "windows_update+chocolatey"


@dataclass(frozen=True)
class FilteredUpdate:
    """An update Windows Update found but win_updates filtered (hidden, not accepted, ...)."""

    update_id: str
    title: str
    kbs: tuple[str, ...]
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class UnsupportedApp:
    """A catalogued application that is end of life but installed on the host."""

    app_id: str
    name: str
    package: str
    installed_version: str
    reason: str


@dataclass(frozen=True)
class RegistryApp:
    """One Uninstall registry key of a catalogued application (patch_win_update_info's
    ``applications``): where it is (``HKLM`` 64- or 32-bit view, ``HKCU``) and what it says."""

    app_id: str
    display_name: str
    version: str | None
    install_location: str | None
    hive: str
    view: str
    key: str

    @property
    def where(self) -> str:
        return "HKCU (per user)" if self.hive == "HKCU" else f"HKLM {self.view}-bit"

    def describe(self) -> str:
        """Its version and where it is: ``3.0.18 (HKLM 64-bit, C:\\Program Files\\VideoLAN\\VLC)``."""
        place = f"{self.where}, {self.install_location}" if self.install_location else self.where
        return f"{self.version or 'unknown'} ({place})"


@dataclass(frozen=True)
class UnmanagedApp:
    """A catalogued application installed outside Chocolatey: its copies (oldest first) and
    the version the host's Chocolatey source offers (None, with ``note``, when it is not known)."""

    app_id: str
    name: str
    package: str
    copies: tuple[RegistryApp, ...]
    offered: str | None
    outdated: bool | None
    note: str | None = None

    @property
    def installed_version(self) -> str | None:
        return self.copies[0].version if self.copies else None


@dataclass(frozen=True)
class WindowsScan:
    """What one Windows scan found: Windows updates and catalogued application updates."""

    os_family: str
    distribution: str | None
    os_version: str | None
    pkg_mgr: str
    reboot_required: bool
    updates: list[Update] = field(default_factory=list)
    installed: dict[str, str] = field(default_factory=dict)
    filtered: tuple[FilteredUpdate, ...] = ()
    unsupported: tuple[UnsupportedApp, ...] = ()
    pinned: tuple[str, ...] = ()  # catalogued packages with an update that the host pins
    unmanaged: tuple[UnmanagedApp, ...] = ()  # catalogued apps installed outside Chocolatey
    chocolatey_scanned: bool = False
    details_scanned: bool = False


# --- rules ----------------------------------------------------------------------------------


def classify(categories: Iterable[str]) -> str:
    """The classification of a Windows update from its WUA categories (``other`` if none fits)."""
    found = [cls for cat in categories for name, cls in CATEGORY_CLASSIFICATION if cat.strip().lower() == name]
    if not found:
        return "other"
    return min(found, key=lambda cls: _CLASS_RANK[cls])


def is_feature_update(categories: Iterable[str], title: str) -> bool:
    """A feature update (a new Windows release): category ``Upgrades`` or a feature-update title."""
    if any(cat.strip().lower() == FEATURE_CATEGORY for cat in categories):
        return True
    return bool(FEATURE_UPDATE_TITLE.search(title.strip()))


def product_of(categories: Iterable[str]) -> str | None:
    """The first category that is a product ("Windows Server 2019"), not a classification."""
    for cat in categories:
        if cat.strip().lower() not in _CLASSIFICATION_CATEGORIES:
            return cat.strip()
    return None


def major_version(version: str) -> int | None:
    """The leading number of a version string (``"23.01"`` -> 23), None when there is none."""
    match = re.match(r"\s*v?(\d+)", version)
    return int(match.group(1)) if match else None


def is_major_app_update(current: str, available: str, scheme: str = "semantic") -> bool:
    """An application update is major when its leading version number grows, except for the
    applications whose every release does (``rolling``, ``year``: catalog/apps.yml)."""
    if scheme != "semantic":
        return False
    cur, new = major_version(current), major_version(available)
    return cur is not None and new is not None and new > cur


def app_version_key(version: str, scheme: str = "semantic") -> tuple[int, ...] | None:
    """The numbers of an application version, comparable under ``scheme`` (catalog/apps.yml):
    ``"23.01 (x64)"`` -> (23, 1); ``year`` makes a two-digit leading number a year (24 -> 2024);
    ``java`` reads Oracle's registry 8.0.3910.13 as 8.0.391. Trailing zeros dropped, so 23.1 and
    23.1.0 are equal. None when the text starts with no number."""
    numbers = [int(n) for n in re.findall(r"\d+", version.split(" ", 1)[0])] if version.strip() else []
    if not numbers or major_version(version) is None:
        return None
    if scheme == "year" and numbers[0] < 100:
        numbers[0] += 2000
    if scheme == "java" and len(numbers) >= 4 and numbers[2] >= 10:
        numbers = [numbers[0], numbers[1], numbers[2] // 10]  # the registry's update times ten, build
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers)


def is_older(installed: str, offered: str, scheme: str = "semantic") -> bool | None:
    """Whether ``installed`` is older than ``offered`` (None when either is not a version)."""
    a, b = app_version_key(installed, scheme), app_version_key(offered, scheme)
    if a is None or b is None:
        return None
    return a < b


def kb_names(kbs: Iterable[object]) -> tuple[str, ...]:
    """KB numbers as ``KB<number>``; win_updates returns them without the prefix (and may
    return an empty string for an update without a KB article)."""
    out: list[str] = []
    for kb in kbs:
        text = str(kb).strip()
        if not text:
            continue
        name = text if text.upper().startswith("KB") else f"KB{text}"
        if name not in out:
            out.append(name)
    return tuple(out)


# --- win_updates ----------------------------------------------------------------------------


def _update_map(check: _Checker, data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if value is None:
        return {}
    return check.mapping(value, key)


def _update_entry(check: _Checker, update_id: str, raw: object, path: str) -> tuple[str, tuple[str, ...], list[str]]:
    entry = check.mapping(raw, path)
    title = check.text(check.required(entry, "title", f"{path}.title"), f"{path}.title")
    raw_kb = check.required(entry, "kb", f"{path}.kb")
    if not isinstance(raw_kb, list):
        raise check.fail(f"{path}.kb", f"must be a list, got {_kind(raw_kb)}")
    cats = check.required(entry, "categories", f"{path}.categories")
    if not isinstance(cats, list) or not all(isinstance(c, str) for c in cats):
        raise check.fail(f"{path}.categories", "must be a list of strings")
    if "id" in entry and entry["id"] != update_id:
        raise check.fail(f"{path}.id", f"does not match its key {update_id!r}")
    return title, kb_names(raw_kb), list(cats)


def _details_for(details: Mapping[str, Any] | None, update_id: str) -> Mapping[str, Any]:
    if not details:
        return {}
    found = details.get("updates", {}).get(update_id)
    return found if isinstance(found, Mapping) else {}


def _texts(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(str(v).strip() for v in value if str(v).strip())


def release_date(value: object, path: str, check: _Checker) -> datetime | None:
    """``last_deployment_change_time`` as a UTC datetime (None when WUA gave none).

    The module writes it with .NET's round-trip format (``2021-05-11T00:00:00.0000000Z``: seven
    fraction digits, which :meth:`datetime.fromisoformat` accepts and cuts to microseconds). A
    time without an offset is taken as UTC (the module converts to UTC before writing it).
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise check.fail(path, f"must be an ISO 8601 time, got {_kind(value)}")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise check.fail(path, f"is not an ISO 8601 time: {value.strip()[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def windows_update(
    update_id: str,
    title: str,
    kbs: tuple[str, ...],
    categories: Sequence[str],
    detail: Mapping[str, Any] | None = None,
    *,
    host: str | None = None,
) -> Update:
    """One Windows update in the model. ``detail`` is patch_win_update_info's entry, if any."""
    detail = detail or {}
    released_at = release_date(
        detail.get("last_deployment_change_time"),
        f"{INFO_KEY}.updates.{update_id}.last_deployment_change_time",
        _Checker(host),
    )
    classification = classify(categories)
    revision = detail.get("revision")
    severity = detail.get("msrc_severity")
    behaviour = str(detail.get("reboot_behavior", "")).strip().lower()
    # without WUA details: definition updates never reboot, others usually may
    reboot_hint = behaviour not in NEVER_REBOOTS if behaviour else classification != "definition"
    return Update(
        source="windows",
        name=title,
        version=str(revision) if isinstance(revision, int) and not isinstance(revision, bool) else "unknown",
        classification=classification,
        severity=str(severity) if isinstance(severity, str) and severity.strip() else None,
        cves=_texts(detail.get("cve_ids")),
        advisory_ids=_texts(detail.get("security_bulletin_ids")),
        kbs=kbs,
        title=title,
        origin=product_of(categories),
        major=is_feature_update(categories, title),
        reboot_hint=reboot_hint,
        update_id=update_id,
        released_at=released_at,
    )


def normalize_win_updates(
    result: object,
    *,
    details: Mapping[str, Any] | None = None,
    host: str | None = None,
) -> tuple[list[Update], tuple[FilteredUpdate, ...], bool]:
    """The updates, the filtered updates and the reboot flag of a ``win_updates`` result.

    A failed result (``failed: true``) raises ScanResultError with the module's message.
    """
    check = _Checker(host)
    data = check.mapping(result, "win_updates")
    if data.get("failed") is True:
        msg = " ".join(str(data.get("msg") or "no message").split())
        raise ScanResultError(f"{check.prefix}: win_updates failed: {msg}")
    raw_updates = _update_map(check, data, "updates")
    updates: list[Update] = []
    for update_id, raw in raw_updates.items():
        path = f"updates.{update_id}"
        title, kbs, cats = _update_entry(check, update_id, raw, path)
        updates.append(windows_update(update_id, title, kbs, cats, _details_for(details, update_id), host=host))
    filtered: list[FilteredUpdate] = []
    for update_id, raw in _update_map(check, data, "filtered_updates").items():
        path = f"filtered_updates.{update_id}"
        title, kbs, _cats = _update_entry(check, update_id, raw, path)
        reasons = check.texts(check.mapping(raw, path).get("filtered_reasons", []), f"{path}.filtered_reasons")
        filtered.append(FilteredUpdate(update_id=update_id, title=title, kbs=kbs, reasons=reasons))
    reboot = data.get("reboot_required", False)
    return updates, tuple(filtered), check.flag(reboot, "reboot_required")


# --- patch_win_update_info --------------------------------------------------------------------


def info_payload(result: object, *, host: str | None = None) -> Mapping[str, Any]:
    """The ``patchctl_win_info`` dict of a patch_win_update_info result (or the dict itself)."""
    check = _Checker(host)
    data = check.mapping(result, INFO_KEY)
    if INFO_KEY in data:
        data = check.mapping(data[INFO_KEY], INFO_KEY)
    if data.get("schema") != 1:
        raise check.fail(f"{INFO_KEY}.schema", "must be 1")
    updates = data.get("updates", {})
    check.mapping(updates, f"{INFO_KEY}.updates")
    return data


# --- Chocolatey -----------------------------------------------------------------------------


def normalize_chocolatey(
    result: object,
    catalog: Catalog,
    *,
    host: str | None = None,
) -> tuple[list[Update], dict[str, str], tuple[UnsupportedApp, ...], tuple[str, ...]]:
    """Updates of catalogued applications from a ``win_chocolatey_facts`` result.

    Returns (updates, installed versions of catalogued packages, unsupported applications
    installed, pinned packages that have an update). Packages that are not in the catalog are
    ignored: patchctl never touches them. An installed end-of-life application becomes an update
    of version ``unsupported`` (so the host is not compliant while it has it) and an
    :class:`UnsupportedApp`.
    """
    check = _Checker(host)
    data = check.mapping(result, "win_chocolatey_facts")
    facts = check.mapping(check.required(data, "ansible_facts", "ansible_facts"), "ansible_facts")
    choco = check.mapping(
        check.required(facts, "ansible_chocolatey", "ansible_facts.ansible_chocolatey"),
        "ansible_facts.ansible_chocolatey",
    )
    base = "ansible_facts.ansible_chocolatey"
    packages = choco.get("packages")
    if not isinstance(packages, list):
        raise check.fail(f"{base}.packages", f"must be a list, got {_kind(packages)}")
    outdated = choco.get("outdated")
    if not isinstance(outdated, list):
        raise check.fail(f"{base}.outdated", f"must be a list, got {_kind(outdated)}")

    installed: dict[str, str] = {}
    unsupported: list[UnsupportedApp] = []
    updates: list[Update] = []
    for i, raw in enumerate(packages):
        path = f"{base}.packages[{i}]"
        entry = check.mapping(raw, path)
        name = check.text(check.required(entry, "package", f"{path}.package"), f"{path}.package")
        version = check.text(check.required(entry, "version", f"{path}.version"), f"{path}.version")
        app = catalog.by_package(name)
        if app is None:
            continue
        installed[name] = version
        if not app.supported:
            reason = app.reason or "unsupported"
            unsupported.append(UnsupportedApp(app.id, app.name, name, version, reason))
            updates.append(
                Update(
                    source="chocolatey",
                    name=name,
                    version=UNSUPPORTED_VERSION,
                    installed_version=version,
                    classification=app.classification,
                    title=f"{app.name} {version}: unsupported ({reason})",
                    origin=app.id,
                )
            )

    pinned: list[str] = []
    for i, raw in enumerate(outdated):
        path = f"{base}.outdated[{i}]"
        entry = check.mapping(raw, path)
        name = check.text(check.required(entry, "package", f"{path}.package"), f"{path}.package")
        current = check.text(
            check.required(entry, "current_version", f"{path}.current_version"), f"{path}.current_version"
        )
        available = check.text(
            check.required(entry, "available_version", f"{path}.available_version"), f"{path}.available_version"
        )
        is_pinned = check.flag(entry.get("pinned", False), f"{path}.pinned")
        app = catalog.by_package(name)
        if app is None or not app.supported:
            continue  # not ours to touch; an unsupported one is already reported above
        if is_pinned:
            pinned.append(name)
            continue
        installed.setdefault(name, current)
        updates.append(
            Update(
                source="chocolatey",
                name=name,
                version=available,
                installed_version=current,
                classification=app.classification,
                title=app.name,
                origin=app.id,
                major=is_major_app_update(current, available, app.version_scheme),
            )
        )
    return updates, installed, tuple(unsupported), tuple(pinned)


# --- applications from the registry ----------------------------------------------------------

REGISTRY_HIVES = {("HKLM", "64"), ("HKLM", "32"), ("HKCU", "user")}


def _opt_str(value: object) -> str | None:
    """A registry value as text: strings stripped, numbers (a DWORD DisplayVersion) as text."""
    if isinstance(value, bool) or value is None:
        return None
    text = str(value).strip() if isinstance(value, (str, int)) else ""
    return text or None


def _copy_order(copy: RegistryApp, scheme: str) -> tuple[int, tuple[int, ...]]:
    """Oldest first; a copy whose version is not a version last (it cannot hide an older one)."""
    key = app_version_key(copy.version or "", scheme)
    return (0, key) if key is not None else (1, ())


def registry_apps(info: Mapping[str, Any], catalog: Catalog, *, host: str | None = None) -> list[RegistryApp]:
    """The Uninstall keys of ``info`` (patch_win_update_info's ``applications``) that are
    catalogued applications, matched by the catalog's ``registry`` patterns; the others are
    ignored. A key matched by two applications' patterns is the first application's."""
    check = _Checker(host)
    raw = info.get("applications", [])
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise check.fail(f"{INFO_KEY}.applications", f"must be a list, got {_kind(raw)}")
    found: list[RegistryApp] = []
    for i, item in enumerate(raw):
        path = f"{INFO_KEY}.applications[{i}]"
        entry = check.mapping(item, path)
        name = _opt_str(entry.get("display_name"))
        if name is None:
            continue  # the module skips keys without one; a blank one names nothing
        hive, view = entry.get("hive"), entry.get("view")
        if not isinstance(hive, str) or not isinstance(view, str) or (hive, view) not in REGISTRY_HIVES:
            raise check.fail(f"{path}.hive", f"must be HKLM (view 64 or 32) or HKCU (view user), got {hive!r}/{view!r}")
        app = next((a for a in catalog.apps if a.matches(name)), None)
        if app is None:
            continue
        found.append(
            RegistryApp(
                app_id=app.id,
                display_name=name,
                version=_opt_str(entry.get("display_version")),
                install_location=_opt_str(entry.get("install_location")),
                hive=str(hive),
                view=str(view),
                key=_opt_str(entry.get("key")) or "",
            )
        )
    return found


def offered_versions(result: object, *, host: str | None = None) -> dict[str, str | Exception | None]:
    """What the Chocolatey source offers, from the scan role's ``choco search ID --exact
    --limit-output`` loop (``ansible.windows.win_command`` results, one per application found
    in the registry): package id (lower case) -> version, None when the source has no such
    package, a ScanResultError naming why when the search failed (its rc and stderr). Items the
    role skipped are absent."""
    check = _Checker(host)
    data = check.mapping(result, "choco_search")
    items = data.get("results", [])
    if not isinstance(items, list):
        raise check.fail("choco_search.results", f"must be a list, got {_kind(items)}")
    offered: dict[str, str | Exception | None] = {}
    for i, raw in enumerate(items):
        path = f"choco_search.results[{i}]"
        entry = check.mapping(raw, path)
        if entry.get("skipped"):
            continue
        item = check.mapping(check.required(entry, "item", f"{path}.item"), f"{path}.item")
        packages = item.get("packages")
        if not isinstance(packages, list) or not packages or not isinstance(packages[0], str):
            raise check.fail(f"{path}.item.packages", "must be the catalog entry's list of package ids")
        package = packages[0].lower()
        rc = entry.get("rc")
        if rc != 0:
            why = " ".join(str(entry.get("stderr") or entry.get("msg") or "").split())[:200] or "no message"
            offered[package] = ScanResultError(f"choco search {packages[0]} exited {rc}: {why}")
            continue
        lines = entry.get("stdout_lines")
        if not isinstance(lines, list):
            raise check.fail(f"{path}.stdout_lines", f"must be a list, got {_kind(lines)}")
        offered[package] = None
        for line in lines:
            name, sep, version = str(line).strip().partition("|")
            if sep and name.lower() == package and version.strip():
                offered[package] = version.strip()
    return offered


def normalize_registry(
    found: Sequence[RegistryApp],
    catalog: Catalog,
    *,
    managed: Iterable[str] = (),
    offered: Mapping[str, str | Exception | None] | None = None,
) -> tuple[list[Update], tuple[UnmanagedApp, ...], tuple[UnsupportedApp, ...]]:
    """Updates and findings of the catalogued applications found in the registry.

    ``managed``: the Chocolatey packages installed on the host (an application with one of its
    packages there is Chocolatey's: its updates come from Chocolatey's outdated list);
    ``offered``: :func:`offered_versions` (None: Chocolatey was not asked). An unsupported
    application is reported unsupported however it was installed. Any other application outside
    Chocolatey is :class:`UnmanagedApp`; when its oldest copy is older than what the source
    offers it is also an update (``unmanaged``, uid ending ``:unmanaged``) whose installed
    version is that copy's and whose version is the offered one.
    """
    managed_pkgs = {p.lower() for p in managed}
    by_app: dict[str, list[RegistryApp]] = {}
    for entry in found:
        by_app.setdefault(entry.app_id, []).append(entry)
    updates: list[Update] = []
    unmanaged: list[UnmanagedApp] = []
    unsupported: list[UnsupportedApp] = []
    for app_id, copies in by_app.items():
        app = catalog.get(app_id)
        assert app is not None  # registry_apps matched it in this catalog
        ordered = tuple(sorted(copies, key=lambda c: _copy_order(c, app.version_scheme)))
        oldest = ordered[0].version or "unknown"
        if not app.supported:
            reason = app.reason or "unsupported"
            where = ", ".join(c.where for c in ordered)
            unsupported.append(UnsupportedApp(app.id, app.name, app.choco_package, oldest, reason))
            updates.append(
                Update(
                    source="chocolatey",
                    name=app.choco_package,
                    version=UNSUPPORTED_VERSION,
                    installed_version=oldest,
                    classification=app.classification,
                    title=f"{app.name} {oldest}: unsupported ({reason}); installed in {where}",
                    origin=app.id,
                )
            )
            continue
        if any(p.lower() in managed_pkgs for p in app.packages):
            continue  # Chocolatey's copy: its outdated list says what it lacks
        answer = offered.get(app.choco_package.lower()) if offered is not None else None
        note: str | None = None
        version: str | None = None
        if offered is None:
            note = "Chocolatey was not asked (not on the host, or not scanned)"
        elif app.choco_package.lower() not in offered:
            note = "choco search did not run for it"
        elif isinstance(answer, Exception):
            note = str(answer)
        elif answer is None:
            note = f"the Chocolatey source offers no package {app.choco_package}"
        else:
            version = answer
        outdated = is_older(oldest, version, app.version_scheme) if version is not None else None
        unmanaged.append(UnmanagedApp(app.id, app.name, app.choco_package, ordered, version, outdated, note))
        if version is not None and outdated:
            versions = "; ".join(c.describe() for c in ordered)
            updates.append(
                Update(
                    source="chocolatey",
                    name=app.choco_package,
                    version=version,
                    installed_version=oldest,
                    classification=app.classification,
                    title=f"{app.name}: unmanaged (installed outside Chocolatey: {versions}); "
                    f"the source offers {version}",
                    origin=app.id,
                    major=is_major_app_update(oldest, version, app.version_scheme),
                    unmanaged=True,
                )
            )
    return updates, tuple(unmanaged), tuple(unsupported)


# --- one host ---------------------------------------------------------------------------------


def normalize_windows_scan(
    win_updates: object,
    *,
    catalog: Catalog,
    details: object | None = None,
    chocolatey: object | None = None,
    choco_search: object | None = None,
    host: str | None = None,
) -> WindowsScan:
    """One :class:`WindowsScan` from the results of one host's Windows scan role.

    ``choco_search`` is the role's ``choco search`` loop (None when it did not run: no
    Chocolatey, or no catalogued application in the registry)."""
    info = info_payload(details, host=host) if details is not None else None
    updates, filtered, wu_reboot = normalize_win_updates(win_updates, details=info, host=host)
    installed: dict[str, str] = {}
    unsupported: tuple[UnsupportedApp, ...] = ()
    pinned: tuple[str, ...] = ()
    if info is not None:
        for entry in info.get("installed", []) or []:
            if isinstance(entry, Mapping) and isinstance(entry.get("title"), str):
                installed[str(entry["title"])] = str(entry.get("revision", "unknown"))
    app_installed: dict[str, str] = {}
    if chocolatey is not None:
        app_updates, app_installed, unsupported, pinned = normalize_chocolatey(chocolatey, catalog, host=host)
        updates.extend(app_updates)
        installed.update(app_installed)
    unmanaged: tuple[UnmanagedApp, ...] = ()
    if info is not None:
        found = registry_apps(info, catalog, host=host)
        offered = offered_versions(choco_search, host=host) if choco_search is not None else None
        if offered is None and chocolatey is not None:
            offered = {}  # Chocolatey was scanned, but nothing was searched
        reg_updates, unmanaged, reg_unsupported = normalize_registry(
            found, catalog, managed=app_installed, offered=offered
        )
        known = {u.uid for u in updates}
        updates.extend(u for u in reg_updates if u.uid not in known)  # unsupported both ways: once
        unsupported = unsupported + tuple(u for u in reg_unsupported if u.app_id not in {x.app_id for x in unsupported})
    seen: set[str] = set()
    for update in updates:
        if update.uid in seen:
            raise _Checker(host).fail("updates", f"repeats update {update.uid}")
        seen.add(update.uid)
    os_info: Mapping[str, Any] = {}
    reboot_pending = False
    if info is not None:
        raw_os = info.get("os")
        os_info = raw_os if isinstance(raw_os, Mapping) else {}
        reboot_pending = bool(info.get("reboot_pending", False))
    return WindowsScan(
        os_family="Windows",
        distribution=_opt_text(os_info.get("distribution")),
        os_version=_opt_text(os_info.get("version")),
        pkg_mgr=PKG_MGR_WINDOWS_CHOCO if chocolatey is not None else PKG_MGR_WINDOWS,
        reboot_required=wu_reboot or reboot_pending,
        updates=updates,
        installed=installed,
        filtered=filtered,
        unsupported=unsupported,
        pinned=pinned,
        unmanaged=unmanaged,
        chocolatey_scanned=chocolatey is not None,
        details_scanned=info is not None,
    )


def _opt_text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


# --- deploy -----------------------------------------------------------------------------------


def _entry_uid(entry: Mapping[str, Any]) -> str:
    uid = entry.get("uid")
    if isinstance(uid, str) and uid:
        return uid
    if entry.get("source") == "windows":
        return f"windows:{entry.get('update_id')}"
    return f"{entry.get('source')}:{entry.get('name')}:{entry.get('version')}"


def win_updates_failure(result: Mapping[str, Any]) -> str | None:
    """Why the ``win_updates`` run of ``result`` failed (its ``msg``, one line), None when it did not.

    The role registers the install with ``failed_when: false``, so Ansible's task executor
    replaces the action's ``failed: true`` with ``failed: false`` and adds ``failed_when_result``;
    the action plugin's ``msg`` is kept, and it sets one only when it fails. A result without
    ``failed_when_result`` is taken at its ``failed``.
    """
    msg = " ".join(str(result.get("msg") or "").split())
    if result.get("failed"):
        return msg or "win_updates failed"
    if "failed_when_result" in result and msg:
        return msg
    return None


def apply_outcome(
    host: str,
    approved: Sequence[Mapping[str, Any]],
    win_updates_result: Mapping[str, Any] | None,
    choco_results: Sequence[Mapping[str, Any]] = (),
) -> ApplyOutcome:
    """What a Windows deploy did on ``host``, from its apply results.

    ``approved`` are the host's ``patchctl_deploy`` entries (docs/contracts.md);
    ``win_updates_result`` the ``state: installed`` result (None when it did not run);
    ``choco_results`` the ``win_chocolatey`` loop items (each with its ``item``: the entry).
    Every approved entry ends in ``installed`` or ``failed`` (with the reason); an update that
    was installed without being approved is named in ``error``.
    """
    outcome = ApplyOutcome(host=host, status=HOST_OK)
    windows = [e for e in approved if e.get("source") == "windows"]
    apps = [e for e in approved if e.get("source") == "chocolatey"]
    problems: list[str] = []

    if windows:
        if win_updates_result is None:
            for entry in windows:
                outcome.failed[_entry_uid(entry)] = "win_updates did not run"
        else:
            updates = win_updates_result.get("updates") or {}
            filtered = win_updates_result.get("filtered_updates") or {}
            failure = win_updates_failure(win_updates_result)
            # failed before selecting anything (a search HRESULT, a failing poll script): the
            # updates it never saw were not "not offered", win_updates did not get that far
            unseen = f"win_updates failed: {failure}" if failure and not updates else None
            outcome.reboot_required = bool(win_updates_result.get("reboot_required", False))
            approved_ids = {str(e.get("update_id")) for e in windows}
            for entry in windows:
                uid, update_id = _entry_uid(entry), str(entry.get("update_id"))
                info = updates.get(update_id)
                if isinstance(info, Mapping):
                    if info.get("installed") is True:
                        outcome.installed.append(uid)
                    elif "failure_hresult_code" in info:
                        reason = info.get("failure_msg") or f"HRESULT {info['failure_hresult_code']}"
                        outcome.failed[uid] = f"install failed: {reason}"
                    else:
                        msg = win_updates_result.get("msg") or "not installed"
                        outcome.failed[uid] = f"not installed: {' '.join(str(msg).split())}"
                elif isinstance(filtered.get(update_id), Mapping):
                    reasons = ", ".join(map(str, filtered[update_id].get("filtered_reasons", []))) or "unknown"
                    outcome.failed[uid] = f"filtered by win_updates ({reasons})"
                else:
                    outcome.failed[uid] = unseen or (
                        "not offered by Windows Update on this host (installed, superseded or hidden)"
                    )
            extra = sorted(
                uid
                for uid, info in updates.items()
                if uid not in approved_ids and isinstance(info, Mapping) and info.get("installed") is True
            )
            if extra:
                problems.append(f"installed updates that were not approved: {', '.join(extra)}")
            if failure and (unseen or not outcome.failed):
                problems.append(failure)

    by_name: dict[str, Mapping[str, Any]] = {}
    for item_result in choco_results:
        item = item_result.get("item")
        if isinstance(item, Mapping) and isinstance(item.get("key"), str):  # dict2items of the plan
            by_name[item["key"].lower()] = item_result
        elif isinstance(item, Mapping) and isinstance(item.get("name"), str):  # a patchctl_deploy entry
            by_name[item["name"].lower()] = item_result
    for entry in apps:
        uid = _entry_uid(entry)
        res = by_name.get(str(entry.get("name", "")).lower())
        rc = res.get("rc") if res is not None else None
        if res is None:
            outcome.failed[uid] = "win_chocolatey did not run"
        elif res.get("failed") or not isinstance(rc, int) or rc not in CHOCO_SUCCESS_EXIT_CODES:
            # no rc: the module never ran choco (an unhandled exception, whose failure the
            # role's failed_when: false turns into failed: false)
            fallback = f"choco exited {rc}" if rc is not None else "win_chocolatey returned no exit code"
            msg = res.get("msg") or fallback
            outcome.failed[uid] = f"install failed: {' '.join(str(msg).split())}"
        else:
            outcome.installed.append(uid)
            if rc in CHOCO_REBOOT_EXIT_CODES:
                outcome.reboot_required = True

    if problems:
        outcome.error = "; ".join(problems)
    if outcome.failed or outcome.error:
        outcome.status = HOST_FAILED
    return outcome
