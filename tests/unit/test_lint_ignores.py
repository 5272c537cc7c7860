"""The lint gate that wants a reason beside every lint ignore (tools/check_lint_ignores.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "check_lint_ignores.py"


@pytest.fixture(scope="module")
def gate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_lint_ignores", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("line", "ok"),
    [
        ("x = open(p)  # noqa: SIM115 - handed to the child", True),
        ("x = open(p)  # noqa: SIM115", False),
        ("x = open(p)  # noqa", False),
        ("return w  # type: ignore[return-value]  # functools.wraps keeps the signature", True),
        ("return w  # type: ignore[return-value]", False),
        ("return w  # type: ignore[return-value]  # noqa: E501", False),
        ("      ignore_errors: true  # noqa: ignore-errors - the test counts it", True),
        ("      ignore_errors: true  # noqa: ignore-errors", False),
        ("key: value  # yamllint disable-line rule:truthy", False),
        ("key: value  # yamllint disable-line rule:truthy -- an upstream format", True),
        ('pattern = "# noqa"', True),
    ],
)
def test_inline_directives(gate: ModuleType, line: str, ok: bool) -> None:
    assert (list(gate.inline_findings(Path("f"), [line])) == []) is ok


def test_yaml_config_lists(gate: ModuleType) -> None:
    lines = [
        "exclude_paths:",
        "  - .venv/  # third-party code",
        "  - tests/",
        "ignore: |",
        "  build/",
        "skip_list: []",
    ]
    found = list(gate.yaml_config_findings(Path(".ansible-lint"), lines))
    assert found == [
        ".ansible-lint:3: exclude_paths entry without a reason on the same line",
        ".ansible-lint:4: 'ignore' as a block scalar cannot carry reasons; use a list",
    ]


def test_pyproject_lists(gate: ModuleType) -> None:
    lines = [
        "[tool.ruff.lint]",
        "ignore = [",
        '    "S603",  # argument lists, no shell',
        '    "S607",',
        "]",
        "[tool.ruff.lint.per-file-ignores]",
        '"plugins/**" = ["E402"]  # DOCUMENTATION comes before the imports',
        '"tests/**" = ["S101"]',
        "[tool.pytest.ini_options]",
        "filterwarnings = [",
        '    "error",',
        '    "ignore:old:DeprecationWarning",',
        "]",
        "[[tool.mypy.overrides]]",
        "ignore_missing_imports = true",
    ]
    found = [f.split(": ", 1)[0] for f in gate.toml_config_findings(Path("pyproject.toml"), lines)]
    assert found == ["pyproject.toml:4", "pyproject.toml:8", "pyproject.toml:12", "pyproject.toml:15"]


def test_the_checkout_passes_for_the_files_it_names(gate: ModuleType) -> None:
    """The gate's own configuration files carry their reasons."""
    root = TOOL.parents[1]
    assert gate.check([root / ".ansible-lint", root / ".yamllint", root / "pyproject.toml", TOOL]) == []
