"""A private ``ssh-agent`` for one execution-node run.

The controller's SSH keys never leave it: each node run gets its own agent holding the targets'
keys, in a temporary directory, forwarded to the node (``ssh -A``) for the job's life and stopped
afterwards (:func:`private_agent`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from patchctl.errors import ConfigError


def wait_for_agent(agent: subprocess.Popen[bytes], sock: str, timeout: float = 15.0) -> None:
    """Until the agent accepts connections: its socket file exists from bind(), before listen(),
    so an ssh-add right then is refused (seen on a loaded machine)."""
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(sock)
                return
            except OSError as exc:
                if agent.poll() is not None:
                    raise ConfigError(f"ssh-agent for an execution node exited {agent.returncode}") from exc
                if time.monotonic() > deadline:
                    raise ConfigError(f"ssh-agent for an execution node does not answer on {sock}: {exc}") from exc
        time.sleep(0.02)


@contextmanager
def private_agent(keys: tuple[str, ...]) -> Iterator[dict[str, str]]:
    """A private ssh-agent holding ``keys``, for one node run: yields the environment that points
    ssh at it (``SSH_AUTH_SOCK``), or nothing when there are no keys."""
    if not keys:
        yield {}
        return
    with tempfile.TemporaryDirectory(prefix="patchctl-agent-") as tmp:
        sock = str(Path(tmp) / "agent.sock")
        agent = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL)
        try:
            wait_for_agent(agent, sock)
            env = {**os.environ, "SSH_AUTH_SOCK": sock}
            for key in keys:
                proc = subprocess.run(["ssh-add", "-q", key], env=env, capture_output=True, text=True, check=False)
                if proc.returncode != 0:
                    raise ConfigError(f"cannot load the SSH key {key} for an execution node: {proc.stderr.strip()}")
            yield {"SSH_AUTH_SOCK": sock}
        finally:
            agent.terminate()
            agent.wait(timeout=10)
