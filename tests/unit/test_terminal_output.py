"""Terminal output never carries a host's control characters raw: ``one_line`` escapes them in
error lines, and the report's rich tables and plain lines escape them in host names, update
names, OS strings and errors; rich markup in a name (``[red]``) prints literally."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from patchctl.cli import cli
from patchctl.cli.app import MAX_ERROR_CHARS, one_line
from patchctl.render import text as render
from patchctl.render.escape import printable
from patchctl.report import full_report
from patchctl.rules.model import HOST_FAILED, HOST_OK, HostScan, Update
from patchctl.store import Store

ESC = "\x1b"
EVIL_HOST = f"{ESC}[31mweb{ESC}[0m[red]x[/red]\x9b2J"
EVIL_UPDATE = f"pkg{ESC}]0;owned\x07[bold]b[/bold]"
EVIL_ERROR = f"sudo: {ESC}[2Kcleared\rline\u2028two"
# What each must look like on the terminal: escaped, markup literal.
SHOWN_HOST = "\\x1b[31mweb\\x1b[0m[red]x[/red]\\x9b2J"
SHOWN_UPDATE = "pkg\\x1b]0;owned\\x07[bold]b[/bold]"
SHOWN_ERROR = "sudo: \\x1b[2Kcleared\\rline\\u2028two"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain ünïcødé 名前 [red]", "plain ünïcødé 名前 [red]"),
        (f"{ESC}[31mred{ESC}[0m", "\\x1b[31mred\\x1b[0m"),
        ("\x9b31m", "\\x9b31m"),  # the one-character CSI of C1
        ("new\nline\ttab\rcr", "new\\nline\\ttab\\rcr"),
        ("bell\x07 del\x7f nul\x00", "bell\\x07 del\\x7f nul\\x00"),
        ("sep\u2028para\u2029nel\x85", "sep\\u2028para\\u2029nel\\x85"),
    ],
)
def test_one_line_escapes_control_characters(raw: str, shown: str) -> None:
    """Seen failing with ``one_line`` passing ESC through (ESC left out of the escaped characters):
    the ANSI cases kept a raw ``\\x1b``."""
    assert one_line(raw) == shown
    assert printable(raw) == shown
    assert one_line(raw).isprintable()


def test_one_line_cuts_long_messages() -> None:
    """Seen failing with the cut removed: the 5000-character line came back whole."""
    cut = one_line("x" * 5000)
    assert len(cut) == MAX_ERROR_CHARS and cut.endswith("...")
    assert one_line("y" * MAX_ERROR_CHARS) == "y" * MAX_ERROR_CHARS


def test_an_error_naming_a_file_with_an_escape_is_one_escaped_line(tmp_path: Path, patchctl_home: Path) -> None:
    """Through the CLI: a policy file whose name holds ESC and a newline fails with one line, the
    name escaped. Seen failing with ``one_line`` passing ESC through (a raw ``\\x1b`` on stderr)."""
    missing = tmp_path / f"p{ESC}[31m\nx.yml"
    result = CliRunner().invoke(cli, ["--db", f"sqlite:///{tmp_path / 's.db'}", "--policy", str(missing), "updates"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("patchctl: error: "), result.stderr
    assert ESC not in result.stderr and "p\\x1b[31m\\nx.yml" in lines[0]


@pytest.fixture
def evil_store(tmp_path: Path) -> str:
    """A store with a host and an update whose names carry ANSI sequences and rich markup, and a
    failed host whose error does."""
    url = f"sqlite:///{tmp_path / 'evil.db'}"
    now = datetime.now(UTC)
    upd = Update(source="apt", name=EVIL_UPDATE, version=f"1.0{ESC}[5m", classification="security", title=EVIL_HOST)
    with Store.open(url) as store:
        run = store.start_run("scan", "inv", None, 2)
        store.record_host_scan(
            run,
            HostScan(
                host=EVIL_HOST,
                status=HOST_OK,
                scanned_at=now,
                os_family="Debian",
                distribution=f"Debian{ESC}[8m",
                os_version="12",
                pkg_mgr="apt",
                updates=[upd],
                installed={EVIL_UPDATE: "0.9"},
            ),
        )
        store.record_host_scan(run, HostScan(host="other", status=HOST_FAILED, scanned_at=now, error=EVIL_ERROR))
        store.finish_run(run, "ok", now=now)
    return url


def _rendered_tables(url: str) -> str:
    """The report's rich tables as a terminal gets them (colours on)."""
    buf = io.StringIO()
    console = Console(file=buf, width=400, force_terminal=True, color_system="truecolor", highlight=False)
    for table in render.full_report_tables(full_report(url, None, datetime.now(UTC))):
        console.print(table)
    return buf.getvalue()


