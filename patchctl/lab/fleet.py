"""The local lab fleet: real Debian 12 hosts on one machine, each in its own mount, PID, UTS and
IPC namespace with its own sshd on its own loopback address, and a signed apt repository.

This is the lab's lifecycle (``up``, ``status``, ``reset``, ``down``) and what can be read from a
running host; the faults that tests inject into it (power off, a killed sshd, a full disk, a
broken repository) are in :mod:`patchctl.lab.faults`. Nothing here touches the machine's network
beyond loopback, and nothing can reboot it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from patchctl import paths
from patchctl.errors import ConfigError, LabError
from patchctl.lab import image, repo, rpm

DEFAULT_SUBNET = "127.77"
REPO_PORT = 8080
REPO_NAME = "patchctl-repo"
MAX_HOSTS = 500
REQUIRED_TOOLS = ("debootstrap", "unshare", "ssh-keygen", "apt-ftparchive", "dpkg-deb", "gpg", "zstd", "tar", "chroot")


@dataclass(frozen=True)
class LabHost:
    name: str
    address: str
    port: int
    role: str  # server | client
    groups: tuple[str, ...]
    window: str | None
    pkg_mgr: str = "apt"  # apt | dnf | zypper: which image the host boots


@dataclass(frozen=True)
class HostStatus:
    name: str
    address: str
    port: int
    role: str
    desired: str
    running: bool
    reachable: bool
    pid: int | None
    boot_id: str | None


APT_SOURCES = "/etc/apt/sources.list.d/patchctl-lab.sources"


def apt_sources(path: str = "debian") -> str:
    """The apt source of a lab host: the lab repository (``path`` under the served directory),
    trusted only with the lab key."""
    return (
        "Types: deb\n"
        f"URIs: http://{REPO_NAME}:{REPO_PORT}/{path}\n"
        "Suites: bookworm bookworm-security\n"
        "Components: main\n"
        f"Signed-By: /usr/share/keyrings/{repo.KEYRING_NAME}\n"
    )


def rpm_url(path: str = rpm.REPO_SUBDIR) -> str:
    """The base URL of the lab's RPM repository (``path`` under the served directory)."""
    return f"http://{REPO_NAME}:{REPO_PORT}/{path}/"


# RPM-family hosts: name prefix and inventory groups per package manager.
RPM_HOSTS = {"dnf": ("dnf", ("dnf", "redhat")), "zypper": ("zyp", ("zypper", "suse"))}


def plan_hosts(count: int, subnet: str, port: int, dnf_hosts: int = 0, zypper_hosts: int = 0) -> list[LabHost]:
    """Name and place ``count`` apt hosts: the first half servers, the rest clients; the first server
    and the first client form the ``pilot`` wave. Then ``dnf_hosts`` and ``zypper_hosts`` RPM-family
    servers (``dnf-01``, ``zyp-01``, ...) in groups ``dnf``/``redhat`` and ``zypper``/``suse``."""
    if count < 0 or count > MAX_HOSTS:
        raise ConfigError(f"lab: --hosts must be between 0 and {MAX_HOSTS}, got {count}")
    if dnf_hosts < 0 or zypper_hosts < 0:
        raise ConfigError("lab: --dnf-hosts and --zypper-hosts must not be negative")
    if count + dnf_hosts + zypper_hosts < 1 or count + dnf_hosts + zypper_hosts > MAX_HOSTS:
        raise ConfigError(f"lab: the lab needs between 1 and {MAX_HOSTS} hosts in all")
    n_servers = (count + 1) // 2
    hosts: list[LabHost] = []
    for i in range(count):
        is_server = i < n_servers
        idx = i + 1 if is_server else i - n_servers + 1
        name = f"srv-{idx:02d}" if is_server else f"cli-{idx:02d}"
        address = f"{subnet}.{1 + i // 250}.{1 + i % 250}"
        groups = ["servers" if is_server else "clients", "apt", "debian"]
        if idx == 1:
            groups.append("pilot")
        hosts.append(
            LabHost(
                name=name,
                address=address,
                port=port,
                role="server" if is_server else "client",
                groups=tuple(groups),
                window="lab-nightly" if is_server else None,
            )
        )
    for pkg_mgr, n in (("dnf", dnf_hosts), ("zypper", zypper_hosts)):
        prefix, groups_rpm = RPM_HOSTS[pkg_mgr]
        for j in range(n):
            i = len(hosts)
            hosts.append(
                LabHost(
                    name=f"{prefix}-{j + 1:02d}",
                    address=f"{subnet}.{1 + i // 250}.{1 + i % 250}",
                    port=port,
                    role="server",
                    groups=("servers", *groups_rpm),
                    window="lab-nightly",
                    pkg_mgr=pkg_mgr,
                )
            )
    return hosts


