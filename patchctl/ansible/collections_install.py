"""Install the pinned Ansible collections without Galaxy.

The pins live in ``collections/requirements.yml``. Every pinned version is the one bundled in one
release of the ``ansible`` package on PyPI, so the collections come from that wheel:
``pip download --no-deps ansible==X`` into a cache directory (reused when present), then only the
``ansible_collections/<namespace>/<name>/`` trees that are pinned are unpacked into the target
(default ``.collections``) and each ``MANIFEST.json`` version is checked against its pin.
A collection already present at its pinned version is left alone, so a second run does nothing.

Standard library only: ``tools/install_collections.py`` runs it before any dependency is installed,
and the installed package offers it as ``patchctl-collections``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from patchctl import paths
from patchctl.errors import EXIT_USAGE, PatchctlError

# The ``ansible`` release whose wheel bundles exactly the pinned versions.
ANSIBLE_BUNDLE_VERSION = "12.3.0"

_VERSION_RE = re.compile(r"^\d+\.\d+\.\d+([.+-][0-9A-Za-z.+-]+)?$")
_NAME_RE = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")


class CollectionsError(PatchctlError):
    """The pinned collections could not be read, fetched or installed (exit 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)


@dataclass(frozen=True)
class Pin:
    """One collection pinned to one exact version."""

    namespace: str
    name: str
    version: str

    @property
    def fqcn(self) -> str:
        return f"{self.namespace}.{self.name}"

    @property
    def tree(self) -> str:
        """The collection's directory inside a collections path (and inside the wheel)."""
        return f"ansible_collections/{self.namespace}/{self.name}/"


def requirements_file() -> Path:
    """``collections/requirements.yml`` of the checkout or of the installed package."""
    return paths.content_root() / "collections" / "requirements.yml"


def _scalar(raw: str) -> str:
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def read_requirements(path: Path) -> list[Pin]:
    """Read the pins from a Galaxy requirements file of the simple form this project writes.

    Only ``collections:`` with list items of ``name`` and ``version`` is understood (no PyYAML
    here); anything else is reported with its line so the file stays simple.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CollectionsError(f"{path}: cannot read: {exc.strerror}") from exc
    items: list[dict[str, tuple[str, int]]] = []
    in_collections = False
    for lineno, line in enumerate(lines, start=1):
        text = line.split(" #", 1)[0].rstrip()
        if not text.strip() or text.lstrip().startswith("#") or text.strip() == "---":
            continue
        if not text.startswith(" "):
            key, _, rest = text.partition(":")
            in_collections = key == "collections"
            if key not in ("collections", "roles"):
                raise CollectionsError(f"{path}:{lineno}: unexpected top-level entry {text!r}")
            if in_collections and rest.strip() not in ("", "[]"):
                raise CollectionsError(f"{path}:{lineno}: write collections as a block list ('- name: ...')")
            continue
        if not in_collections:
            continue
        body = text.strip()
        if body.startswith("- "):
            items.append({})
            body = body[2:].strip()
        if not items:
            raise CollectionsError(f"{path}:{lineno}: expected a list item ('- name: ...')")
        key, sep, value = body.partition(":")
        key = key.strip()
        if not sep or key not in ("name", "version"):
            raise CollectionsError(f"{path}:{lineno}: only 'name' and 'version' are supported, got {body!r}")
        items[-1][key] = (_scalar(value), lineno)
    pins: list[Pin] = []
    for item in items:
        if "name" not in item:
            raise CollectionsError(f"{path}: a collection entry has no name")
        name, lineno = item["name"]
        if not _NAME_RE.match(name):
            raise CollectionsError(f"{path}:{lineno}: {name!r} is not namespace.name")
        if "version" not in item:
            raise CollectionsError(f"{path}:{lineno}: {name} is not pinned (no version)")
        version, vline = item["version"]
        if not _VERSION_RE.match(version):
            raise CollectionsError(f"{path}:{vline}: {name} version {version!r} is not one exact version")
        namespace, _, short = name.partition(".")
        pins.append(Pin(namespace, short, version))
    if not pins:
        raise CollectionsError(f"{path}: no collections listed")
    return pins


def installed_version(target: Path, pin: Pin) -> str | None:
    """The version of ``pin``'s collection under ``target``, or None when absent or unreadable."""
    return _manifest_version(target / pin.tree)


def ensure_wheel(
    cache_dir: Path,
    bundle_version: str = ANSIBLE_BUNDLE_VERSION,
    python: str = sys.executable,
) -> Path:
    """The ``ansible`` wheel in ``cache_dir``, downloaded with pip when it is not there yet."""
    wheel = cache_dir / f"ansible-{bundle_version}-py3-none-any.whl"
    if wheel.is_file():
        return wheel
    cache_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--progress-bar", "off",
        "--dest", str(cache_dir), f"ansible=={bundle_version}",
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise CollectionsError(f"cannot run pip ({python}): {exc.strerror}") from exc
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        reason = lines[-1] if lines else f"exit {proc.returncode}"
        raise CollectionsError(f"pip download ansible=={bundle_version} failed: {reason}")
    if not wheel.is_file():
        raise CollectionsError(f"pip download ansible=={bundle_version} left no {wheel.name}")
    return wheel


