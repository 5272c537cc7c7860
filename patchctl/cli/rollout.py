"""patchctl rollout create | status | promote | list."""

from __future__ import annotations

import sys
from contextlib import nullcontext

import click
from rich.table import Table

from patchctl.cli.app import (
    App,
    apply_progress,
    db_option,
    deploy_options,
    handle_errors,
    inventory_option,
    json_option,
    policy_option,
    print_table,
)


@click.group()
def rollout() -> None:
    """Frozen sets of approved updates moving through waves (pilot, then fleet)."""


@rollout.command("create")
@policy_option
@db_option
@json_option
@click.pass_obj
@handle_errors
def rollout_create(app: App) -> None:
    """Freeze the updates approved now into a new numbered rollout."""
    from patchctl.rollouts import create_rollouts

    cfg = app.config()
    made = create_rollouts(cfg.db, app.policy(), cfg.clock().now())
    if app.json_output:
        # the last rollout made at the top (the usual one), every one made in "rollouts"
        app.emit_json({**made[-1].as_dict(), "rollouts": [m.as_dict() for m in made]})
        return
    for m in made:
        lane = f" (fast lane: the {m.waves[0].name} wave bakes {m.waves[0].bake_days:g} days)" if m.fast_lane else ""
        waves = " -> ".join(w.name for w in m.waves)
        click.echo(f"rollout {m.id}: {len(m.updates)} updates frozen, waves {waves}{lane}")
        for u in m.updates:
            click.echo(f"  {u.uid}" + (" (major)" if u.major else ""))


@rollout.command("list")
@db_option
@json_option
@click.pass_obj
@handle_errors
def rollout_list(app: App) -> None:
    """Every rollout's id."""
    from patchctl.rollouts import rollout_list as ids

    found = ids(app.config().db)
    if app.json_output:
        app.emit_json(found)
    else:
        for i in found:
            click.echo(str(i))


@rollout.command("status")
@click.argument("rollout_id", type=int, required=False)
@db_option
@json_option
@click.pass_obj
@handle_errors
def rollout_status(app: App, rollout_id: int | None) -> None:
    """Each wave's state (pending, deploying, baking until T, done, halted) and per-host results."""
    from patchctl.rollouts import rollout_status as status

    cfg = app.config()
    st = status(cfg.db, rollout_id, cfg.clock().now(), app.policy())
    data = st.as_dict()
    if app.json_output:
        app.emit_json(data)
        return
    click.echo(
        f"rollout {data['id']}: created {data['created_at'][:16]} by {data['created_by']}, "
        f"{len(data['updates'])} updates: {', '.join(data['updates'])}"
    )
    waves = Table(title=f"waves at {data['now'][:16]}")
    for col in ("wave", "hosts", "state", "ok", "failed", "blocked", "pending", "bake", "until"):
        waves.add_column(col)
    for w in data["waves"]:
        state = w["state"]
        until = w["bake_until"][:16] if w["bake_until"] else ""
        waves.add_row(
            w["name"],
            w["pattern"],
            state,
            str(w["hosts_ok"]),
            str(w["hosts_failed"]),
            str(w["hosts_blocked"]),
            str(w["hosts_pending"]) if w["hosts"] else "",
            f"{w['bake_days']:g}d",
            until if state in ("baking", "done") else "",
        )
    print_table(app, waves)
    if data["results"]:
        hosts = Table(title="hosts")
        for col in ("host", "wave", "result", "installed", "failed"):
            hosts.add_column(col)
        for h in data["results"]:
            failed = "; ".join(f"{uid}: {why}" for uid, why in h["failed"].items()) or (h["error"] or "")
            hosts.add_row(h["host"], h["wave"], h["status"], ", ".join(h["installed"]) or "-", failed)
        print_table(app, hosts)
    if data["follows"] is not None:
        click.echo(f"follow-up of rollout {data['follows']} (successors: repilot)")
    for b in data["blocked"]:
        follow = f"; follow-up rollout {b['follow_up_rollout']}" if b["follow_up_rollout"] is not None else ""
        click.echo(f"blocked: {b['host']} (rollout {b['rollout']}, {b['wave']}): {b['reason']}{follow}")
    for x in data["starved"]:
        click.echo(f"starved: {x['reason']}")
    for inc in data["open_incidents"]:
        click.echo(f"open incident {inc['id']}" + (f" on {inc['host']}" if inc["host"] else "") + f": {inc['text']}")
    promo = data["promotion"]
    click.echo(f"next: {promo['reason']}")


@rollout.command("promote")
@click.argument("rollout_id", type=int, required=False)
@click.option("--deploy", "and_deploy", is_flag=True, help="Deploy the promoted wave at once.")
@inventory_option
@json_option
@click.pass_obj
@handle_errors
def rollout_promote(app: App, rollout_id: int | None, and_deploy: bool) -> None:
    """Start the next wave if the previous one succeeded, baked and has no open incident (cron-safe).

    With --deploy, the promoted wave is deployed at once, its reboots included (as `patchctl deploy`).
    Exit 3 with the reason when the policy does not allow it yet.
    """
    from patchctl.rollouts import PromoteResult

    def say(result: PromoteResult) -> None:
        if app.json_output:
            return
        p = result.promotion
        if result.follow_up_of is not None:
            click.echo(
                f"rollout {result.rollout_id}: created as the follow-up of rollout {result.follow_up_of} "
                "(successors: repilot: the successors of its blocked updates, through the pilot first)"
            )
        if result.promoted and p.wave is not None:
            click.echo(f"rollout {result.rollout_id}: promoted wave {p.wave.wave.name}: {p.reason}")
        else:
            click.echo(f"rollout {result.rollout_id}: {p.reason}")

    if not and_deploy:
        from patchctl.rollouts import promote

        cfg = app.config()
        result = promote(cfg.db, rollout_id, cfg.clock().now(), app.policy())
        if app.json_output:
            app.emit_json(result.as_dict())
        say(result)
        return

    from patchctl.deploy import promote_and_deploy
    from patchctl.render.deploy import deploy_lines

    live = app.live("deploy")
    with live or nullcontext():
        _result, report = promote_and_deploy(
            deploy_options(app, rollout_id, None, live), progress=apply_progress(live), promoted=say
        )
    if report is None:
        return
    if app.json_output:
        app.emit_json(report.as_dict())
    else:
        for line in deploy_lines(report.as_dict(), quiet=app.quiet, only_not_ok=not app.shows_host("ok", live)):
            click.echo(line)
    sys.exit(report.exit_code)
