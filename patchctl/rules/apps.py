"""The application catalog: third-party Windows applications patchctl updates through Chocolatey.

The shipped catalog is ``catalog/apps.yml`` (in a checkout, or under ``patchctl/_content/`` in an
installed package). A user file named by ``PATCHCTL_CATALOG`` (or passed to :func:`load_catalog`)
extends it: an entry with the id of a shipped one replaces it, new ids are added. The file is
also an Ansible vars file (one key, ``patchctl_app_catalog``), so playbooks can load it directly.

Only packages of catalogued applications are reported by a scan or touched by a deploy.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from patchctl import paths
from patchctl.errors import ConfigError
from patchctl.rules.model import CLASSIFICATIONS

CATALOG_KEY = "patchctl_app_catalog"
CATALOG_ENV = "PATCHCTL_CATALOG"
# How an application's versions compare (catalog/apps.yml documents each).
VERSION_SCHEMES = ("semantic", "rolling", "year", "java")
# Whether Chocolatey may install over a copy installed outside it (patchctl approve --take-over).
TAKE_OVER_SAFE = "safe"
TAKE_OVER_CHOICES = (TAKE_OVER_SAFE, "unsafe")
_KEYS = frozenset(
    {"id", "name", "packages", "classification", "supported", "reason", "registry", "version_scheme", "take_over"}
)


@dataclass(frozen=True)
class CatalogApp:
    """One catalogued application."""

    id: str
    name: str
    packages: tuple[str, ...]
    classification: str = "other"
    supported: bool = True
    reason: str | None = None
    registry: tuple[str, ...] = ()  # DisplayName patterns of its Uninstall registry keys
    version_scheme: str = "semantic"
    take_over: str = "unsafe"

    def matches(self, display_name: str) -> bool:
        """Whether an Uninstall key's DisplayName is this application (one of its patterns found)."""
        return any(re.search(p, display_name, re.IGNORECASE) for p in self.registry)

    @property
    def choco_package(self) -> str:
        """The package ``choco search`` asks about and a take-over installs: the first one."""
        return self.packages[0]

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "packages": list(self.packages),
            "classification": self.classification,
            "supported": self.supported,
            "registry": list(self.registry),
            "version_scheme": self.version_scheme,
            "take_over": self.take_over,
        }
        if self.reason:
            data["reason"] = self.reason
        return data


@dataclass(frozen=True)
class Catalog:
    """The catalog: applications by id, and the Chocolatey package index."""

    apps: tuple[CatalogApp, ...]

    def by_package(self, package: str) -> CatalogApp | None:
        """The application a Chocolatey package belongs to (package ids are case-insensitive)."""
        wanted = package.lower()
        for app in self.apps:
            if wanted in (p.lower() for p in app.packages):
                return app
        return None

    def get(self, app_id: str) -> CatalogApp | None:
        return next((app for app in self.apps if app.id == app_id), None)

    def as_vars(self) -> list[dict[str, Any]]:
        """The catalog in the shape of the vars file (``patchctl_app_catalog``'s value)."""
        return [app.as_dict() for app in self.apps]


def shipped_catalog_path() -> Path:
    return paths.content_root() / "catalog" / "apps.yml"


def _parse_app(source: str, index: int, raw: object) -> CatalogApp:
    where = f"{source}: {CATALOG_KEY}[{index}]"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a mapping")
    unknown = set(raw) - _KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")

    def text(key: str) -> str:
        value = raw.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where}.{key} must be a non-empty string")
        return value.strip()

    app_id = text("id")
    packages = raw.get("packages")
    if (
        not isinstance(packages, list)
        or not packages
        or not all(isinstance(p, str) and p.strip() and " " not in p.strip() for p in packages)
    ):
        raise ConfigError(f"{where}.packages must be a non-empty list of Chocolatey package ids")
    classification = raw.get("classification", "other")
    if classification not in CLASSIFICATIONS:
        raise ConfigError(f"{where}.classification must be one of {', '.join(CLASSIFICATIONS)}, got {classification!r}")
    supported = raw.get("supported", True)
    if not isinstance(supported, bool):
        raise ConfigError(f"{where}.supported must be true or false")
    reason = raw.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ConfigError(f"{where}.reason must be a string")
    if not supported and not reason:
        raise ConfigError(f"{where}: an unsupported application needs a reason")
    registry = raw.get("registry", [])
    if not isinstance(registry, list) or not all(isinstance(p, str) and p.strip() for p in registry):
        raise ConfigError(f"{where}.registry must be a list of regular expressions")
    for pattern in registry:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"{where}.registry: {pattern!r} is not a regular expression ({exc})") from None
    scheme = raw.get("version_scheme", "semantic")
    if scheme not in VERSION_SCHEMES:
        raise ConfigError(f"{where}.version_scheme must be one of {', '.join(VERSION_SCHEMES)}, got {scheme!r}")
    take_over = raw.get("take_over", "unsafe")
    if take_over not in TAKE_OVER_CHOICES:
        raise ConfigError(f"{where}.take_over must be one of {', '.join(TAKE_OVER_CHOICES)}, got {take_over!r}")
    return CatalogApp(
        id=app_id,
        name=text("name"),
        packages=tuple(p.strip() for p in packages),
        classification=str(classification),
        supported=supported,
        reason=" ".join(reason.split()) if reason else None,
        registry=tuple(registry),
        version_scheme=str(scheme),
        take_over=str(take_over),
    )


def parse_catalog(source: str, data: object) -> list[CatalogApp]:
    """The applications of one catalog document; ConfigError naming the entry when malformed."""
    if not isinstance(data, Mapping) or CATALOG_KEY not in data:
        raise ConfigError(f"{source}: not an application catalog (no top-level key {CATALOG_KEY})")
    raw_apps = data[CATALOG_KEY]
    if not isinstance(raw_apps, list):
        raise ConfigError(f"{source}: {CATALOG_KEY} must be a list")
    apps = [_parse_app(source, i, raw) for i, raw in enumerate(raw_apps)]
    seen: dict[str, str] = {}
    for app in apps:
        if app.id in seen:
            raise ConfigError(f"{source}: application id {app.id!r} appears twice")
        seen[app.id] = app.id
    return apps


def _read(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"application catalog {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"application catalog {path}: not UTF-8 text (byte {exc.start})") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"application catalog {path}: not valid YAML ({' '.join(str(exc).split())})") from exc


def merge(base: Iterable[CatalogApp], extra: Iterable[CatalogApp]) -> Catalog:
    """``base`` with ``extra`` laid over it by id; a package may belong to one application only."""
    merged: dict[str, CatalogApp] = {app.id: app for app in base}
    for app in extra:
        merged[app.id] = app
    owner: dict[str, str] = {}
    for app in merged.values():
        for package in app.packages:
            key = package.lower()
            if key in owner and owner[key] != app.id:
                raise ConfigError(
                    f"application catalog: package {package!r} belongs to both {owner[key]!r} and {app.id!r}"
                )
            owner[key] = app.id
    return Catalog(apps=tuple(merged.values()))


def load_catalog(user_file: str | Path | None = None) -> Catalog:
    """The shipped catalog, extended by ``user_file`` (default: ``$PATCHCTL_CATALOG`` if set)."""
    shipped = shipped_catalog_path()
    base = parse_catalog(str(shipped), _read(shipped))
    chosen = user_file if user_file is not None else os.environ.get(CATALOG_ENV) or None
    if chosen is None:
        return merge(base, [])
    path = Path(chosen).expanduser()
    return merge(base, parse_catalog(str(path), _read(path)))
