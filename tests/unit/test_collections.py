"""Installing the pinned collections from an ansible wheel, without Galaxy or the network."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from patchctl.ansible.collections_install import CollectionsError, Pin, install, installed_version, read_requirements

REPO_REQUIREMENTS = Path(__file__).resolve().parents[2] / "collections" / "requirements.yml"


def fake_wheel(path: Path, versions: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for fqcn, version in versions.items():
            ns, name = fqcn.split(".")
            manifest = {"collection_info": {"namespace": ns, "name": name, "version": version}}
            zf.writestr(f"ansible_collections/{ns}/{name}/MANIFEST.json", json.dumps(manifest))
            zf.writestr(f"ansible_collections/{ns}/{name}/plugins/modules/thing.py", "# module\n")
        zf.writestr("ansible_collections/other/unpinned/MANIFEST.json", "{}")
    return path


def requirements(path: Path, pins: dict[str, str]) -> Path:
    body = "".join(f'  - name: {k}\n    version: "{v}"\n' for k, v in pins.items())
    path.write_text(f"---\ncollections:\n{body}", encoding="utf-8")
    return path


def test_repository_pins_are_the_five_bundled_versions() -> None:
    assert {p.fqcn: p.version for p in read_requirements(REPO_REQUIREMENTS)} == {
        "ansible.windows": "3.3.0",
        "chocolatey.chocolatey": "1.5.3",
        "community.general": "11.4.2",
        "ansible.posix": "2.1.0",
        "community.windows": "3.1.0",
    }


def test_install_only_pinned_trees_then_nothing_to_do(tmp_path: Path) -> None:
    pins = {"ansible.posix": "2.1.0", "community.general": "11.4.2"}
    req = requirements(tmp_path / "req.yml", pins)
    wheel = fake_wheel(tmp_path / "ansible.whl", pins)
    target = tmp_path / "collections"
    assert install(req, target, tmp_path / "cache", wheel=wheel) == dict.fromkeys(pins, "installed")
    assert installed_version(target, Pin("ansible", "posix", "2.1.0")) == "2.1.0"
    assert (target / "ansible_collections/community/general/plugins/modules/thing.py").is_file()
    assert not (target / "ansible_collections/other").exists()
    # second run: no wheel needed at all
    assert install(req, target, tmp_path / "cache", wheel=tmp_path / "absent.whl") == dict.fromkeys(pins, "ok")


def test_wrong_version_in_target_is_replaced(tmp_path: Path) -> None:
    req = requirements(tmp_path / "req.yml", {"ansible.posix": "2.1.0"})
    target = tmp_path / "collections"
    install(req, target, tmp_path, wheel=fake_wheel(tmp_path / "old.whl", {"ansible.posix": "2.1.0"}))
    manifest = target / "ansible_collections/ansible/posix/MANIFEST.json"
    manifest.write_text(json.dumps({"collection_info": {"version": "1.0.0"}}), encoding="utf-8")
    assert install(req, target, tmp_path, wheel=tmp_path / "old.whl") == {"ansible.posix": "installed"}
    assert installed_version(target, Pin("ansible", "posix", "2.1.0")) == "2.1.0"


def test_wheel_with_other_version_fails_clearly(tmp_path: Path) -> None:
    req = requirements(tmp_path / "req.yml", {"ansible.posix": "2.1.1"})
    wheel = fake_wheel(tmp_path / "ansible.whl", {"ansible.posix": "2.1.0"})
    with pytest.raises(CollectionsError, match=r"ansible\.posix: .* pins 2\.1\.1 but ansible\.whl carries 2\.1\.0"):
        install(req, tmp_path / "collections", tmp_path, wheel=wheel)
    assert installed_version(tmp_path / "collections", Pin("ansible", "posix", "2.1.1")) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("collections:\n  - name: ansible.posix\n", "not pinned"),
        ("collections:\n  - name: ansible.posix\n    version: '>=2.0'\n", "not one exact version"),
        ("collections:\n  - name: posix\n    version: 1.0.0\n", "not namespace.name"),
        ("collections:\n  - name: a.b\n    source: https://galaxy\n", "only 'name' and 'version'"),
        ("collections: []\n", "no collections"),
    ],
)
def test_bad_requirements_are_reported_with_the_file(tmp_path: Path, text: str, message: str) -> None:
    req = tmp_path / "req.yml"
    req.write_text(text, encoding="utf-8")
    with pytest.raises(CollectionsError, match=message) as exc:
        read_requirements(req)
    assert str(req) in str(exc.value)
