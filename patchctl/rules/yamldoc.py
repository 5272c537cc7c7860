"""Reading the policy file's YAML with line numbers: the one helper behind its baselines, waves and
windows.

The text is composed into nodes, not loaded as a whole, so every value keeps the line it came
from, and every problem is one ConfigError naming the file, the line and the field::

    policy file /etc/patchctl/policy.yml, line 7: baselines.debian.approve_after_days: must be ...

Values may also come as plain Python data (a list of dicts, as tests and callers build windows);
the same checks then name the file and the field, without a line.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import yaml

from patchctl.errors import ConfigError


class YamlDoc:
    """One YAML text (possibly empty: only plain values to check) and the file it came from."""

    def __init__(self, text: str, filename: str) -> None:
        self.filename = filename
        try:
            self.loader = yaml.SafeLoader(text)
        except yaml.YAMLError as exc:  # the reader refuses NUL and other unprintable characters
            problem = str(exc).splitlines()[0]
            raise ConfigError(f"policy file {filename}: invalid YAML: {problem}") from exc

    def error(self, node: Any, fieldname: str, problem: str) -> ConfigError:
        """``policy file F, line N: field: problem``; the line when ``node`` is a YAML node."""
        line = f", line {node.start_mark.line + 1}" if isinstance(node, yaml.Node) else ""
        where = f"{fieldname}: " if fieldname else ""
        return ConfigError(f"policy file {self.filename}{line}: {where}{problem}")

    def root(self) -> yaml.Node | None:
        """The document's top node (None for an empty document)."""
        try:
            return self.loader.get_single_node()
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            line = f", line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"policy file {self.filename}{line}: invalid YAML: {problem}") from exc
        finally:
            self.loader.dispose()

    def value(self, node: Any) -> Any:
        """A node's Python value (a mapping or list with everything in it); plain data unchanged."""
        if not isinstance(node, yaml.Node):
            return node
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise self.error(node, "", f"invalid YAML: {exc}") from exc
        except (ValueError, TypeError, AttributeError) as exc:  # a tag the value does not fit: ``!!int x``
            raise self.error(node, "", f"invalid YAML: {node.tag} value {exc}") from exc

    def mapping(
        self, node: Any, fieldname: str, known: Sequence[str], expected: str = "a mapping"
    ) -> dict[str, tuple[Any, Any]]:
        """The fields of a mapping, by name: (key node, value node), the key node None for plain
        data. An unknown field (when ``known`` is given) or one given twice is an error."""
        if not isinstance(node, yaml.MappingNode | Mapping):
            raise self.error(node, fieldname or "(top level)", f"must be {expected}")
        out: dict[str, tuple[Any, Any]] = {}
        for key_node, raw_key, value_node in self._pairs(node):
            key = str(raw_key)
            path = f"{fieldname}.{key}" if fieldname else key
            at = key_node if key_node is not None else node
            if known and key not in known:
                raise self.error(at, path, f"unknown field (known: {', '.join(known)})")
            if key in out:
                raise self.error(at, path, "given twice")
            out[key] = (key_node, value_node)
        return out

    def _pairs(self, node: yaml.MappingNode | Mapping[Any, Any]) -> Iterator[tuple[Any, Any, Any]]:
        """(key node or None, key, value node) of each field, each key read only when reached."""
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                yield key_node, self.value(key_node), value_node
        else:
            for key, value in node.items():
                yield None, key, value

    @staticmethod
    def items(node: Any) -> list[Any] | None:
        """The entries of a list (its nodes, or plain items), or None when ``node`` is no list."""
        if isinstance(node, yaml.SequenceNode):
            return list(node.value)
        if isinstance(node, list | tuple):
            return list(node)
        return None

    def int_value(self, node: Any, fieldname: str, minimum: int = 0, maximum: int | None = None) -> int:
        raw = self.value(node)
        if (
            isinstance(raw, bool)
            or not isinstance(raw, int)
            or raw < minimum
            or (maximum is not None and raw > maximum)
        ):
            bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
            raise self.error(node, fieldname, f"must be an integer {bounds}, got {raw!r}")
        return raw

    def number(self, node: Any, fieldname: str, minimum: float = 0, maximum: float | None = None) -> float:
        raw = self.value(node)
        ok = isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw)
        if not ok or raw < minimum or (maximum is not None and raw > maximum):
            bounds = f"between {minimum:g} and {maximum:g}" if maximum is not None else f"at least {minimum:g}"
            raise self.error(node, fieldname, f"must be a number {bounds}, got {raw!r}")
        return float(raw)

    def string(self, node: Any, fieldname: str) -> str:
        raw = self.value(node)
        if not isinstance(raw, str) or not raw.strip():
            raise self.error(node, fieldname, f"must be a non-empty string, got {raw!r}")
        return raw.strip()

    def strings(
        self, node: Any, fieldname: str, check: Callable[[Any, str, str], str] | None = None
    ) -> tuple[str, ...]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(node, fieldname, "must be a list of strings")
        out: list[str] = []
        for i, item in enumerate(node.value):
            text = self.string(item, f"{fieldname}[{i}]")
            out.append(check(item, f"{fieldname}[{i}]", text) if check else text)
        return tuple(out)
