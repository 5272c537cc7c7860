"""patchctl's settings, resolved in a fixed order: defaults, file, environment, command line.

The file is ``patchctl.yml`` (YAML, a mapping of the keys below), the first of:
``$PATCHCTL_CONFIG``; ``./patchctl.yml``; ``$XDG_CONFIG_HOME/patchctl/patchctl.yml``
(``~/.config``); ``$XDG_CONFIG_HOME/patchctl/config.yml`` (the name before patchctl.yml, still
read); ``/etc/patchctl/patchctl.yml``. Every value remembers where it came from
(:class:`Setting`), for ``patchctl config show``.

Keys:
    db                      SQLAlchemy URL of the store; a plain path means a SQLite file there
    inventory               Ansible inventory (file or directory); default: the lab's inventory
    policy                  policy (baseline) file; default: none (the built-in policy)
    forks                   Ansible forks (parallel hosts), >= 1
    scan_cache_valid_time   seconds an apt cache update stays valid during a scan, >= 0
    now                     simulated current time (ISO 8601), for rehearsals; default: the real time
    stale_days              a host whose last scan is older is ``stale`` in reports
    log_dir                 where scheduled runs (``patchctl schedule run``) log and keep their locks
    notify.*                notifications (webhook and email), see :mod:`patchctl.notify`; in the
                            file either nested (``notify: {webhook: {url: ...}}``) or dotted

Source names: ``default``, ``file:<path>``, ``env:<VARIABLE>``, ``cli``. Secrets
(``notify.webhook.secret``, ``notify.email.password``) are shown as ``********``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from patchctl import paths
from patchctl.errors import ConfigError
from patchctl.rules.clock import Clock

if TYPE_CHECKING:
    from patchctl.rules.policy import Policy

CONFIG_ENV = "PATCHCTL_CONFIG"
SOURCE_DEFAULT = "default"
SOURCE_CLI = "cli"


CONFIG_NAME = "patchctl.yml"
SYSTEM_CONFIG = Path("/etc/patchctl") / CONFIG_NAME
SECRET_MASK = "********"  # noqa: S105 - what config show prints instead of a secret


def config_candidates(environ: Mapping[str, str] | None = None) -> list[Path]:
    """Where patchctl looks for its config file when ``$PATCHCTL_CONFIG`` is not set, in order."""
    env = os.environ if environ is None else environ
    xdg = Path(env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")) / "patchctl"
    return [Path.cwd() / CONFIG_NAME, xdg / CONFIG_NAME, xdg / "config.yml", SYSTEM_CONFIG]


def default_config_file(environ: Mapping[str, str] | None = None) -> Path:
    """``$PATCHCTL_CONFIG``, else the first of :func:`config_candidates` that exists, else
    ``$XDG_CONFIG_HOME/patchctl/patchctl.yml`` (``~/.config``), where a user would create it."""
    env = os.environ if environ is None else environ
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser()
    candidates = config_candidates(env)
    for path in candidates:
        if path.is_file():
            return path
    return candidates[1]


@dataclass(frozen=True)
class Setting:
    """One effective value and where it came from (see the module docstring for source names)."""

    value: Any
    source: str


@dataclass(frozen=True)
class _Key:
    kind: type  # str, int, bool or list (of strings)
    default: Callable[[], Any]
    env: str | None = None
    is_path: bool = False  # relative paths in the file are relative to the file
    minimum: int | None = None
    nullable: bool = False
    help: str = ""
    secret: bool = False  # never shown by ``config show``


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
    "stale_days": _Key(int, lambda: 7, minimum=0, help="days without a scan after which a host is stale"),
    "log_dir": _Key(
        str,
        lambda: str(paths.home() / "log"),
        env="PATCHCTL_LOG_DIR",
        is_path=True,
        help="logs and locks of scheduled runs",
    ),
    "notify.events": _Key(
        list,
        lambda: ["wave.finished", "wave.halted", "incident.opened", "host.failed"],
        env="PATCHCTL_NOTIFY_EVENTS",
        help="events that notify (wave.finished, wave.halted, incident.opened, host.failed)",
    ),
    "notify.timeout": _Key(int, lambda: 10, minimum=1, help="seconds for one webhook or SMTP delivery"),
    "notify.webhook.url": _Key(
        str, lambda: None, env="PATCHCTL_NOTIFY_WEBHOOK_URL", nullable=True, help="webhook: JSON POST to this URL"
    ),
    "notify.webhook.secret": _Key(
        str,
        lambda: None,
        env="PATCHCTL_NOTIFY_WEBHOOK_SECRET",
        nullable=True,
        secret=True,
        help="webhook: HMAC-SHA256 key of the X-Patchctl-Signature header",
    ),
    "notify.email.smtp_host": _Key(
        str, lambda: None, env="PATCHCTL_SMTP_HOST", nullable=True, help="email: SMTP server (none: no email)"
    ),
    "notify.email.smtp_port": _Key(int, lambda: 25, env="PATCHCTL_SMTP_PORT", minimum=1, help="email: SMTP port"),
    "notify.email.starttls": _Key(bool, lambda: False, help="email: STARTTLS before logging in"),
    "notify.email.username": _Key(str, lambda: None, nullable=True, help="email: SMTP login (none: no login)"),
    "notify.email.password": _Key(
        str, lambda: None, env="PATCHCTL_SMTP_PASSWORD", nullable=True, secret=True, help="email: SMTP password"
    ),
    "notify.email.from": _Key(str, lambda: "patchctl@localhost", help="email: sender address"),
    "notify.email.to": _Key(list, lambda: [], env="PATCHCTL_NOTIFY_EMAIL_TO", help="email: recipients"),
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
    if spec.kind is bool:
        if isinstance(raw, str) and where.startswith(("env:", "cli")):
            word = raw.strip().lower()
            if word in ("1", "true", "yes", "on"):
                return True
            if word in ("0", "false", "no", "off"):
                return False
        if not isinstance(raw, bool):
            raise ConfigError(f"{where}: {name} must be true or false, got {raw!r}")
        return raw
    if spec.kind is list:
        items = [p.strip() for p in raw.split(",")] if isinstance(raw, str) else raw
        if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() for i in items):
            raise ConfigError(f"{where}: {name} must be a list of non-empty strings, got {raw!r}")
        return [i.strip() for i in items if i.strip()]
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
        from patchctl.rules.clock import parse

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
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path}: not UTF-8 text (byte {exc.start})") from exc
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
    flat: dict[str, Any] = {}
    _flatten(data, "", flat, path)
    unknown = sorted(k for k in flat if k not in KEYS)
    if unknown:
        raise ConfigError(f"config file {path}: unknown key {unknown[0]!r} (known: {', '.join(KEYS)})")
    return flat


def _flatten(data: dict[Any, Any], prefix: str, out: dict[str, Any], path: Path) -> None:
    """``{"notify": {"webhook": {"url": U}}}`` -> ``{"notify.webhook.url": U}``; other keys as is."""
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and any(k.startswith(f"{name}.") for k in KEYS):
            _flatten(value, f"{name}.", out, path)
        elif name in out:
            raise ConfigError(f"config file {path}: {name!r} is given twice")
        else:
            out[name] = value


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
    def forks_set(self) -> int | None:
        """The forks a file, the environment or the command line set; None when only the default
        holds (a scan then sizes its forks to the hosts)."""
        return self.forks if self.settings["forks"].source != SOURCE_DEFAULT else None

    @property
    def scan_cache_valid_time(self) -> int:
        return int(self.settings["scan_cache_valid_time"].value)

    @property
    def now(self) -> str | None:
        value = self.settings["now"].value
        return None if value is None else str(value)

    @property
    def stale_days(self) -> int:
        return int(self.settings["stale_days"].value)

    @property
    def log_dir(self) -> Path:
        return Path(str(self.settings["log_dir"].value))

    def value(self, name: str) -> Any:
        """The effective value of any key (``config.value("notify.webhook.url")``)."""
        return self.get(name).value

    def clock(self) -> Clock:
        """The clock commands use: simulated when ``now`` is set."""
        return Clock.from_setting(self.now, f"now ({self.settings['now'].source})")

    def as_rows(self) -> list[tuple[str, str, str]]:
        """``(key, value, source)`` per setting, in key order, for ``patchctl config show``."""
        return [(name, _shown(name, s.value), s.source) for name, s in self.settings.items()]

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """``{key: {"value": ..., "source": ...}}``, for ``--json`` (secrets masked)."""
        return {
            name: {"value": SECRET_MASK if KEYS[name].secret and s.value else s.value, "source": s.source}
            for name, s in self.settings.items()
        }


def _shown(name: str, value: Any) -> str:
    if value is None:
        return ""
    if KEYS[name].secret:
        return SECRET_MASK
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


# --- the policy file ------------------------------------------------------------------------------

DEFAULT_POLICY_FILE = "default.yml"


def default_policy_path() -> Path:
    return paths.content_root() / "policies" / DEFAULT_POLICY_FILE


def load_policy(path: str | None) -> Policy:
    """The policy file at ``path``; without one, the shipped ``policies/default.yml`` (or the
    built-in policy when patchctl was installed without it). Here, not in a flow, so that
    ``patchctl report`` reads it without importing the store's libraries."""
    from patchctl.rules.policy import BUILTIN, parse_policy

    if path is None:
        shipped = default_policy_path()
        if not shipped.is_file():
            return BUILTIN
        path = str(shipped)
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"policy file {file}: cannot read it ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"policy file {file}: not UTF-8 text (byte {exc.start})") from exc
    return _with_kev(parse_policy(text, str(file)), file)


def _with_kev(policy: Policy, policy_file: Path) -> Policy:
    """The policy's fast lane with the KEV catalog it names read (relative to the policy file)."""
    from patchctl.rules.policy import with_kev

    lane = policy.fast_lane
    if lane is None or lane.kev_file is None:
        return policy
    kev = Path(lane.kev_file).expanduser()
    if not kev.is_absolute():
        kev = policy_file.parent / kev
    try:
        text = kev.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"policy file {policy_file}: fast_lane.kev: cannot read {kev} ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{kev}: not UTF-8 text (byte {exc.start})") from exc
    return with_kev(policy, text, str(kev))
