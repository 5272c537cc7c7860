#!/usr/bin/env python3
"""Lint gate: every lint ignore carries its reason on the same line.

Checks the inline suppressions (noqa, type: ignore, nosec, yamllint disable, pylint: disable
comments) in Python and YAML files, and the ignore lists of the lint
configuration (ruff's ``ignore`` and ``per-file-ignores``, mypy's ``ignore_missing_imports``,
pytest's ``ignore:`` warning filters, ansible-lint's ``skip_list``/``warn_list``/``exclude_paths``,
yamllint's ``ignore``). A reason is a comment with words after the directive, e.g.::

    log = open(path, "ab")  # noqa: SIM115 - handed to the child

Usage: ``tools/check_lint_ignores.py [PATH ...]`` (default: the files git knows in the checkout,
tracked or not ignored). Exit 1 and one line per finding when a reason is missing.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE_SUFFIXES = {".py", ".yml", ".yaml"}

# An inline directive, its own arguments (codes, rule names), then whatever follows.
DIRECTIVE = re.compile(
    r"#\s*(?P<what>noqa|type:\s*ignore|nosec|yamllint\s+disable(?:-line|-file)?|pylint:\s*disable|ruff:\s*noqa)"
    r"(?P<args>(?::\s*[\w\[\].\-]+(?:\s*,\s*[\w\[\].\-]+)*|\[[^\]]*\]|(?:\s+rule:[\w-]+)+|=[\w,\-]+)?)"
    r"(?P<rest>.*)$"
)
WORDS = re.compile(r"[A-Za-z]{2,}")
# YAML list keys (ansible-lint, yamllint) whose every entry needs a comment.
YAML_IGNORE_KEYS = ("skip_list", "warn_list", "exclude_paths", "ignore")
CONFIG_FILES = (".ansible-lint", ".yamllint", "pyproject.toml")


def has_reason(rest: str) -> bool:
    """Words after the directive, once separators and a following ``#`` are stripped."""
    text = DIRECTIVE.sub("", rest)  # a second directive on the line is not a reason
    return bool(WORDS.search(text.lstrip(" \t-:;,(#")))


def inline_findings(path: Path, lines: Iterable[str]) -> Iterator[str]:
    for no, line in enumerate(lines, 1):
        for match in DIRECTIVE.finditer(line):
            if line[: match.start()].count('"') % 2 or line[: match.start()].count("'") % 2:
                continue  # inside a string literal, e.g. this file's own pattern
            if not has_reason(match.group("rest")):
                yield f"{path}:{no}: '{match.group(0).strip()}' without a reason on the same line"


def yaml_config_findings(path: Path, lines: list[str]) -> Iterator[str]:
    key = None
    for no, line in enumerate(lines, 1):
        top = re.match(r"^([\w-]+):", line)
        if top:
            key = top.group(1)
            if key in YAML_IGNORE_KEYS and "|" in line.split("#")[0]:
                yield f"{path}:{no}: '{key}' as a block scalar cannot carry reasons; use a list"
            continue
        if key in YAML_IGNORE_KEYS and re.match(r"^\s+-\s", line) and " #" not in line:
            yield f"{path}:{no}: {key} entry without a reason on the same line"


def toml_config_findings(path: Path, lines: list[str]) -> Iterator[str]:
    section = ""
    in_list = None  # the key of the multi-line ignore list we are in
    for no, line in enumerate(lines, 1):
        code = line.split("#", 1)[0].strip()
        header = re.match(r"^\[+([^\]]+)\]+$", code)
        if header:
            section, in_list = header.group(1), None
            continue
        if in_list:
            if code.startswith("]"):
                in_list = None
            elif code and "#" not in line and (in_list != "filterwarnings" or code.strip("\"',").startswith("ignore")):
                yield f"{path}:{no}: {in_list} entry without a reason on the same line"
            continue
        assign = re.match(r"^\"?([\w*./-]+)\"?\s*=\s*(.*)$", code)
        if not assign:
            continue
        key, value = assign.group(1), assign.group(2)
        if key in ("ignore", "extend-ignore", "filterwarnings") and value == "[":
            in_list = key
        elif (
            (section.endswith("per-file-ignores") or key in ("ignore", "extend-ignore", "ignore_missing_imports"))
            and "#" not in line
            and value not in ("[]", "false")
        ):
            yield f"{path}:{no}: {key} without a reason on the same line"


def files_to_check() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return sorted(ROOT / p for p in out if Path(p).suffix in SOURCE_SUFFIXES or Path(p).name in CONFIG_FILES)


def check(paths: Iterable[Path]) -> list[str]:
    findings: list[str] = []
    for path in paths:
        if not path.is_file():
            continue
        rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        if path.name == "pyproject.toml":
            findings += toml_config_findings(rel, lines)
        elif path.name in (".ansible-lint", ".yamllint"):
            findings += yaml_config_findings(rel, lines)
        if path.suffix in SOURCE_SUFFIXES or path.name in (".ansible-lint", ".yamllint"):
            findings += inline_findings(rel, lines)
    return findings


def main(argv: list[str]) -> int:
    paths = [Path(a).resolve() for a in argv] if argv else files_to_check()
    findings = check(paths)
    for line in findings:
        print(line)
    if findings:
        print(f"{len(findings)} lint ignore(s) without a reason; put it on the same line", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
