"""Configuration: defaults, file, environment, command line, in that order, each with its source."""

from __future__ import annotations

from pathlib import Path

import pytest

from patchctl import paths
from patchctl.config import Config, Setting, default_config_file
from patchctl.errors import EXIT_USAGE, ConfigError


def write_config(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def user_config(patchctl_home: Path, tmp_path: Path) -> Path:
    """Where the default config file lives in the isolated environment (not created)."""
    return tmp_path / "config" / "patchctl" / "config.yml"


def test_defaults_when_nothing_is_configured(patchctl_home: Path) -> None:
    cfg = Config.load({})
    assert cfg.file is None
    assert cfg.get("db") == Setting(paths.default_db_url(), "default")
    assert cfg.db == f"sqlite:///{patchctl_home / 'patchctl.db'}"
    assert cfg.inventory == str(paths.lab_dir() / "inventory.yml")
    assert cfg.policy is None
    assert cfg.forks == 20
    assert cfg.scan_cache_valid_time == 0
    assert {row[2] for row in cfg.as_rows()} == {"default"}


def test_default_file_is_under_xdg_config_home(user_config: Path) -> None:
    # Nothing exists yet: the file a user would create is patchctl.yml; the older
    # name config.yml is still read when it exists (the tests below write it).
    assert default_config_file() == user_config.with_name("patchctl.yml")
    write_config(user_config, "forks: 3\n")
    assert default_config_file() == user_config


def test_file_overrides_defaults_and_relative_paths_follow_the_file(user_config: Path) -> None:
    write_config(
        user_config,
        "inventory: inv/hosts.yml\npolicy: /etc/patchctl/policy.yml\nforks: 5\ndb: state.db\n",
    )
    cfg = Config.load({})
    src = f"file:{user_config.resolve()}"
    assert cfg.file == user_config.resolve()
    assert cfg.get("inventory") == Setting(str(user_config.parent.resolve() / "inv/hosts.yml"), src)
    assert cfg.get("policy") == Setting("/etc/patchctl/policy.yml", src)
    assert cfg.get("forks") == Setting(5, src)
    assert cfg.db == f"sqlite:///{user_config.parent.resolve() / 'state.db'}"
    assert cfg.get("scan_cache_valid_time").source == "default"


def test_environment_overrides_file_and_command_line_overrides_environment(
    user_config: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_config(user_config, "inventory: /from/file.yml\npolicy: /from/file-policy.yml\ndb: sqlite:///f.db\n")
    monkeypatch.setenv("PATCHCTL_INVENTORY", "/from/env.yml")
    monkeypatch.setenv("PATCHCTL_DB", "postgresql://db.example/patchctl")
    cfg = Config.load({"inventory": "/from/cli.yml", "db": None, "forks": 3})
    assert cfg.get("inventory") == Setting("/from/cli.yml", "cli")
    assert cfg.get("db") == Setting("postgresql://db.example/patchctl", "env:PATCHCTL_DB")
    assert cfg.get("policy").source.startswith("file:")
    assert cfg.get("forks") == Setting(3, "cli")
    rows = {key: (value, source) for key, value, source in cfg.as_rows()}
    assert rows["inventory"] == ("/from/cli.yml", "cli")
    assert rows["scan_cache_valid_time"] == ("0", "default")
    assert cfg.as_dict()["db"] == {"value": "postgresql://db.example/patchctl", "source": "env:PATCHCTL_DB"}


def test_patchctl_config_names_the_file(patchctl_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    other = write_config(tmp_path / "elsewhere.yml", "scan_cache_valid_time: 3600\n")
    monkeypatch.setenv("PATCHCTL_CONFIG", str(other))
    cfg = Config.load({})
    assert cfg.get("scan_cache_valid_time") == Setting(3600, f"file:{other.resolve()}")


def test_missing_explicit_config_file_is_an_error(patchctl_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATCHCTL_CONFIG", "/nonexistent/patchctl.yml")
    with pytest.raises(ConfigError, match=r"/nonexistent/patchctl\.yml"):
        Config.load({})


def test_empty_file_is_fine(user_config: Path) -> None:
    write_config(user_config, "# nothing yet\n")
    assert Config.load({}).get("forks").source == "default"


def test_unknown_key_names_file_and_key(user_config: Path) -> None:
    write_config(user_config, "forks: 4\nfrks: 5\n")
    with pytest.raises(ConfigError) as exc:
        Config.load({})
    assert str(user_config) in str(exc.value) and "'frks'" in str(exc.value)
    assert exc.value.code == EXIT_USAGE


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("forks: many\n", "forks"),
        ("forks: true\n", "forks"),
        ("forks: 0\n", "forks"),
        ("scan_cache_valid_time: -1\n", "scan_cache_valid_time"),
        ("inventory: 12\n", "inventory"),
        ("inventory: ''\n", "inventory"),
        ("db: [a, b]\n", "db"),
    ],
)
def test_wrong_type_names_file_and_key(user_config: Path, text: str, key: str) -> None:
    write_config(user_config, text)
    with pytest.raises(ConfigError) as exc:
        Config.load({})
    message = str(exc.value)
    assert str(user_config) in message and key in message
    assert "\n" not in message


def test_invalid_yaml_gives_file_and_line(user_config: Path) -> None:
    write_config(user_config, "forks: 4\ninventory: [unclosed\n")
    with pytest.raises(ConfigError, match=r"config\.yml: line \d+: invalid YAML"):
        Config.load({})


def test_file_must_be_a_mapping(user_config: Path) -> None:
    write_config(user_config, "- forks\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        Config.load({})


def test_bad_environment_value_names_the_variable(patchctl_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATCHCTL_POLICY", "   ")
    with pytest.raises(ConfigError, match="PATCHCTL_POLICY"):
        Config.load({})


def test_empty_environment_value_is_ignored(patchctl_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATCHCTL_INVENTORY", "")
    assert Config.load({}).get("inventory").source == "default"


def test_command_line_values_are_validated(patchctl_home: Path) -> None:
    assert Config.load({"forks": "7"}).forks == 7
    with pytest.raises(ConfigError, match="forks"):
        Config.load({"forks": "seven"})
    with pytest.raises(ConfigError, match="'colour'"):
        Config.load({"colour": "blue"})


def test_plain_db_path_becomes_sqlite_url(patchctl_home: Path, tmp_path: Path) -> None:
    cfg = Config.load({"db": str(tmp_path / "x.db")})
    assert cfg.db == f"sqlite:///{tmp_path / 'x.db'}"


def test_explicit_environ_mapping_is_used(patchctl_home: Path, tmp_path: Path) -> None:
    cfg = Config.load({}, environ={"PATCHCTL_POLICY": "/p.yml", "XDG_CONFIG_HOME": str(tmp_path / "none")})
    assert cfg.get("policy") == Setting("/p.yml", "env:PATCHCTL_POLICY")
