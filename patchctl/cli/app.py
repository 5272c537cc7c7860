"""What every command shares: the App object in ``ctx.obj``, the error handler and common options,
and what more than one command hands a flow (the deploy's options and progress lines)."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from patchctl.config import Config
from patchctl.errors import PatchctlError
from patchctl.render.escape import printable

if TYPE_CHECKING:
    from patchctl.cli.progress import LiveProgress
    from patchctl.deploy import DeployOptions
    from patchctl.rules.model import ApplyOutcome
    from patchctl.rules.policy import Policy

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class App:
    """What every command needs: the command-line overrides and how to print."""

    overrides: dict[str, Any]
    json_output: bool
    quiet: bool
    debug: bool
    verbose: bool = False

    @property
    def console(self) -> Console:
        return Console(highlight=False, soft_wrap=False)

    @property
    def err(self) -> Console:
        return Console(stderr=True, highlight=False)

    def config(self) -> Config:
        return Config.load(self.overrides)

    def policy(self) -> Policy:
        """The configured policy file's policy (without one, the shipped default)."""
        from patchctl.config import load_policy

        return load_policy(self.config().policy)

    @property
    def shows_progress(self) -> bool:
        """Per-host progress lines on stderr: on a terminal, without --quiet or --json."""
        return sys.stderr.isatty() and not self.quiet and not self.json_output

    def live(self, verb: str, total: int | None = None) -> LiveProgress | None:
        """The live progress display for a run over hosts, when the app shows progress."""
        if not self.shows_progress:
            return None
        from patchctl.cli.progress import LiveProgress

        return LiveProgress(self.err, verb, total)

    def shows_host(self, status: str, live: LiveProgress | None) -> bool:
        """Whether a host's line is printed after a run: after a live display only the hosts
        that were not ok (every host with ``-v``); without one, every host as always."""
        return live is None or self.verbose or status != "ok"

    def notifier(self) -> Callable[[str, dict[str, Any]], None]:
        """Send a notification event to the configured channels; failed deliveries are warned about."""
        cfg = self.config()
        clock = cfg.clock()

        def send(event: str, payload: dict[str, Any]) -> None:
            from patchctl import notify

            for delivery in notify.send(event, payload, cfg, at=clock.now()):
                if not delivery.ok:
                    click.echo(
                        f"patchctl: warning: notification {event} via {delivery.channel} to {delivery.target} "
                        f"failed: {delivery.detail}",
                        err=True,
                    )

        return send

    def emit_json(self, data: Any) -> None:
        click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


MAX_ERROR_CHARS = 1000


def one_line(message: str) -> str:
    """An error message as one printable line: control and line-separating characters (which a
    file or host name may carry: newlines, ANSI escapes, U+2028) shown escaped
    (:func:`patchctl.render.escape.printable`), and cut short."""
    text = printable(message)
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


def handle_errors(func: F) -> F:
    """Turn PatchctlError into one line on stderr and its exit code; tracebacks only with --debug."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        app: App | None = ctx.find_object(App)
        try:
            return func(*args, **kwargs)
        except PatchctlError as exc:
            if app is not None and app.debug:
                raise
            click.echo(f"patchctl: error: {one_line(exc.message)}", err=True)
            ctx.exit(exc.code)
        except KeyboardInterrupt:
            click.echo("patchctl: interrupted", err=True)
            ctx.exit(130)

    return wrapper  # type: ignore[return-value]  # the wrapper keeps func's signature (functools.wraps)


def json_option(func: F) -> F:
    """Let --json also follow the subcommand (``patchctl scan --json``)."""

    def callback(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            ctx.ensure_object(App).json_output = True

    return click.option(
        "--json",
        "json_sub",
        is_flag=True,
        expose_value=False,
        callback=callback,
        help="Machine-readable JSON on stdout.",
    )(func)


def _override(key: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        app = ctx.find_object(App)  # None only while the shell completes a command line
        if value is not None and app is not None:
            app.overrides[key] = value

    return callback


def complete_limit(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
    """Shell completion of ``--limit``: the host and group names of the inventory the command
    line (or the configuration) names; the last term of a ``a,b`` union is the one completed.
    Nothing is offered when the inventory cannot be read: completion never prints an error."""
    head, _, term = incomplete.rpartition(",")
    prefix = f"{head}," if head else ""
    bang = "!" if term.startswith("!") else ("&" if term.startswith("&") else "")
    term = term[len(bang) :]
    given = ctx.find_root().params.get("inventory")
    try:
        from patchctl.scan import inventory_names

        names = inventory_names(Config.load({"inventory": given} if given else {}).inventory)
    except Exception:  # completion offers nothing rather than a traceback in the shell
        return []
    return [f"{prefix}{bang}{n}" for n in names if n.startswith(term)]


def limit_option(func: F) -> F:
    """--limit/-l PATTERN, an Ansible host pattern, completed from the inventory's names."""
    return click.option(
        "--limit",
        "-l",
        metavar="PATTERN",
        shell_complete=complete_limit,
        help="Only hosts matching this Ansible host pattern.",
    )(func)


def inventory_option(func: F) -> F:
    """-i/--inventory and --db also after the subcommand (``patchctl scan -i INV``)."""
    func = click.option(
        "-i",
        "--inventory",
        "inventory_sub",
        metavar="PATH",
        expose_value=False,
        callback=_override("inventory"),
        help="Inventory file or directory (env PATCHCTL_INVENTORY).",
    )(func)
    return db_option(func)


def db_option(func: F) -> F:
    return click.option(
        "--db",
        "db_sub",
        metavar="URL",
        expose_value=False,
        callback=_override("db"),
        help="Store URL (env PATCHCTL_DB).",
    )(func)


def policy_option(func: F) -> F:
    """--policy also after the subcommand (``patchctl updates --policy FILE``)."""
    return click.option(
        "--policy",
        "policy_sub",
        metavar="PATH",
        expose_value=False,
        callback=_override("policy"),
        help="Policy file (env PATCHCTL_POLICY).",
    )(func)


def print_table(app: App, table: Table) -> None:
    """Print a table; its text cells (host names, update titles, errors: data from hosts and
    files) are shown as they are: rich markup in them prints literally and control characters
    are escaped (:func:`printable`). A cell that should be styled is given as a rich ``Text``."""
    for column in table.columns:
        column._cells = [Text(printable(c)) if isinstance(c, str) else c for c in column._cells]
    Console(highlight=False, width=None if sys.stdout.isatty() else 200).print(table)


def deploy_options(
    app: App, rollout_id: int | None, wave: str | None, live: LiveProgress | None = None
) -> DeployOptions:
    """A deploy's options from the configuration (``patchctl deploy``, ``rollout promote --deploy``);
    with a live display, each batch is named on it as it starts."""
    from patchctl.deploy import DeployOptions

    def on_batch(wave_name: str, number: int, batches: int) -> None:
        if live is not None:
            live.stage(f"wave {wave_name}, batch {number} of {batches}")

    cfg = app.config()
    return DeployOptions(
        inventory=cfg.inventory,
        db_url=cfg.db,
        clock=cfg.clock(),
        policy=app.policy(),
        rollout_id=rollout_id,
        wave=wave,
        notifier=app.notifier(),
        stale_days=cfg.stale_days,
        on_batch=on_batch if live is not None else None,
    )


def apply_progress(live: LiveProgress | None) -> Callable[[ApplyOutcome, int, int], None] | None:
    """A deploy's hosts counted on the live display as they answer."""
    if live is None:
        return None

    def progress(outcome: ApplyOutcome, done: int, total: int) -> None:
        live.host(outcome.status, done, total)

    return progress
