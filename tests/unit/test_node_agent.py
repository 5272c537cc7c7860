"""The private ssh-agent of a node run is used only once it accepts connections.

Its socket file appears at bind(), before listen(): an ``ssh-add`` in between is refused
("Error connecting to agent: Connection refused"), which the node benchmark hit on a loaded
machine and which cost a whole node's hosts. These tests hold a real socket in exactly that state.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from patchctl.ansible.ssh_agent import wait_for_agent
from patchctl.errors import ConfigError


def test_waits_until_the_agent_listens(tmp_path: Path) -> None:
    path = str(tmp_path / "agent.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)  # the file exists now, but a connect is refused
    alive = subprocess.Popen(["sleep", "30"])
    timer = threading.Timer(0.4, server.listen)
    try:
        started = time.monotonic()
        timer.start()
        wait_for_agent(alive, path)
        assert time.monotonic() - started >= 0.35
    finally:
        timer.cancel()
        alive.kill()
        alive.wait()
        server.close()


def test_an_agent_that_died_is_an_error_not_a_wait(tmp_path: Path) -> None:
    path = str(tmp_path / "agent.sock")
    dead = subprocess.Popen(["false"])
    dead.wait()
    with pytest.raises(ConfigError, match="exited 1"):
        wait_for_agent(dead, path)


def test_an_agent_that_never_listens_times_out(tmp_path: Path) -> None:
    path = str(tmp_path / "agent.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        alive = subprocess.Popen(["sleep", "30"])
        try:
            with pytest.raises(ConfigError, match="does not answer"):
                wait_for_agent(alive, path, timeout=0.3)
        finally:
            alive.kill()
            alive.wait()
