"""Contract: what patchctl asks of a scan run reaches the patch_scan_linux role as its defaults,
below the host's own variables, never as extra vars of the role's inputs.

The real playbooks/scan.yml and role run through patchctl's PlaybookRunner with the extra vars
the scan flow builds (:func:`patchctl.scan.scan_request`), on local hosts whose inventory sets
some inputs in group_vars; the one stand-in is the module itself, a stub on the library path
that answers with the arguments the role gave it (the real module runs in
tests/integration/test_scan_lab.py).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from patchctl import paths
from patchctl.ansible.runner import HostEvent, PlaybookRunner
from patchctl.scan import SCAN_PLAYBOOK, scan_request

STUB = """#!/usr/bin/python
# WANT_JSON
import json
import sys

with open(sys.argv[1]) as fh:
    args = json.load(fh)
print(json.dumps({"changed": False, "args": {k: v for k, v in args.items() if not k.startswith("_ansible")}}))
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    library = tmp_path / "library"
    library.mkdir()
    (library / "patch_scan_linux.py").write_text(STUB, encoding="utf-8")
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    hosts = {"all": {"children": {"tuned": {"hosts": {"own-01": local}}, "plain": {"hosts": {"plain-01": local}}}}}
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts), encoding="utf-8")
    group_vars = {"patch_scan_linux_cache_valid_time": 3600, "patch_scan_linux_watch": ["mine"]}
    (inventory / "group_vars" / "tuned.yml").write_text(yaml.safe_dump(group_vars), encoding="utf-8")
    return tmp_path


def module_args(project: Path, extravars: dict[str, Any]) -> dict[str, dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}

    def on_event(event: HostEvent) -> None:
        if event.status == "ok" and "args" in event.result:
            seen[event.host] = event.result["args"]
        assert event.status in ("ok", "skipped"), event

    # the stub first, then the project's modules (the Windows play needs its own to parse)
    runner = PlaybookRunner(extra_env={"ANSIBLE_LIBRARY": f"{project / 'library'}:{paths.modules_dir()}"})
    runner.run(paths.playbook(SCAN_PLAYBOOK), str(project / "inventory"), extravars=extravars, on_event=on_event)
    return seen


def test_group_vars_win_over_what_the_scan_run_asks(project: Path) -> None:
    """A group's own cache_valid_time beats the run's; the run's is every other host's default;
    the watch lists are joined. Breaking it: passing patch_scan_linux_cache_valid_time and
    patch_scan_linux_watch as extra vars again (as the scan flow did) gives own-01 the run's 600
    and loses its watched package "mine"."""
    args = module_args(project, scan_request(cache_valid_time=600, watch=["openssl", "libc6"]))
    assert (args["own-01"]["cache_valid_time"], sorted(args["own-01"]["watch"])) == (3600, ["libc6", "mine", "openssl"])
    assert (args["plain-01"]["cache_valid_time"], sorted(args["plain-01"]["watch"])) == (600, ["libc6", "openssl"])


def test_without_a_request_the_role_defaults_hold(project: Path) -> None:
    """The role alone (no patchctl, e.g. from Molecule or AWX): cache_valid_time 0, no watch list."""
    args = module_args(project, {})
    assert (args["plain-01"]["cache_valid_time"], args["plain-01"]["watch"]) == (0, [])
    assert args["own-01"]["cache_valid_time"] == 3600