def _extract_tree(archive: zipfile.ZipFile, pin: Pin, dest: Path) -> None:
    """Unpack ``pin``'s tree from the wheel into ``dest`` (the collection directory itself)."""
    members = [m for m in archive.infolist() if m.filename.startswith(pin.tree)]
    if not members:
        raise CollectionsError(f"{pin.fqcn} is not in the ansible wheel")
    dest.mkdir(parents=True)
    for member in members:
        rel = member.filename[len(pin.tree) :]
        parts = Path(rel).parts
        if not rel or ".." in parts or Path(rel).is_absolute():
            if rel:
                raise CollectionsError(f"refusing unsafe path in wheel: {member.filename}")
            continue
        out = dest.joinpath(*parts)
        if member.is_dir():
            out.mkdir(parents=True, exist_ok=True)
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(member) as src, out.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        mode = (member.external_attr >> 16) & 0o777
        if mode:
            out.chmod(mode | 0o600)


def install(
    requirements: Path,
    target: Path,
    cache_dir: Path,
    *,
    bundle_version: str = ANSIBLE_BUNDLE_VERSION,
    wheel: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, str]:
    """Make ``target`` hold every pinned collection at its pinned version.

    Returns ``{fqcn: "ok" | "installed"}``. Raises CollectionsError when the wheel does not carry
    a pinned version (the pins and ``bundle_version`` disagree) or anything else goes wrong.
    """
    say = log or (lambda _msg: None)
    pins = read_requirements(requirements)
    outcome: dict[str, str] = {}
    todo: list[Pin] = []
    for pin in pins:
        have = installed_version(target, pin)
        if have == pin.version:
            outcome[pin.fqcn] = "ok"
            say(f"{pin.fqcn} {pin.version}: already installed")
        else:
            todo.append(pin)
    if not todo:
        return outcome

    wheel_path = wheel if wheel is not None else ensure_wheel(cache_dir, bundle_version)
    target.mkdir(parents=True, exist_ok=True)
    try:
        archive = zipfile.ZipFile(wheel_path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise CollectionsError(f"{wheel_path} is not a readable wheel ({exc}); remove it and run again") from exc
    with archive, tempfile.TemporaryDirectory(dir=target, prefix=".install-") as tmp:
        for pin in todo:
            staged = Path(tmp) / pin.namespace / pin.name
            _extract_tree(archive, pin, staged)
            got = _manifest_version(staged)
            if got != pin.version:
                raise CollectionsError(
                    f"{pin.fqcn}: {requirements} pins {pin.version} but {wheel_path.name} "
                    f"carries {got or 'no readable MANIFEST.json'}"
                )
            final = target / pin.tree
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():
                old = Path(tmp) / f"old-{pin.namespace}-{pin.name}"
                final.rename(old)
            staged.rename(final)
            outcome[pin.fqcn] = "installed"
            say(f"{pin.fqcn} {pin.version}: installed")
    return outcome


def _manifest_version(collection_dir: Path) -> str | None:
    try:
        data = json.loads((collection_dir / "MANIFEST.json").read_text(encoding="utf-8"))
        version = data["collection_info"]["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return version if isinstance(version, str) else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="patchctl-collections",
        description="Install the pinned Ansible collections from the ansible wheel (no Galaxy).",
    )
    parser.add_argument(
        "--requirements", type=Path, default=None,
        help="pins file (default: collections/requirements.yml of patchctl's content)",
    )  # fmt: skip
    parser.add_argument(
        "--target", type=Path, default=None,
        help="collections path to fill (default: $PATCHCTL_COLLECTIONS or patchctl's default)",
    )  # fmt: skip
    parser.add_argument(
        "--cache-dir", type=Path, default=None,
        help="where the ansible wheel is downloaded and reused (default: $PATCHCTL_CACHE/wheels)",
    )  # fmt: skip
    parser.add_argument("--wheel", type=Path, default=None, help="use this ansible wheel instead of pip download")
    parser.add_argument(
        "--ansible-version", default=ANSIBLE_BUNDLE_VERSION,
        help=f"ansible release that bundles the pins (default: {ANSIBLE_BUNDLE_VERSION})",
    )  # fmt: skip
    parser.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    args = parser.parse_args(argv)

    requirements: Path = args.requirements or requirements_file()
    target: Path = (args.target or paths.collections_dir()).resolve()
    cache_dir: Path = args.cache_dir or (paths.cache_dir() / "wheels")
    log = None if args.quiet else (lambda msg: print(msg, flush=True))
    try:
        install(
            requirements,
            target,
            cache_dir,
            bundle_version=args.ansible_version,
            wheel=args.wheel,
            log=log,
        )
    except PatchctlError as exc:
        print(f"patchctl-collections: error: {exc}", file=sys.stderr)
        return exc.code
    except OSError as exc:
        print(f"patchctl-collections: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not args.quiet:
        print(f"collections ready in {target} (ANSIBLE_COLLECTIONS_PATH={target})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