def test_rich_tables_escape_names_and_print_markup_literally(evil_store: str) -> None:
    """The only escape sequences in the tables are rich's own colours (``ESC[...m``); the host's
    and update's sequences are shown escaped and their ``[red]``/``[bold]`` printed. Seen failing
    with the cells handed to rich as plain strings (``_text`` returning ``str(value)``): rich read
    ``[red]x[/red]`` as markup (printed ``x`` in red) and ``ESC]0;owned`` reached the terminal."""
    out = _rendered_tables(evil_store)
    assert SHOWN_HOST in out and SHOWN_UPDATE in out and SHOWN_ERROR in out
    assert "Debian\\x1b[8m" in out
    foreign = [seq for seq in re.findall(r"\x1b.{0,8}", out) if not re.match(r"\x1b\[[0-9;]*m", seq)]
    assert foreign == [], foreign
    assert "\x9b" not in out and "\x07" not in out and "\r" not in out and "\u2028" not in out


def test_plain_lines_and_written_tables_escape_names(evil_store: str, tmp_path: Path, patchctl_home: Path) -> None:
    """``patchctl report`` to a pipe (plain lines) and to ``--output`` (the tables, no colours):
    no control character at all, the names escaped, markup literal. Seen failing with ``_clean``
    not escaping (the raw ESC of the host name in the plain lines) and with the table cells as
    plain strings (``[red]`` swallowed as markup in the written tables)."""
    runner = CliRunner()
    piped = runner.invoke(cli, ["--db", evil_store, "report"])
    assert piped.exit_code == 0, piped.output
    written = tmp_path / "report.txt"
    to_file = runner.invoke(cli, ["--db", evil_store, "report", "--output", str(written)])
    assert to_file.exit_code == 0, to_file.output
    for out in (piped.output, written.read_text(encoding="utf-8")):
        assert SHOWN_HOST in out and SHOWN_UPDATE in out
        assert "[red]x[/red]" in out and "[bold]b[/bold]" in out
        assert all(ch.isprintable() or ch in "\n\t" for ch in out), [ch for ch in out if not ch.isprintable()]


def test_every_printed_table_escapes_its_cells(evil_store: str) -> None:
    """``patchctl updates`` (any table through ``print_table``): the update's name shows escaped
    and its markup literally. Seen failing before ``print_table`` escaped cells: the raw
    ``ESC]0;owned`` title sequence reached the terminal and ``[bold]b[/bold]`` printed as ``b``."""
    out = CliRunner().invoke(cli, ["--db", evil_store, "updates", "--all"])
    assert out.exit_code == 0, out.output
    assert "\\x1b]0;owned\\x07[bold]b[/bold]" in out.output
    assert ESC not in out.output and "\x07" not in out.output


def test_deploy_lines_escape_what_hosts_said() -> None:
    """Seen failing with ``deploy_lines`` returning its lines unescaped."""
    from patchctl.render.deploy import deploy_lines

    data = {
        "rollout": 1,
        "wave": "pilot",
        "message": None,
        "hosts": [
            {"host": EVIL_HOST, "status": "failed", "installed": [], "failed": {}, "error": EVIL_ERROR,
             "reboot_required": False},
        ],
        "already_done": [],
        "not_started": [EVIL_HOST],
        "reboots": [{"host": EVIL_HOST, "result": None, "role": "server", "reason": "kernel"}],
        "state": "halted",
        "halted_reason": None,
    }
    lines = deploy_lines(data)
    assert lines[0] == f"{SHOWN_HOST}: failed: {SHOWN_ERROR}"
    assert f"not started: {SHOWN_HOST}" in lines
    assert all(line.isprintable() for line in lines), lines
