"""Fixtures general to every test suite. Keep this small: suite-specific fixtures live with the suite."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

# Variables that point patchctl at a user's real state; tests start without them.
PATCHCTL_ENV = (
    "PATCHCTL_CONFIG",
    "PATCHCTL_DB",
    "PATCHCTL_INVENTORY",
    "PATCHCTL_POLICY",
    "PATCHCTL_HOME",
)


@pytest.fixture
def patchctl_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated patchctl: state in ``tmp_path/home``, config under ``tmp_path/config``.

    Clears the ``PATCHCTL_*`` variables that would point at a real database, inventory, policy
    or config file. Lab and cache locations are left alone (the lab's image cache is expensive).
    """
    for name in PATCHCTL_ENV:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("PATCHCTL_HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return home


# A webhook receiver on loopback, for the notification tests (unit and lab).
@dataclass
class Inbox:
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 204


@pytest.fixture
def webhook() -> Iterator[tuple[str, Inbox]]:
    inbox = Inbox()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            inbox.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            self.send_response(inbox.status)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/patchctl?token=abc", inbox
    finally:
        server.shutdown()
        server.server_close()