def base_dir_name(pkg_mgr: str) -> str:
    """The lower layer a host of ``pkg_mgr`` boots from, inside the lab directory."""
    return "base" if pkg_mgr == "apt" else f"base-{pkg_mgr}"


def _port_free(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # as the servers do: a listener still fails the bind, TIME-WAIT left by a lab just stopped does not
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def ssh_banner(address: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            out.extend(int(x) for x in text)
    except OSError:
        pass
    return out


class Lab:
    """One lab, kept in ``lab_dir`` (default ``$PATCHCTL_HOME/lab``)."""

    def __init__(self, lab_dir: Path | None = None, cache_dir: Path | None = None) -> None:
        self.dir = (lab_dir or paths.lab_dir()).resolve()
        self.cache_dir = cache_dir or paths.cache_dir()

    # -- files -----------------------------------------------------------------------------------
    @property
    def inventory_path(self) -> Path:
        return self.dir / "inventory.yml"

    @property
    def key_path(self) -> Path:
        return self.dir / "ssh" / "id_ed25519"

    @property
    def known_hosts_path(self) -> Path:
        return self.dir / "ssh" / "known_hosts"

    @property
    def init_path(self) -> Path:
        return self.dir / "patchctl-lab-init"

    def state(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads((self.dir / "lab.json").read_text())
        except (OSError, ValueError):
            return None
        return data

    def hosts(self) -> list[LabHost]:
        state = self.state()
        if not state:
            return []
        return [
            LabHost(
                h["name"],
                h["address"],
                int(h["port"]),
                h["role"],
                tuple(h["groups"]),
                h.get("window"),
                h.get("pkg_mgr", "apt"),
            )
            for h in state["hosts"]
        ]

    def host(self, name: str) -> LabHost:
        for h in self.hosts():
            if h.name == name:
                return h
        raise ConfigError(f"lab: no host named {name!r} in {self.dir / 'lab.json'}")

    def subnet(self) -> str | None:
        try:
            return (self.dir / "subnet").read_text().strip() or None
        except OSError:
            return None

    def supervisor_pid(self) -> int | None:
        try:
            pid = int((self.dir / "supervisor.pid").read_text())
        except (OSError, ValueError):
            return None
        if _pid_alive(pid) and "patchctl.lab.supervisor" in _cmdline(pid):
            return pid
        return None

    def is_up(self) -> bool:
        return self.supervisor_pid() is not None

    # -- up ----------------------------------------------------------------------------------------
    def preflight(self) -> None:
        if os.geteuid() != 0:
            raise LabError("lab: needs root (mount and PID namespaces, overlay mounts)")
        missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
        if missing:
            raise LabError(f"lab: missing tools: {', '.join(missing)} (run 'make deps')")

    def up(
        self,
        count: int,
        subnet: str = DEFAULT_SUBNET,
        wait: float = 240.0,
        dnf_hosts: int = 0,
        zypper_hosts: int = 0,
    ) -> list[LabHost]:
        if not subnet.startswith("127.") or len(subnet.split(".")) != 2:
            raise ConfigError(f"lab: --subnet must look like 127.N (loopback only), got {subnet!r}")
        state = self.state()
        if self.is_up() and state:
            wanted = {"apt": count, "dnf": dnf_hosts, "zypper": zypper_hosts}
            have = {mgr: sum(1 for h in self.hosts() if h.pkg_mgr == mgr) for mgr in wanted}
            if have == wanted:
                self.wait_reachable(wait)
                return self.hosts()
            raise LabError(
                f"lab: already up with {len(state['hosts'])} hosts in {self.dir}; run 'patchctl lab down' first"
            )
        self.preflight()
        if dnf_hosts or zypper_hosts:
            rpm.check_tools()
        self.down(quiet=True)
        self.dir.mkdir(parents=True, exist_ok=True)

        ssh_port = 22 if _port_free(f"{subnet}.1.1", 22) else 2222
        hosts = plan_hosts(count, subnet, ssh_port, dnf_hosts, zypper_hosts)
        repo_addr = f"{subnet}.0.1"
        for other in running_labs():
            if other.dir != self.dir and other.subnet() == subnet:
                raise LabError(
                    f"lab: another lab is up on subnet {subnet} in {other.dir}; stop it or pick another --subnet"
                )
        if not _port_free(repo_addr, REPO_PORT):
            raise LabError(f"lab: {repo_addr}:{REPO_PORT} is in use; is another lab up on subnet {subnet}?")

        tarball = image.build_image(self.cache_dir)
        image.extract(tarball, self.dir / "base")
        self._ssh_key()
        arch = subprocess.run(
            ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
        ).stdout.strip()
        keyring = repo.build_repo(self.dir / "repo", self.dir / "repo-gnupg", arch)
        self._prepare_base(keyring, repo_addr)
        variants = [mgr for mgr in ("dnf", "zypper") if any(h.pkg_mgr == mgr for h in hosts)]
        if variants:
            rpm.build_repo(self.dir / "repo", self.dir / "repo-gnupg")
        for variant in variants:
            root = self.dir / base_dir_name(variant)
            image.extract(rpm.build_image(self.cache_dir, variant), root)
            self._prepare_common(root, repo_addr)
            url = rpm_url()
            rpm.prepare_root(root, variant, url, rpm.base_rpms(self.dir / "repo"), self.dir / "repo" / rpm.KEY_FILE)

        self.init_path.write_text(resources.files("patchctl.lab").joinpath("init.sh").read_text())
        self.init_path.chmod(0o755)
        shutil.rmtree(self.dir / "hosts", ignore_errors=True)
        for host in hosts:
            self._make_host(host)
        self._write_known_hosts(hosts)
        self._write_inventory(hosts)
        state = {
            "created_at": datetime.now(UTC).isoformat(),
            "subnet": subnet,
            "repo": {"address": repo_addr, "port": REPO_PORT},
            "hosts": [asdict(h) for h in hosts],
        }
        (self.dir / "lab.json").write_text(json.dumps(state, indent=2))
        # kept after 'down', so that leftovers() knows which addresses to check
        (self.dir / "subnet").write_text(subnet + "\n")
        self._start_supervisor()
        self.wait_reachable(wait)
        return hosts

    def _ssh_key(self) -> None:
        if self.key_path.exists():
            return
        self.key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "patchctl-lab-controller", "-f", str(self.key_path)],
            check=True,
            capture_output=True,
        )

    def _prepare_base(self, keyring: Path, repo_addr: str) -> None:
        base = self.dir / "base"
        shutil.copy(keyring, base / "usr/share/keyrings" / repo.KEYRING_NAME)
        (base / "etc/apt/sources.list").unlink(missing_ok=True)
        for old in (base / "etc/apt/sources.list.d").glob("*"):
            old.unlink()
        (base / APT_SOURCES.lstrip("/")).write_text(apt_sources())
        self._prepare_common(base, repo_addr)
        debs = repo.base_debs(self.dir / "repo")
        staging = base / "tmp/patchctl-base-debs"
        staging.mkdir(parents=True, exist_ok=True)
        for deb in debs:
            shutil.copy(deb, staging / deb.name)
        proc = subprocess.run(
            ["chroot", str(base), "dpkg", "-i", *[f"/tmp/patchctl-base-debs/{d.name}" for d in debs]],  # noqa: S108 - inside the chroot
            capture_output=True,
            text=True,
            check=False,
        )
        shutil.rmtree(staging, ignore_errors=True)
        if proc.returncode != 0:
            raise LabError(f"lab: installing the base packages failed: {proc.stderr.strip().splitlines()[-1:]}")

    def _prepare_common(self, base: Path, repo_addr: str) -> None:
        """What every lower layer needs: the repository's name, the controller's key."""
        (base / "etc/hosts").write_text(
            f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n{repo_addr}\t{REPO_NAME}\n"
        )
        ssh_dir = base / "root/.ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        (ssh_dir / "authorized_keys").write_text(self.key_path.with_suffix(".pub").read_text())
        (ssh_dir / "authorized_keys").chmod(0o600)

    def _make_host(self, host: LabHost, power_on: bool = True) -> None:
        hdir = self.dir / "hosts" / host.name
        upper = hdir / "upper"
        for sub in ("etc/ssh/sshd_config.d", "var/lib/patchctl-lab"):
            (upper / sub).mkdir(parents=True, exist_ok=True)
        (hdir / "work").mkdir(exist_ok=True)
        (hdir / "merged").mkdir(exist_ok=True)
        (upper / "etc/hostname").write_text(f"{host.name}\n")
        (upper / "etc/machine-id").write_text(os.urandom(16).hex() + "\n")
        key = upper / "etc/ssh/ssh_host_ed25519_key"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{host.name}", "-f", str(key)],
            check=True,
            capture_output=True,
        )
        (upper / "etc/ssh/sshd_config.d/patchctl-lab.conf").write_text(
            f"ListenAddress {host.address}:{host.port}\n"
            "HostKey /etc/ssh/ssh_host_ed25519_key\n"
            "PermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n"
            "UseDNS no\n"
            "PrintMotd no\n"
            "MaxStartups 200\n"
            "MaxSessions 100\n"
        )
        if power_on:
            (hdir / "desired").write_text("on\n")

    def _write_known_hosts(self, hosts: list[LabHost]) -> None:
        lines = []
        for host in hosts:
            pub = (self.dir / "hosts" / host.name / "upper/etc/ssh/ssh_host_ed25519_key.pub").read_text().split()
            target = host.address if host.port == 22 else f"[{host.address}]:{host.port}"
            lines.append(f"{target} {pub[0]} {pub[1]}")
        self.known_hosts_path.write_text("\n".join(lines) + "\n")

    def _write_inventory(self, hosts: list[LabHost]) -> None:
        def members(group: str) -> dict[str, None]:
            return {h.name: None for h in hosts if group in h.groups}

        inventory = {
            "all": {
                "vars": {
                    "ansible_user": "root",
                    "ansible_ssh_private_key_file": str(self.key_path),
                    "ansible_ssh_common_args": (
                        f"-o UserKnownHostsFile={self.known_hosts_path} -o StrictHostKeyChecking=yes"
                    ),
                    "ansible_python_interpreter": "/usr/bin/python3",
                    # the lab's packages are tiny: its scans also verify every pending package file
                    "patch_scan_linux_verify_downloads": True,
                },
                "hosts": {
                    h.name: {
                        "ansible_host": h.address,
                        "ansible_port": h.port,
                        "patch_role": h.role,
                        **({"patch_window": h.window} if h.window else {}),
                    }
                    for h in hosts
                },
                "children": {
                    "servers": {"hosts": members("servers")},
                    "clients": {"hosts": members("clients")},
                    "pilot": {"hosts": members("pilot")},
                    "apt": {"hosts": members("apt")},
                    "debian": {"hosts": members("debian")},
                    "dnf": {"hosts": members("dnf")},
                    "redhat": {"hosts": members("redhat")},
                    "zypper": {"hosts": members("zypper")},
                    "suse": {"hosts": members("suse")},
                },
            }
        }
        header = "# Written by 'patchctl lab up': the local lab fleet. Rewritten on every 'lab up'.\n"
        self.inventory_path.write_text(header + yaml.safe_dump(inventory, sort_keys=False))

    def _start_supervisor(self) -> None:
        (self.dir / "stop").unlink(missing_ok=True)
        log = open(self.dir / "supervisor.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            env = dict(os.environ)
            pkg_parent = str(Path(__file__).resolve().parents[2])
            env["PYTHONPATH"] = pkg_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
            # setsid --fork: the supervisor is detached from us (new session, re-parented to init),
            # so it outlives this command and never becomes our zombie.
            subprocess.run(
                ["setsid", "--fork", sys.executable, "-m", "patchctl.lab.supervisor", str(self.dir)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                close_fds=True,
                cwd="/",
                env=env,
                check=True,
            )
        finally:
            log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.supervisor_pid():
                return
            time.sleep(0.05)
        raise LabError(f"lab: the supervisor did not start; see {self.dir / 'supervisor.log'}")

    def wait_reachable(self, timeout: float, names: list[str] | None = None) -> None:
        pending = {h.name: h for h in self.hosts() if names is None or h.name in names}
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for name, host in list(pending.items()):
                if ssh_banner(host.address, host.port, timeout=0.5):
                    pending.pop(name)
            if pending:
                time.sleep(0.1)
        if pending:
            raise LabError(
                f"lab: hosts did not come up within {timeout:.0f}s: {', '.join(sorted(pending))}; "
                f"see {self.dir / 'hosts'}/NAME/console.log"
            )

    # -- status --------------------------------------------------------------------------------
    def init_pid(self, name: str) -> int | None:
        try:
            upid = int((self.dir / "hosts" / name / "pid").read_text())
        except (OSError, ValueError):
            return None
        for child in _children(upid):
            if "patchctl-lab-init" in _cmdline(child):
                return child
        return None

    def boot_id(self, name: str) -> str | None:
        pid = self.init_pid(name)
        if pid is None:
            return None
        path = (
            Path(f"/proc/{pid}/root")
            / str(self.dir / "hosts" / name / "merged").lstrip("/")
            / "run/patchctl-lab/boot_id"
        )
        try:
            return path.read_text().strip()
        except OSError:
            return None

    def status(self) -> list[HostStatus]:
        out = []
        up = self.is_up()
        for host in self.hosts():
            hdir = self.dir / "hosts" / host.name
            pid = self.init_pid(host.name) if up else None
            out.append(
                HostStatus(
                    name=host.name,
                    address=host.address,
                    port=host.port,
                    role=host.role,
                    desired=(hdir / "desired").read_text().strip() if (hdir / "desired").exists() else "off",
                    running=pid is not None,
                    reachable=up and ssh_banner(host.address, host.port, timeout=0.5),
                    pid=pid,
                    boot_id=self.boot_id(host.name) if pid else None,
                )
            )
        return out

    # -- inside a running host -------------------------------------------------------------------
    def host_pids(self, name: str) -> list[int]:
        """Every process inside the host's PID namespace (its PID 1 included)."""
        init = self.init_pid(name)
        if init is None:
            return []
        try:
            ns = os.readlink(f"/proc/{init}/ns/pid")
        except OSError:
            return []
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.readlink(entry / "ns/pid") == ns:
                        pids.append(int(entry.name))
                except OSError:
                    continue
        return pids

    def host_path(self, name: str, path: str) -> Path:
        """``path`` inside the running host ``name``, seen from this machine (through its PID 1)."""
        if not path.startswith("/") or ".." in path.split("/"):
            raise ConfigError(f"lab: need an absolute path without '..', got {path!r}")
        init = self.init_pid(name)
        if init is None:
            raise LabError(f"lab: {name} is not running")
        merged = self.dir / "hosts" / name / "merged"
        return Path(f"/proc/{init}/root") / str(merged).lstrip("/") / path.lstrip("/")

    # -- down / reset -----------------------------------------------------------------------------
    def stray_pids(self) -> list[int]:
        """Processes this lab started that are still alive (supervisor, hosts)."""
        marker_init = str(self.init_path)
        marker_sup = f"patchctl.lab.supervisor {self.dir}"
        out = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            cmd = _cmdline(int(entry.name))
            if marker_init in cmd or marker_sup in cmd:
                out.append(int(entry.name))
        return out

    def down(self, quiet: bool = False, remove: bool = True) -> None:
        pid = self.supervisor_pid()
        if pid is not None:
            (self.dir / "stop").write_text("stop\n")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        # Whatever survived (a supervisor killed -9 leaves its hosts running): kill it.
        for _ in range(50):
            stray = self.stray_pids()
            if not stray:
                break
            for spid in stray:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(spid, signal.SIGKILL)
            time.sleep(0.1)
        if self.stray_pids():
            raise LabError(f"lab: processes still running after down: {self.stray_pids()}")
        (self.dir / "stop").unlink(missing_ok=True)
        (self.dir / "supervisor.pid").unlink(missing_ok=True)
        if remove and self.dir.exists():
            subs = ("hosts", "base", "base.tmp", "repo", "repo-gnupg")
            for sub in subs + tuple(f"{base_dir_name(m)}{t}" for m in ("dnf", "zypper") for t in ("", ".tmp")):
                shutil.rmtree(self.dir / sub, ignore_errors=True)
            for name in ("lab.json", "inventory.yml", "patchctl-lab-init"):
                (self.dir / name).unlink(missing_ok=True)

    def reset(self, wait: float = 240.0) -> None:
        """Every host back to its pristine state (its overlay emptied), then booted again."""
        if not self.is_up():
            raise LabError("lab: not up; run 'patchctl lab up' first")
        hosts = self.hosts()
        for host in hosts:
            (self.dir / "hosts" / host.name / "desired").write_text("off\n")
        deadline = time.monotonic() + 60
        while any(self.init_pid(h.name) for h in hosts) and time.monotonic() < deadline:
            time.sleep(0.05)
        still = [h.name for h in hosts if self.init_pid(h.name)]
        if still:
            raise LabError(f"lab: hosts did not power off for the reset: {', '.join(still)}")
        for host in hosts:
            hdir = self.dir / "hosts" / host.name
            key = (hdir / "upper/etc/ssh").glob("ssh_host_ed25519_key*")
            saved = {p.name: p.read_bytes() for p in key}
            shutil.rmtree(hdir, ignore_errors=True)
            # made powered off: it boots only once its old host key is back (known_hosts has it)
            self._make_host(host, power_on=False)
            for fname, data in saved.items():
                (hdir / "upper/etc/ssh" / fname).write_bytes(data)
        for host in hosts:
            (self.dir / "hosts" / host.name / "desired").write_text("on\n")
        self.wait_reachable(wait)

    def leftovers(self) -> list[str]:
        """What a lab left behind on this machine: processes, listening sockets, mounts."""
        found = [f"process {pid}: {_cmdline(pid)[:80]}" for pid in self.stray_pids()]
        subnet = self.subnet()  # None: this lab never got as far as choosing its addresses
        if subnet:
            found += [f"listening socket {sock}" for sock in listening_on(subnet)]
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            if str(self.dir) in line:
                found.append(f"mount {line.split()[4]}")
        return found


def running_labs() -> list[Lab]:
    """Every lab whose supervisor runs on this machine (whatever directory it lives in)."""
    labs = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        args = _cmdline(int(entry.name)).split()
        if "patchctl.lab.supervisor" in args:
            idx = args.index("patchctl.lab.supervisor")
            if idx + 1 < len(args):
                labs.append(Lab(lab_dir=Path(args[idx + 1])))
    return labs


def listening_on(subnet: str) -> list[str]:
    """TCP sockets listening on addresses in ``subnet`` (127.N.x.y), from /proc/net/tcp."""
    first = int(subnet.split(".")[1])
    out: list[str] = []
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return out
    for line in lines:
        fields = line.split()
        local, st = fields[1], fields[3]
        if st != "0A":  # LISTEN
            continue
        ip_hex, port_hex = local.split(":")
        octets = [int(ip_hex[i : i + 2], 16) for i in range(6, -2, -2)]
        if octets[0] == 127 and octets[1] == first:
            out.append(f"{'.'.join(map(str, octets))}:{int(port_hex, 16)}")
    return out
