"""The Linux modules' shared code: plugins/module_utils/patchctl_linux.py, imported by the apply
module and copied, between markers, into the scan module (one file without module_utils)."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from tests.unit.test_scan_module import MODULE_PATH, ROOT, load_plugin_module, psl

SHARED = ROOT / "plugins" / "module_utils" / "patchctl_linux.py"
APPLY = ROOT / "plugins" / "modules" / "patch_apply_linux.py"
BEGIN, END = "# BEGIN patchctl_linux", "# END patchctl_linux"

pal = load_plugin_module("patch_apply_linux")


def shared_block(text: str) -> str:
    """The text from the BEGIN marker line to the END marker line, both included."""
    start = text.index(BEGIN)
    return text[start : text.index(END, start) + len(END)]


def test_the_scan_modules_copy_is_the_module_utils_source() -> None:
    """The scan module's inlined block is, character for character, the module_utils block.
    Breaking it: editing one line on either side (a new os-release id in one copy only) fails
    here with the first line that differs."""
    ours = shared_block(MODULE_PATH.read_text(encoding="utf-8"))
    theirs = shared_block(SHARED.read_text(encoding="utf-8"))
    if ours != theirs:
        for n, (a, b) in enumerate(zip(ours.splitlines(), theirs.splitlines(), strict=False), 1):
            assert a == b, f"line {n} of the shared block differs: copy it from {SHARED.relative_to(ROOT)}"
    assert ours == theirs


def test_the_scan_module_imports_no_module_utils() -> None:
    """One payload: the scan module imports nothing from Ansible (a JSON-arguments module)."""
    tree = ast.parse(MODULE_PATH.read_text(encoding="utf-8"))
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)] + [
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    ]
    assert not [m for m in imported if m and m.startswith("ansible")]


def test_the_apply_module_defines_none_of_the_shared_code() -> None:
    """The apply module takes the shared names from module_utils and keeps no copy of its own.
    Breaking it: a second os-release table or RPM query format in the apply module fails here."""
    shared_tree = ast.parse(SHARED.read_text(encoding="utf-8"))
    shared = {t.id for n in shared_tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    shared |= {n.name for n in shared_tree.body if isinstance(n, ast.FunctionDef)}
    apply_tree = ast.parse(APPLY.read_text(encoding="utf-8"))
    own = {t.id for n in apply_tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    own |= {n.name for n in apply_tree.body if isinstance(n, ast.FunctionDef)}
    assert own & shared == set()
    modules = {n.module for n in apply_tree.body if isinstance(n, ast.ImportFrom)}
    assert "ansible.module_utils.patchctl_linux" in modules
    assert pal.REBOOT_REQUIRED == psl.REBOOT_REQUIRED == "/var/run/reboot-required"
    assert pal.RPM_QUERY_FORMAT == psl.RPM_QUERY_FORMAT


class Host:
    """get_bin_path and fail_json, as AnsibleModule and the scan module's runtime give them."""

    def __init__(self, binaries: set[str]) -> None:
        self.binaries = binaries

    def get_bin_path(self, name: str, required: bool = False) -> str | None:
        return f"/usr/bin/{name}" if name in self.binaries else None

    def fail_json(self, **kw: object) -> None:
        raise AssertionError(kw)


@pytest.mark.parametrize(
    ("os_id", "expected"),
    [("rocky", "dnf"), ("almalinux", "dnf"), ("amzn", "dnf"), ("sled", "zypper"), ("opensuse-leap", "zypper"),
     ("linuxmint", "apt"), ("raspbian", "apt")],
)  # fmt: skip
def test_the_apply_module_detects_the_full_id_table(
    os_id: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An os-release with only an ID (no ID_LIKE) of the full table picks its family's manager
    even where every manager's binary is present. Breaking it: with the apply module's old 8-id
    table (rhel, fedora, centos, suse, opensuse, sles, debian, ubuntu) rocky has no family and the
    detection falls to the first binary found, apt, and this test fails."""
    os_release = tmp_path / "os-release"
    os_release.write_text(f'ID="{os_id}"\nVERSION_ID="1"\n', encoding="utf-8")
    shared = pal.read_os.__globals__
    monkeypatch.setitem(shared, "OS_RELEASE_PATHS", (str(os_release),))
    family = pal.read_os()["family"]
    assert family == psl.os_info({"ID": os_id})["family"]
    assert pal.detect_pkg_mgr(Host({"apt-get", "dnf", "zypper"}), "auto", family) == expected


def test_the_apply_module_reads_rpm_status_in_the_shared_format() -> None:
    """rpm's output in the one query format (with the architecture) gives the apply module each
    package's [epoch:]version-release; two architectures at different versions are never "at" one.
    Breaking it: the apply module's old four-field format reads no line of this output."""
    text = (
        "openssl\tx86_64\t1\t3.0.7\t27.el9\n"
        "glibc\tx86_64\t0\t2.34\t100.el9\n"
        "glibc\ti686\t0\t2.34\t83.el9\n"
        "zlib\tnoarch\t0\t1.2.11\t40.el9\n"
    )
    assert pal.parse_rpm_status(text) == {
        "openssl": ("1:3.0.7-27.el9", "ii"),
        "glibc": ("2.34-100.el9, 2.34-83.el9", "ii"),
        "zlib": ("1.2.11-40.el9", "ii"),
    }


def test_the_module_utils_file_is_what_ansible_ships(tmp_path: Path) -> None:
    """Ansible finds the shared code where patchctl points it (ANSIBLE_MODULE_UTILS, ansible.cfg),
    and builds the apply module's payload with it. Breaking it: renaming the module_utils file or
    the apply module's import fails the payload build here."""
    from ansible.executor.module_common import modify_module
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import init_plugin_loader, module_utils_loader
    from ansible.template import Templar
    from ansible.utils.collection_loader import AnsibleCollectionConfig

    from patchctl import paths

    if AnsibleCollectionConfig.collection_finder is None:  # another test may have set it up already
        init_plugin_loader()
    module_utils_loader.add_directory(str(paths.module_utils_dir()))
    copy = tmp_path / "patch_apply_linux.py"
    shutil.copy(APPLY, copy)
    built = modify_module(
        module_name="patch_apply_linux",
        module_path=str(copy),
        module_args={},
        templar=Templar(loader=DataLoader()),
        task_vars={"ansible_python_interpreter": "/usr/bin/python3"},
    )
    assert built.b_module_data  # the AnsiballZ payload, with ansible.module_utils.patchctl_linux in it


def test_the_controller_reads_the_modules_integrity_marker() -> None:
    """The controller (patchctl/scan.py) cannot import a plugin module, so it keeps the one string
    it must recognise in a module's failure, ``integrity: ``; this test makes the module_utils
    definition the one the controller follows. Breaking it: changing the marker in module_utils
    (and its checked copy) alone fails here."""
    from patchctl import scan

    assert scan.INTEGRITY == psl.INTEGRITY == pal.INTEGRITY
