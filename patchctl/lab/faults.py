"""Faults injected into a running lab, for tests: a host powered off, an sshd killed, a full disk,
a broken repository.

Each helper acts on one host of a :class:`~patchctl.lab.fleet.Lab` and only inside that host (its
supervisor's desired state, its PID namespace, its mount namespace, its apt source): nothing here
touches the machine itself. A reset (``Lab.reset``) undoes every fault.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from patchctl.errors import ConfigError, LabError
from patchctl.lab import repo, rpm
from patchctl.lab.fleet import APT_SOURCES, Lab, apt_sources, rpm_url


def power_off(lab: Lab, name: str, timeout: float = 10.0) -> None:
    """Power the host off (its supervisor stops it and keeps it off) and wait until it is gone."""
    lab.host(name)
    (lab.dir / "hosts" / name / "desired").write_text("off\n")
    deadline = time.monotonic() + timeout
    while lab.init_pid(name) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    if lab.init_pid(name) is not None:
        raise LabError(f"lab: {name} did not power off within {timeout:.0f}s")


def power_on(lab: Lab, name: str, timeout: float = 120.0) -> None:
    """Power the host on again and wait until its sshd answers."""
    lab.host(name)
    (lab.dir / "hosts" / name / "desired").write_text("on\n")
    lab.wait_reachable(timeout, [name])


def kill_sshd(lab: Lab, name: str) -> None:
    """Kill the host's sshd alone: the host stays on but answers no SSH."""
    for pid in lab.host_pids(name):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if comm == "sshd":
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def mount_tmpfs(lab: Lab, name: str, path: str, size: str = "4k", mkdirs: tuple[str, ...] = ()) -> None:
    """A small tmpfs over ``path`` inside the host's own mount namespace: a full disk there.

    Made from this machine with ``nsenter`` into the host's mount namespace only (the
    machine's own mounts are never touched); it vanishes when the host powers off or resets.
    ``mkdirs`` are created inside it (e.g. apt's ``partial``).
    """
    if not path.startswith("/") or ".." in path.split("/"):
        raise ConfigError(f"lab: mount_tmpfs needs an absolute path without '..', got {path!r}")
    init = lab.init_pid(name)
    if init is None:
        raise LabError(f"lab: {name} is not running")
    target = lab.dir / "hosts" / name / "merged" / path.lstrip("/")
    # the paths are arguments of the script, never part of its text
    script = 'mount -t tmpfs -o "size=$1,mode=0755" patchctl-lab-full "$2" && shift 2 && for d; do mkdir "$d"; done'
    cmd = ["nsenter", "-t", str(init), "-m", "--", "sh", "-c", script, "sh", size, str(target)]
    cmd += [str(target / d) for d in mkdirs]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise LabError(f"lab: cannot mount a tmpfs over {path} in {name}: {proc.stderr.strip()}")


def break_repo(lab: Lab, name: str, kind: str) -> None:
    """Point the host's apt source (or dnf/zypper repository) at a broken copy of the lab
    repository (lab.repo.VARIANTS: unsigned, signed by an unknown key, or with tampered package
    files), until restore_repo or a reset. The other hosts keep the real one."""
    host = lab.host(name)
    if host.pkg_mgr == "apt":
        repo.build_variant(lab.dir / "repo", kind)
        lab.host_path(name, APT_SOURCES).write_text(apt_sources(f"{repo.VARIANTS_DIR}/{kind}/debian"))
        return
    rpm.build_variant(lab.dir / "repo", kind)
    path, text = rpm.repo_file(host.pkg_mgr, rpm_url(f"{repo.VARIANTS_DIR}/{kind}/{rpm.REPO_SUBDIR}"))
    lab.host_path(name, "/" + path).write_text(text)


def restore_repo(lab: Lab, name: str) -> None:
    """The host's apt source (or dnf/zypper repository) back to the real lab repository."""
    host = lab.host(name)
    if host.pkg_mgr == "apt":
        lab.host_path(name, APT_SOURCES).write_text(apt_sources())
        return
    path, text = rpm.repo_file(host.pkg_mgr, rpm_url())
    lab.host_path(name, "/" + path).write_text(text)
