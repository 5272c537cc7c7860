"""The lab's base image: one Debian 12 root made with debootstrap, cached as a zstd tarball.

The cached tarball is generic (no keys, no lab addresses); :func:`prepare_base` turns an
extracted copy into the lower layer of one lab (controller key, repository, demo packages).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from patchctl.errors import LabError

SUITE = "bookworm"
PACKAGES = (
    "python3",
    "python3-apt",
    "openssh-server",
    "apt",
    "ca-certificates",
    "procps",
    "iproute2",
)
# Bump when the recipe below changes so that an old cached image is not reused.
RECIPE_VERSION = "3"
POWER_COMMANDS = ("reboot", "shutdown", "halt", "poweroff")
MARKER = "/etc/patchctl-lab"

# The power stub: only ever signals the lab host's own PID 1 (the lab init), never anything else.
POWER_STUB = r"""#!/bin/sh
# patchctl lab power stub: restarts (or powers off) this lab host only.
if [ ! -f /etc/patchctl-lab ] || ! tr '\0' ' ' </proc/1/cmdline 2>/dev/null | grep -q patchctl-lab-init; then
    echo "$(basename "$0"): refusing: not running inside a patchctl lab host" >&2
    exit 1
fi
action=reboot
case "$(basename "$0")" in
    halt|poweroff) action=poweroff ;;
esac
for arg in "$@"; do
    case "$arg" in
        -c) exit 0 ;;
        -h|-P|--poweroff|--halt) action=poweroff ;;
        -r|--reboot) action=reboot ;;
    esac
done
mkdir -p /var/lib/patchctl-lab
echo "$action" > /var/lib/patchctl-lab/power
# Ansible runs this under `ssh -tt`: the SIGHUP that ends that session must not kill the pending
# reboot (a real shutdown hands it to init at once). HUP is ignored before the fork (inherited,
# so no race with the hangup) and the child gets a session of its own.
trap '' HUP
setsid sh -c 'sleep 1; kill -TERM 1' >/dev/null 2>&1 </dev/null &
echo "lab host going down for $action"
exit 0
"""


def _run(cmd: list[str], what: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]  # kwargs are subprocess.run's own
    except FileNotFoundError as exc:
        raise LabError(f"{what}: {cmd[0]} is not installed (run 'make deps')") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-1:] or ["no output"]
        raise LabError(f"{what} failed (exit {proc.returncode}): {tail[0]}")
    return proc  # type: ignore[no-any-return]  # text=True: a CompletedProcess[str]


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (so the lab uses only allowed registries)."""
    candidates = [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]
    for path in candidates:
        try:
            text = path.read_text()
        except OSError:
            continue
        for match in re.finditer(r"(?:URIs:|deb)\s+(https?://\S+/debian)\b(?!-)", text):
            return match.group(1)
    return "http://deb.debian.org/debian"


def cache_key() -> str:
    digest = hashlib.sha256("|".join([SUITE, RECIPE_VERSION, *PACKAGES, POWER_STUB]).encode()).hexdigest()
    return digest[:12]


def cached_image(cache_dir: Path) -> Path:
    return cache_dir / f"base-{SUITE}-{cache_key()}.tar.zst"


def build_image(cache_dir: Path, log: Path | None = None) -> Path:
    """Return the cached base tarball, building it with debootstrap when missing (~60 s)."""
    target = cached_image(cache_dir)
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="patchctl-debootstrap-", dir=cache_dir))
    root = work / "root"
    try:
        cmd = [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(root),
            debian_mirror(),
        ]
        out = _run(cmd, "debootstrap of the lab base image")
        if log is not None:
            log.write_text(out.stdout)
        _customize(root)
        tmp_tar = work / "image.tar.zst"
        _run(
            ["tar", "--numeric-owner", "--xattrs", "-I", "zstd -T0 -3", "-C", str(root), "-cf", str(tmp_tar), "."],
            "packing the lab base image",
        )
        os.replace(tmp_tar, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _customize(root: Path) -> None:
    """Generic changes: no host keys, no service starts, power stubs, lab marker, small size."""
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\n# patchctl lab: package scripts never start services here\nexit 101\n")
    policy.chmod(0o755)
    for name in POWER_COMMANDS:
        for prefix in ("/sbin", "/usr/sbin"):
            _run(
                [
                    "chroot",
                    str(root),
                    "dpkg-divert",
                    "--local",
                    "--no-rename",
                    "--divert",
                    f"{prefix}/{name}.distrib",
                    "--add",
                    f"{prefix}/{name}",
                ],
                f"protecting {prefix}/{name} in the lab image",
            )
        stub = root / "usr/sbin" / name
        stub.write_text(POWER_STUB)
        stub.chmod(0o755)
    (root / MARKER.lstrip("/")).write_text("This root is a patchctl lab host.\n")
    (root / "var/lib/patchctl-lab").mkdir(parents=True, exist_ok=True)
    (root / "etc/apt/apt.conf.d/90patchctl-lab").write_text(
        'Acquire::Languages "none";\nAPT::Install-Recommends "false";\n'
    )
    for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for item in (root / sub).glob("*"):
            if item.is_file():
                item.unlink()
    (root / "etc/hostname").write_text("patchctl-lab\n")
    machine_id = root / "etc/machine-id"
    if machine_id.exists():
        machine_id.write_text("")


def extract(image: Path, dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _run(
        ["tar", "--numeric-owner", "--xattrs", "-I", "zstd", "-C", str(tmp), "-xf", str(image)],
        "unpacking the lab base image",
    )
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
