"""Contract: the project's PowerShell modules, read statically.

No PowerShell interpreter runs here, and these modules have never run on a Windows host: this
is a parser of their method-call argument lists, not an execution. It guards one class of
mistake: inside a .NET method call's parentheses a comma separates arguments, so
``$module.FailJson("{0}: {1}" -f $a, $b, $_)`` passes three arguments (``-f`` gets only ``$a``,
and Ansible.Basic's FailJson(string, ErrorRecord) has no three-argument form: the handler itself
throws and the message is lost). The format expression must be in its own parentheses or in a
variable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

MODULES = Path(__file__).resolve().parents[2] / "plugins" / "modules"
PS_MODULES = sorted(MODULES.glob("*.ps1"))

# How many arguments Ansible.Basic.AnsibleModule's methods take (ansible-core's
# module_utils/csharp/Ansible.Basic.cs).
MODULE_METHOD_ARITY = {
    "ExitJson": (0, 0),
    "FailJson": (1, 2),
    "Warn": (1, 1),
    "Deprecate": (2, 3),
}

# a method call: `$var.Method(`, `$x.Prop.Method(`, `(...).Method(`, `[Type]::Method(`
_CALL = re.compile(r"(\$\w+)?(?<=[\w\])])(?:\.|::)([A-Za-z_]\w*)\(")


@dataclass(frozen=True)
class Call:
    line: int
    target: str  # the variable the method is called on ("$module"), else empty
    method: str
    args: tuple[str, ...]  # the top-level arguments, stripped


def _skip_string(text: str, i: int) -> int:
    """The index after the string literal starting at ``text[i]`` (a quote)."""
    quote = text[i]
    i += 1
    while i < len(text):
        ch = text[i]
        if quote == '"' and ch == "`":
            i += 2
            continue
        if ch == quote:
            if i + 1 < len(text) and text[i + 1] == quote:  # '' or "" inside the string
                i += 2
                continue
            return i + 1
        i += 1
    raise ValueError("unterminated string")


def _blank(text: str, *, strings: bool) -> str:
    """``text`` with its ``#`` comments blanked, and its strings' contents when ``strings``
    (same length, so positions and line numbers stay)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "'\"":
            end = _skip_string(text, i)
            out.append(ch + re.sub(r"[^\n]", " ", text[i + 1 : end - 1]) + ch if strings else text[i:end])
            i = end
        elif ch == "#":
            end = text.find("\n", i)
            end = len(text) if end < 0 else end
            out.append(" " * (end - i))
            i = end
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _arguments(text: str, open_paren: int) -> tuple[str, ...]:
    """The top-level comma-separated arguments of the call whose ``(`` is at ``open_paren``."""
    args: list[str] = []
    depth, start, i = 0, open_paren + 1, open_paren + 1
    while i < len(text):
        ch = text[i]
        if ch in "'\"":
            i = _skip_string(text, i)
            continue
        if ch == "`":  # line continuation or escape
            i += 2
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                last = text[start:i].strip()
                if args or last:
                    args.append(last)
                return tuple(args)
            depth -= 1
        elif ch == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
        i += 1
    raise ValueError("unbalanced parentheses")


def method_calls(source: str) -> list[Call]:
    """Every ``.Method(`` / ``::Method(`` call of a PowerShell source, with its arguments."""
    text = _blank(source, strings=False)
    code = _blank(source, strings=True)  # where calls are looked for: not inside strings
    return [
        Call(text.count("\n", 0, m.start()) + 1, m.group(1) or "", m.group(2), _arguments(text, m.end() - 1))
        for m in _CALL.finditer(code)
    ]


def _has_top_level_format(arg: str) -> bool:
    """Whether ``arg`` applies ``-f`` outside any parentheses, brackets or strings."""
    depth, i = 0, 0
    while i < len(arg):
        ch = arg[i]
        if ch in "'\"":
            i = _skip_string(arg, i)
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and re.match(r"-f\b", arg[i:]) and (i == 0 or arg[i - 1].isspace() or arg[i - 1] in ")'\""):
            return True
        i += 1
    return False


def problems(source: str) -> list[str]:
    """What is wrong with the method calls of ``source`` (empty when nothing is)."""
    found = []
    for call in method_calls(source):
        where = f"line {call.line}: {call.target}.{call.method}(...)"
        if call.target == "$module" and call.method in MODULE_METHOD_ARITY:
            low, high = MODULE_METHOD_ARITY[call.method]
            if not low <= len(call.args) <= high:
                found.append(f"{where} takes {low} to {high} arguments, gets {len(call.args)}: {list(call.args)}")
        for arg in call.args[:-1]:
            if _has_top_level_format(arg):
                found.append(f"{where}: -f in an argument followed by more arguments (they are not its operands)")
    return found


BROKEN_CATCH = """
    catch {
        $hresult = $_.Exception.HResult
        $module.FailJson(("Windows Update Agent search failed (HRESULT 0x{0:X8}): {1}. Over WinRM/PSRP a " +
                "search may need become (runas SYSTEM)") -f $hresult, $_.Exception.Message, $_)
    }
"""


def test_the_checker_finds_the_broken_catch_block() -> None:
    """The form the scan module's catch block had is found, twice (three
    arguments to FailJson; a format whose operands are split off), and the fixed forms are not."""
    assert len(problems(BROKEN_CATCH)) == 2
    fixed = BROKEN_CATCH.replace(
        ") -f $hresult, $_.Exception.Message, $_)", ") -f $hresult, $_.Exception.Message), $_)"
    )
    fixed = fixed.replace("$module.FailJson((", "$module.FailJson(((")
    assert problems(fixed) == []
    assert problems('$msg = "{0}: {1}" -f $a, $b\n$module.FailJson($msg, $_)\n') == []
    assert problems("$module.Warn('a', 'b')  # , not an argument\n") == [
        "line 1: $module.Warn(...) takes 1 to 1 arguments, gets 2: [\"'a'\", \"'b'\"]"
    ]


@pytest.mark.parametrize("module", PS_MODULES, ids=lambda p: p.name)
def test_module_method_calls_pass_the_arguments_meant(module: Path) -> None:
    """Every method call of the project's PowerShell modules passes the arguments it means to.
    Breaking it: the catch block of patch_win_update_info.ps1 as it was
    (``$module.FailJson(("..." + "...") -f $hresult, $_.Exception.Message, $_)``) fails here with
    both problems. Static only: the module never ran."""
    source = module.read_text(encoding="utf-8")
    assert method_calls(source), "the parser found no method call"
    assert problems(source) == []


def test_scan_module_fails_with_the_hresult_and_the_become_hint() -> None:
    """The search failure's message, with the HRESULT and the become hint, is formatted on its
    own and passed as FailJson's first argument (its second is the error record). Static only."""
    source = (MODULES / "patch_win_update_info.ps1").read_text(encoding="utf-8")
    fails = [c for c in method_calls(source) if c.method == "FailJson"]
    assert [c.args for c in fails] == [("$message", "$_")]
    assignment = re.search(r"\$message = \((.+?)\) -f \$hresult, \$_\.Exception\.Message\n", source, re.DOTALL)
    assert assignment is not None
    assert "0x{0:X8}" in assignment.group(1) and "become" in assignment.group(1)
