"""The lab supervisor: one detached process per lab that boots every host in its own namespaces,
restarts a host when it reboots, keeps it off when powered off, and serves the apt repository.

Run as ``python -m patchctl.lab.supervisor LAB_DIR``; :mod:`patchctl.lab.fleet` starts and stops it.
Control is by files: ``hosts/NAME/desired`` holds ``on`` or ``off``; ``stop`` ends the lab.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

POLL = 0.1


# Every request the lab repository answered, one line each: "STATUS PATH" (what tests count).
REQUEST_LOG = "repo-requests.log"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    request_log: Path | None = None
    _log_lock = threading.Lock()

    def log_message(self, format: str, *args: Any) -> None:
        return

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if self.request_log is None:
            return
        with self._log_lock, self.request_log.open("a", encoding="utf-8") as out:
            out.write(f"{int(code) if isinstance(code, int) else code} {self.path}\n")


def _read(path: Path, default: str = "") -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return default


def _log(msg: str) -> None:
    sys.stderr.write(f"{time.strftime('%H:%M:%S')} {msg}\n")
    sys.stderr.flush()


class Supervisor:
    def __init__(self, lab_dir: Path) -> None:
        self.lab_dir = lab_dir
        self.state: dict[str, Any] = json.loads((lab_dir / "lab.json").read_text())
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = False
        self.unshare_time = Path("/proc/self/ns/time").exists()

    # -- hosts --------------------------------------------------------------------------------
    def host_dir(self, name: str) -> Path:
        return self.lab_dir / "hosts" / name

    def start_host(self, host: dict[str, Any]) -> None:
        name = host["name"]
        hdir = self.host_dir(name)
        (hdir / "merged").mkdir(exist_ok=True)
        # overlayfs wants an empty work dir at mount time
        work = hdir / "work"
        subprocess.run(["rm", "-rf", str(work)], check=False)
        try:
            work.mkdir()
        except FileExistsError:
            # The last boot's overlay is still being torn down (its work dir busy): the next
            # tick tries again, instead of the supervisor dying with every host.
            _log(f"{name}: work dir still busy, starting on the next tick")
            return
        cmd = ["unshare", "--mount", "--pid", "--uts", "--ipc", "--fork", "--kill-child", "--propagation", "private"]
        if self.unshare_time:
            uptime = float(_read(Path("/proc/uptime"), "0 0").split()[0])
            cmd += ["--time", "--boottime", str(-int(uptime))]
        cmd += [
            "/bin/sh",
            str(self.lab_dir / "patchctl-lab-init"),
            # apt hosts boot from base/, RPM-family hosts from base-dnf/ or base-zypper/
            str(self.lab_dir / ("base" if host.get("pkg_mgr", "apt") == "apt" else f"base-{host['pkg_mgr']}")),
            str(hdir / "upper"),
            str(work),
            str(hdir / "merged"),
            name,
        ]
        log = open(hdir / "console.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            self.procs[name] = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        finally:
            log.close()
        (hdir / "pid").write_text(str(self.procs[name].pid))
        _log(f"{name}: booted (pid {self.procs[name].pid})")

    def stop_host(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        # --kill-child: killing unshare kills the host's PID 1 and so its whole namespace
        proc.kill()
        proc.wait()
        (self.host_dir(name) / "pid").unlink(missing_ok=True)
        _log(f"{name}: powered off")

    def tick(self) -> None:
        for host in self.state["hosts"]:
            name = host["name"]
            hdir = self.host_dir(name)
            # No desired file: the host is being (re)made by 'lab reset' or 'lab up': leave it off.
            desired = _read(hdir / "desired", "off")
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is not None:
                # The host went down by itself: a reboot, a poweroff, or a crash.
                self.procs.pop(name)
                (hdir / "pid").unlink(missing_ok=True)
                request_file = hdir / "upper" / "var/lib/patchctl-lab/power"
                request = _read(request_file)
                request_file.unlink(missing_ok=True)
                if request == "poweroff":
                    (hdir / "desired").write_text("off\n")
                    desired = "off"
                    _log(f"{name}: shut down by itself")
                else:
                    _log(f"{name}: went down ({request or 'exit ' + str(proc.returncode)}), restarting")
                proc = None
            if desired == "on" and proc is None:
                try:
                    self.start_host(host)
                except OSError as exc:
                    # One host that cannot start (its directory half-made, a busy mount) must not
                    # take the supervisor, and so every other host, down with it: retried next tick.
                    _log(f"{name}: could not boot ({exc}); retrying")
            elif desired == "off" and proc is not None:
                self.stop_host(name)

    # -- repository ---------------------------------------------------------------------------
    def serve_repo(self) -> http.server.ThreadingHTTPServer:
        repo = self.state["repo"]
        _QuietHandler.request_log = self.lab_dir / REQUEST_LOG
        handler = functools.partial(_QuietHandler, directory=str(self.lab_dir / "repo"))
        server = http.server.ThreadingHTTPServer((repo["address"], int(repo["port"])), handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        return server

    def run(self) -> int:
        def on_term(_signum: int, _frame: object) -> None:
            self.stopping = True

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        server = self.serve_repo()
        (self.lab_dir / "supervisor.pid").write_text(str(os.getpid()))
        _log(f"supervisor up (pid {os.getpid()}), repo on {self.state['repo']['address']}:{self.state['repo']['port']}")
        try:
            while not self.stopping and not (self.lab_dir / "stop").exists():
                self.tick()
                time.sleep(POLL)
        finally:
            for name in list(self.procs):
                self.stop_host(name)
            server.shutdown()
            server.server_close()
            (self.lab_dir / "supervisor.pid").unlink(missing_ok=True)
            _log("supervisor down")
        return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m patchctl.lab.supervisor LAB_DIR\n")
        return 2
    return Supervisor(Path(args[0])).run()


if __name__ == "__main__":
    raise SystemExit(main())
