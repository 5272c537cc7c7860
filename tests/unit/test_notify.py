"""Notifications delivered to real servers on loopback: an HTTP server and a small SMTP server."""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import socket
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from patchctl import notify
from patchctl.cli import cli
from patchctl.config import Config
from tests.conftest import Inbox

AT = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)


@dataclass
class Mailbox:
    messages: list[dict[str, Any]] = field(default_factory=list)


class _SMTPHandler(socketserver.StreamRequestHandler):
    """Enough of RFC 5321 for smtplib: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""

    mailbox: Mailbox

    def _reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self._reply("220 test-smtp ready")
        sender, rcpts = "", []
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            cmd = raw.decode().rstrip("\r\n")
            verb = cmd.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self._reply("250-test-smtp" if verb == "EHLO" else "250 test-smtp")
                if verb == "EHLO":
                    self._reply("250 8BITMIME")
            elif verb == "MAIL":
                sender, rcpts = cmd.split(":", 1)[1].strip(), []
                self._reply("250 ok")
            elif verb == "RCPT":
                rcpts.append(cmd.split(":", 1)[1].strip().strip("<>"))
                self._reply("250 ok")
            elif verb == "DATA":
                self._reply("354 end with <CRLF>.<CRLF>")
                lines = []
                while True:
                    line = self.rfile.readline()
                    if line in (b".\r\n", b".\n", b""):
                        break
                    lines.append(line[1:] if line.startswith(b"..") else line)
                self.mailbox.messages.append({"from": sender, "to": rcpts, "data": b"".join(lines)})
                self._reply("250 queued")
            elif verb in ("RSET", "NOOP"):
                self._reply("250 ok")
            elif verb == "QUIT":
                self._reply("221 bye")
                return
            else:
                self._reply("502 not implemented")


@pytest.fixture
def smtp() -> Iterator[tuple[int, Mailbox]]:
    box = Mailbox()
    handler = type("Handler", (_SMTPHandler,), {"mailbox": box})
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], box
    finally:
        server.shutdown()
        server.server_close()


def _config(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "patchctl.yml"
    path.write_text(text, encoding="utf-8")
    return Config.load({}, environ={}, config_file=path)


def test_webhook_and_email_receive_the_event(
    tmp_path: Path, webhook: tuple[str, Inbox], smtp: tuple[int, Mailbox]
) -> None:
    url, inbox = webhook
    port, box = smtp
    cfg = _config(
        tmp_path,
        f"""
notify:
  webhook:
    url: "{url}"
    secret: s3cret
  email:
    smtp_host: 127.0.0.1
    smtp_port: {port}
    from: patchctl@ops.example
    to: [ops@example.org, oncall@example.org]
