"""patchctl's settings, resolved in a fixed order: defaults, file, environment, command line.

The file is ``$PATCHCTL_CONFIG`` or ``~/.config/patchctl/config.yml`` (YAML, a mapping of the keys
below). Every value remembers where it came from (:class:`Setting`), for ``patchctl config show``.

Keys:
    db                      SQLAlchemy URL of the store; a plain path means a SQLite file there
    inventory               Ansible inventory (file or directory); default: the lab's inventory
    policy                  policy (baseline) file; default: none (the built-in policy)
    forks                   Ansible forks (parallel hosts), >= 1
    scan_cache_valid_time   seconds an apt cache update stays valid during a scan, >= 0
    now                     simulated current time (ISO 8601), for rehearsals; default: the real time

Source names: ``default``, ``file:<path>``, ``env:<VARIABLE>``, ``cli``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from patchctl import paths
from patchctl.clock import Clock
from patchctl.errors import ConfigError

CONFIG_ENV = "PATCHCTL_CONFIG"
SOURCE_DEFAULT = "default"
SOURCE_CLI = "cli"


def default_config_file(environ: Mapping[str, str] | None = None) -> Path:
    """``$PATCHCTL_CONFIG``, else ``$XDG_CONFIG_HOME/patchctl/config.yml`` (``~/.config``)."""
    env = os.environ if environ is None else environ
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser()
    xdg = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(xdg) / "patchctl" / "config.yml"


@dataclass(frozen=True)
class Setting:
    """One effective value and where it came from (see the module docstring for source names)."""

    value: Any
    source: str


@dataclass(frozen=True)
class _Key:
    kind: type  # str or int
    default: Callable[[], Any]
    env: str | None = None
    is_path: bool = False  # relative paths in the file are relative to the file
    minimum: int | None = None
    nullable: bool = False
    help: str = ""


KEYS: dict[str, _Key] = {
    "db": _Key(str, paths.default_db_url, env="PATCHCTL_DB", help="store database URL or SQLite file"),
    "inventory": _Key(
        str,
        lambda: str(paths.lab_dir() / "inventory.yml"),
        env="PATCHCTL_INVENTORY",
        is_path=True,
        help="Ansible inventory file or directory",
    ),
    "policy": _Key(str, lambda: None, env="PATCHCTL_POLICY", is_path=True, nullable=True, help="policy file"),
    "forks": _Key(int, lambda: 20, minimum=1, help="parallel hosts per Ansible run"),
    "scan_cache_valid_time": _Key(int, lambda: 0, minimum=0, help="seconds an apt cache update stays valid"),
    "now": _Key(str, lambda: None, env="PATCHCTL_NOW", nullable=True, help="simulated current time (ISO 8601)"),
}


def _db_url(value: str, base: Path | None) -> str:
    """A URL as is; a plain path becomes a SQLite URL (relative to ``base`` when given)."""
    if "://" in value:
        return value
    path = Path(value).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    return f"sqlite:///{path.resolve()}"


def _check(name: str, raw: Any, where: str, base: Path | None) -> Any:
    """Validate and normalize one value; ``where`` names the file or variable for errors."""
    spec = KEYS[name]
    if raw is None and spec.nullable:
        return None
    if spec.kind is int:
        value: Any = raw
        if isinstance(raw, str) and where.startswith(("env:", "cli")):
            try:
                value = int(raw)
            except ValueError:
                raise ConfigError(f"{where}: {name} must be an integer, got {raw!r}") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: {name} must be an integer, got {type(raw).__name__} {raw!r}")
        if spec.minimum is not None and value < spec.minimum:
            raise ConfigError(f"{where}: {name} must be at least {spec.minimum}, got {value}")
        return value
    if isinstance(raw, Path):
        raw = str(raw)
    if name == "now" and isinstance(raw, date):  # YAML reads an unquoted time as a datetime
        raw = raw.isoformat()
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(f"{where}: {name} must be a non-empty string, got {raw!r}")
    if name == "db":
        return _db_url(raw, base)
    if name == "now":
        from patchctl.clock import parse

        return parse(raw, f"{where}: now").isoformat()
    if spec.is_path:
        path = Path(raw).expanduser()
        if base is not None and not path.is_absolute():
            path = base / path
        return str(path)
    return raw


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read it ({exc.strerror})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        at = f"line {mark.line + 1}: " if mark is not None else ""
        raise ConfigError(f"config file {path}: {at}invalid YAML: {problem}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping of settings, got {type(data).__name__}")
    unknown = sorted(str(k) for k in data if k not in KEYS)
    if unknown:
        raise ConfigError(f"config file {path}: unknown key {unknown[0]!r} (known: {', '.join(KEYS)})")
    return {str(k): v for k, v in data.items()}


@dataclass(frozen=True)
class Config:
    """The effective settings. Build it with :meth:`Config.load`."""

    settings: Mapping[str, Setting]
    file: Path | None = None  # the config file that was read, if any

    @classmethod
    def load(
        cls,
        cli_overrides: Mapping[str, Any] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        config_file: Path | None = None,
    ) -> Config:
        """Resolve every key: defaults, then the file, then the environment, then ``cli_overrides``.

        ``cli_overrides`` maps keys to command-line values; ``None`` means "not given".
        ``environ`` defaults to ``os.environ``; ``config_file`` to :func:`default_config_file`.
        A missing default file is fine; a missing ``$PATCHCTL_CONFIG`` or explicit file is not.
        """
        env = os.environ if environ is None else environ
        settings: dict[str, Setting] = {name: Setting(spec.default(), SOURCE_DEFAULT) for name, spec in KEYS.items()}

        explicit = config_file is not None or bool(env.get(CONFIG_ENV))
        path = config_file.expanduser() if config_file is not None else default_config_file(env)
        used_file: Path | None = None
        if path.exists() or explicit:
            if not path.is_file():
                raise ConfigError(f"config file {path}: no such file")
            used_file = path.resolve()
            for name, raw in _read_file(used_file).items():
                where = f"file:{used_file}"
                settings[name] = Setting(_check(name, raw, f"config file {used_file}", used_file.parent), where)

        for name, spec in KEYS.items():
            if spec.env and env.get(spec.env):
                where = f"env:{spec.env}"
                settings[name] = Setting(_check(name, env[spec.env], where, Path.cwd()), where)

        for name, raw in (cli_overrides or {}).items():
            if name not in KEYS:
                raise ConfigError(f"unknown setting {name!r} (known: {', '.join(KEYS)})")
            if raw is None:
                continue
            settings[name] = Setting(_check(name, raw, SOURCE_CLI, Path.cwd()), SOURCE_CLI)
        return cls(settings=settings, file=used_file)

    def get(self, name: str) -> Setting:
        try:
            return self.settings[name]
        except KeyError:
            raise ConfigError(f"unknown setting {name!r}") from None

    @property
    def db(self) -> str:
        return str(self.settings["db"].value)

    @property
    def inventory(self) -> str:
        return str(self.settings["inventory"].value)

    @property
    def policy(self) -> str | None:
        value = self.settings["policy"].value
        return None if value is None else str(value)

    @property
    def forks(self) -> int:
        return int(self.settings["forks"].value)

    @property
    def scan_cache_valid_time(self) -> int:
        return int(self.settings["scan_cache_valid_time"].value)

    @property
    def now(self) -> str | None:
        value = self.settings["now"].value
        return None if value is None else str(value)

    def clock(self) -> Clock:
        """The clock commands use: simulated when ``now`` is set."""
        return Clock.from_setting(self.now, f"now ({self.settings['now'].source})")

    def as_rows(self) -> list[tuple[str, str, str]]:
        """``(key, value, source)`` per setting, in key order, for ``patchctl config show``."""
        return [(name, "" if s.value is None else str(s.value), s.source) for name, s in self.settings.items()]

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """``{key: {"value": ..., "source": ...}}``, for ``--json``."""
        return {name: {"value": s.value, "source": s.source} for name, s in self.settings.items()}
