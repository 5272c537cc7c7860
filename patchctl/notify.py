"""Notifications: a webhook (JSON POST) and email (SMTP) when something needs a person.

The flows call one function::

    from patchctl import notify
    notify.send("wave.halted", {"rollout_id": 3, "wave": "pilot", "reason": "1 of 1 failed"}, config)

Events: ``wave.finished``, ``wave.halted``, ``incident.opened``, ``host.failed``. What is sent
and where comes from the config (``notify.*`` keys, see :mod:`patchctl.config`): nothing is
configured, nothing is sent. A delivery that fails never raises: :func:`send` returns one
:class:`Delivery` per channel tried, and a deploy goes on whether or not the webhook answered.

The webhook body (``Content-Type: application/json``)::

    {"schema": "patchctl.event/1", "event": "wave.halted", "at": "2025-03-14T09:00:00Z",
     "controller": "<host name of the control node>", "summary": "rollout 3: wave pilot halted: ...",
     "payload": {...what the flow passed...}}

with the headers ``X-Patchctl-Event`` and, when ``notify.webhook.secret`` is set,
``X-Patchctl-Signature: sha256=<hex HMAC-SHA256 of the body with the secret>``. The email has
the summary as its subject (prefixed ``[patchctl]``) and the same JSON in its text body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any, Protocol

from patchctl import __version__
from patchctl.rules.clock import iso_utc

WAVE_FINISHED = "wave.finished"
WAVE_HALTED = "wave.halted"
INCIDENT_OPENED = "incident.opened"
HOST_FAILED = "host.failed"
EVENTS = (WAVE_FINISHED, WAVE_HALTED, INCIDENT_OPENED, HOST_FAILED)
EVENT_SCHEMA = "patchctl.event/1"

# What a flow calls with (event, payload) to notify; the CLI's sends through :func:`send`.
Notifier = Callable[[str, dict[str, Any]], None]


class Settings(Protocol):
    """What :func:`send` reads: :class:`patchctl.config.Config` has it."""

    def value(self, name: str) -> Any: ...


@dataclass(frozen=True)
class Delivery:
    """The outcome of one channel: ``webhook`` or ``email``."""

    channel: str
    target: str  # the URL (without query) or the recipients
    ok: bool
    detail: str  # HTTP status / SMTP answer, or the error


def _get(payload: Mapping[str, Any], key: str, default: str = "?") -> str:
    value = payload.get(key)
    return default if value is None else str(value)


def summary(event: str, payload: Mapping[str, Any]) -> str:
    """One line for a subject or a chat message."""
    rollout = f"rollout {_get(payload, 'rollout_id')}"
    if event == WAVE_FINISHED:
        done = ""
        if payload.get("hosts_total") is not None:
            done = f" ({_get(payload, 'hosts_ok', '0')}/{_get(payload, 'hosts_total')} hosts ok)"
        return f"{rollout}: wave {_get(payload, 'wave')} finished{done}"
    if event == WAVE_HALTED:
        return f"{rollout}: wave {_get(payload, 'wave')} halted: {_get(payload, 'reason', 'no reason given')}"
    if event == INCIDENT_OPENED:
        on = f" on {payload['host']}" if payload.get("host") else ""
        return f"{rollout}: incident {_get(payload, 'incident_id')} opened{on}: {_get(payload, 'text', '')}"
    return f"host {_get(payload, 'host')} failed: {_get(payload, 'reason', 'no reason given')}"


def event_document(event: str, payload: Mapping[str, Any], at: datetime | None = None) -> dict[str, Any]:
    when = iso_utc(at or datetime.now(UTC))
    return {
        "schema": EVENT_SCHEMA,
        "event": event,
        "at": when,
        "controller": socket.gethostname(),
        "summary": summary(event, payload),
        "payload": dict(payload),
    }


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_webhook(url: str, doc: Mapping[str, Any], secret: str | None, timeout: float) -> Delivery:
    shown = url.split("?", 1)[0]
    if not url.startswith(("http://", "https://")):
        return Delivery("webhook", shown, False, "the URL must start with http:// or https://")
    body = json.dumps(doc, sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"patchctl/{__version__}",
        "X-Patchctl-Event": str(doc["event"]),
    }
    if secret:
        headers["X-Patchctl-Signature"] = signature(secret, body)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - scheme checked
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked above
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return Delivery("webhook", shown, False, f"HTTP {exc.code} {exc.reason}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Delivery("webhook", shown, False, f"cannot reach it: {reason}")
    return Delivery("webhook", shown, 200 <= status < 300, f"HTTP {status}")


def send_email(settings: Settings, doc: Mapping[str, Any], timeout: float) -> Delivery:
    host = str(settings.value("notify.email.smtp_host"))
    port = int(settings.value("notify.email.smtp_port"))
    to = list(settings.value("notify.email.to") or [])
    target = ", ".join(to)
    if not to:
        return Delivery("email", host, False, "notify.email.to names no recipient")
    msg = EmailMessage()
    msg["Subject"] = f"[patchctl] {doc['summary']}"
    msg["From"] = str(settings.value("notify.email.from"))
    msg["To"] = target
    msg["Message-ID"] = make_msgid(domain="patchctl")
    msg["X-Patchctl-Event"] = str(doc["event"])
    msg.set_content(f"{doc['summary']}\n\n{json.dumps(doc, indent=2, sort_keys=True)}\n")
    try:
        with smtplib.SMTP(host, port, timeout=timeout) as smtp:
            if settings.value("notify.email.starttls"):
                smtp.starttls(context=ssl.create_default_context())
            user = settings.value("notify.email.username")
            if user:
                smtp.login(str(user), str(settings.value("notify.email.password") or ""))
            refused = smtp.send_message(msg)
    except (smtplib.SMTPException, OSError) as exc:
        return Delivery("email", target, False, f"SMTP {host}:{port}: {exc}")
    if refused:
        return Delivery("email", target, False, f"refused: {', '.join(sorted(refused))}")
    return Delivery("email", target, True, f"sent through {host}:{port}")


def send(event: str, payload: Mapping[str, Any], config: Settings, *, at: datetime | None = None) -> list[Delivery]:
    """Notify every configured channel of ``event``; returns what each delivery did.

    ``payload`` must be JSON-able (ids, names, counts, reasons). Sends nothing when the event is
    not in ``notify.events`` or no channel is configured. ``at`` is the event's time (the
    flow's clock, which may be simulated); default now. Raises ValueError for an unknown event.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown notification event {event!r} (known: {', '.join(EVENTS)})")
    if event not in (config.value("notify.events") or []):
        return []
    doc = event_document(event, payload, at)
    timeout = float(config.value("notify.timeout"))
    out: list[Delivery] = []
    url = config.value("notify.webhook.url")
    if url:
        out.append(post_webhook(str(url), doc, config.value("notify.webhook.secret"), timeout))
    if config.value("notify.email.smtp_host"):
        out.append(send_email(config, doc, timeout))
    return out