""",
    )
    payload = {"rollout_id": 3, "wave": "pilot", "reason": "1 of 1 hosts failed (max 0%)"}
    results = notify.send("wave.halted", payload, cfg, at=AT)
    assert [(r.channel, r.ok) for r in results] == [("webhook", True), ("email", True)], results

    (req,) = inbox.requests
    assert req["path"] == "/hooks/patchctl?token=abc"
    assert req["headers"]["Content-Type"] == "application/json"
    assert req["headers"]["X-Patchctl-Event"] == "wave.halted"
    expected_sig = "sha256=" + hmac.new(b"s3cret", req["body"], hashlib.sha256).hexdigest()
    assert req["headers"]["X-Patchctl-Signature"] == expected_sig
    doc = json.loads(req["body"])
    assert doc["schema"] == "patchctl.event/1"
    assert (doc["event"], doc["at"], doc["payload"]) == ("wave.halted", "2025-03-14T09:00:00Z", payload)
    assert doc["summary"] == "rollout 3: wave pilot halted: 1 of 1 hosts failed (max 0%)"
    assert results[0].target == url.split("?")[0]  # the token in the query is not shown

    (mail,) = box.messages
    assert mail["to"] == ["ops@example.org", "oncall@example.org"]
    msg = email.message_from_bytes(mail["data"], policy=email.policy.default)
    assert msg["Subject"] == "[patchctl] rollout 3: wave pilot halted: 1 of 1 hosts failed (max 0%)"
    assert msg["From"] == "patchctl@ops.example"
    assert msg["X-Patchctl-Event"] == "wave.halted"
    body = msg.get_body(("plain",))
    assert body is not None
    assert '"reason": "1 of 1 hosts failed (max 0%)"' in body.get_content()


@pytest.mark.parametrize(
    ("event", "payload", "summary"),
    [
        (
            "wave.finished",
            {"rollout_id": 2, "wave": "fleet", "hosts_ok": 9, "hosts_total": 10},
            "rollout 2: wave fleet finished (9/10 hosts ok)",
        ),
        (
            "incident.opened",
            {"rollout_id": 2, "incident_id": 5, "host": "web01", "text": "nginx down"},
            "rollout 2: incident 5 opened on web01: nginx down",
        ),
        ("host.failed", {"host": "db01", "reason": "postinst failed"}, "host db01 failed: postinst failed"),
    ],
)
def test_each_event_reaches_the_webhook(
    tmp_path: Path, webhook: tuple[str, Inbox], event: str, payload: dict[str, Any], summary: str
) -> None:
    url, inbox = webhook
    cfg = _config(tmp_path, f'notify:\n  webhook:\n    url: "{url}"\n')
    (result,) = notify.send(event, payload, cfg, at=AT)
    assert result.ok, result
    doc = json.loads(inbox.requests[0]["body"])
    assert (doc["event"], doc["summary"]) == (event, summary)
    assert "X-Patchctl-Signature" not in inbox.requests[0]["headers"]


def test_events_not_listed_are_not_sent(tmp_path: Path, webhook: tuple[str, Inbox]) -> None:
    url, inbox = webhook
    cfg = _config(tmp_path, f'notify:\n  events: [wave.halted]\n  webhook:\n    url: "{url}"\n')
    assert notify.send("host.failed", {"host": "a"}, cfg) == []
    assert inbox.requests == []


def test_nothing_configured_sends_nothing(tmp_path: Path) -> None:
    assert notify.send("host.failed", {"host": "a"}, _config(tmp_path, "")) == []


def test_unknown_event_is_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown notification event"):
        notify.send("wave.exploded", {}, _config(tmp_path, ""))


def test_failures_are_reported_not_raised(tmp_path: Path, webhook: tuple[str, Inbox]) -> None:
    url, inbox = webhook
    inbox.status = 500
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    cfg = _config(
        tmp_path,
        f'notify:\n  timeout: 3\n  webhook:\n    url: "{url}"\n'
        f"  email:\n    smtp_host: 127.0.0.1\n    smtp_port: {closed}\n    to: [a@example.org]\n",
    )
    hook, mail = notify.send("host.failed", {"host": "a", "reason": "x"}, cfg)
    assert (hook.ok, hook.detail) == (False, "HTTP 500 Internal Server Error")
    assert not mail.ok and f"127.0.0.1:{closed}" in mail.detail


def test_environment_overrides_the_file_for_notifications(tmp_path: Path, webhook: tuple[str, Inbox]) -> None:
    url, inbox = webhook
    path = tmp_path / "patchctl.yml"
    path.write_text('notify:\n  webhook:\n    url: "http://127.0.0.1:9/never"\n', encoding="utf-8")
    cfg = Config.load({}, environ={"PATCHCTL_NOTIFY_WEBHOOK_URL": url}, config_file=path)
    assert cfg.get("notify.webhook.url").source == "env:PATCHCTL_NOTIFY_WEBHOOK_URL"
    (result,) = notify.send("host.failed", {"host": "a"}, cfg)
    assert result.ok and len(inbox.requests) == 1


def test_cli_notify_test_uses_the_config_file(
    tmp_path: Path, patchctl_home: Path, smtp: tuple[int, Mailbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, box = smtp
    conf = tmp_path / "etc" / "patchctl.yml"
    conf.parent.mkdir()
    conf.write_text(
        f"notify:\n  email:\n    smtp_host: 127.0.0.1\n    smtp_port: {port}\n    to: [ops@example.org]\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("PATCHCTL_CONFIG", str(conf))
    result = CliRunner().invoke(cli, ["notify", "test", "--event", "host.failed", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [
        {"channel": "email", "target": "ops@example.org", "ok": True, "detail": f"sent through 127.0.0.1:{port}"}
    ]
    assert len(box.messages) == 1
    shown = CliRunner().invoke(cli, ["config", "show", "--json"]).output
    assert json.loads(shown)["notify.email.smtp_port"] == {"value": port, "source": f"file:{conf.resolve()}"}
