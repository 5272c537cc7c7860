"""The ansible-runner adapter, with real ansible-playbook runs of a fixture project.

The hosts are ``localhost`` over the local connection (one that succeeds, one that fails a task)
and a host whose ssh port is closed (unreachable).
"""

from __future__ import annotations

import configparser
import contextlib
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from patchctl.ansible.inventory import inventory_hosts, list_inventory
from patchctl.ansible.runner import HostEvent, PlaybookRunner, ansible_env
from patchctl.errors import EXIT_HOST_FAILURES, EXIT_USAGE, ConfigError, PatchctlError

FIXTURE = Path(__file__).resolve().parent.parent / "data" / "runner"

INVENTORY = f"""\
all:
  vars:
    ansible_python_interpreter: {sys.executable}
  children:
    local:
      vars:
        ansible_connection: local
      hosts:
        good: {{}}
        failer: {{}}
    far:
      hosts:
        dead:
          ansible_host: 127.0.0.1
          ansible_port: 1
          ansible_connection: ssh
          ansible_ssh_common_args: -o ConnectTimeout=5 -o UserKnownHostsFile=/dev/null
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fixture project copied into tmp_path, with an inventory; runs use tmp_path/tmp."""
    dest = tmp_path / "project"
    shutil.copytree(FIXTURE, dest)
    (dest / "inventory.yml").write_text(INVENTORY, encoding="utf-8")
    run_tmp = tmp_path / "tmp"
    run_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(run_tmp))
    return dest


def run_collecting(project: Path, playbook: str = "site.yml", **kwargs: object) -> tuple[list[HostEvent], object]:
    events: list[HostEvent] = []
    result = PlaybookRunner().run(
        project / playbook,
        str(project / "inventory.yml"),
        on_event=events.append,
        **kwargs,  # type: ignore[arg-type]  # each test passes the options it needs
    )
    return events, result


def test_events_and_stats_for_ok_failed_and_unreachable_hosts(project: Path) -> None:
    arrivals: list[tuple[float, HostEvent]] = []
    runner = PlaybookRunner()
    result = runner.run(
        project / "site.yml",
        str(project / "inventory.yml"),
        limit=None,
        extravars={"fixture_message": "planned failure", "fixture_pause": 2},
        on_event=lambda ev: arrivals.append((time.monotonic(), ev)),
        timeout=120,
        forks=5,
    )
    finished = time.monotonic()
    events = [ev for _, ev in arrivals]
    by_task = {(ev.host, ev.task, ev.item, ev.status) for ev in events}

    assert ("good", "Always ok", False, "ok") in by_task
    assert ("failer", "Always ok", False, "ok") in by_task
    assert ("good", "Never runs", False, "skipped") in by_task
    assert ("dead", "Always ok", False, "unreachable") in by_task
    failed = [ev for ev in events if ev.status == "failed"]
    assert [(ev.host, ev.task, ev.action) for ev in failed] == [("failer", "Fails on purpose", "ansible.builtin.fail")]
    assert failed[0].result["msg"] == "planned failure"  # extravars reached the play
    # The loop's failing item is ignored by the task: only the ok item is reported.
    loop = [ev for ev in events if ev.host == "good" and ev.task == "Loop with one ignored failure"]
    assert [(ev.item, ev.status, ev.result.get("item")) for ev in loop] == [(True, "ok", "true")]
    # Events arrive while the play runs, not at the end (the play pauses 2 s after them).
    first_ok = next(at for at, ev in arrivals if ev.status == "ok")
    assert finished - first_ok > 1.5

    assert result.status == "failed"
    assert result.rc != 0
    assert not result.ok
    assert result.hosts_seen == {"good", "failer", "dead"}
    assert result.failed_hosts == {"failer"}
    assert result.unreachable_hosts == {"dead"}
    assert result.stats["dead"]["unreachable"] == 1
    assert result.stats["failer"]["failures"] == 1
    assert result.stats["good"]["failures"] == 0
    assert result.stats["good"]["ignored"] == 1
    assert result.stats["good"]["skipped"] >= 1


def test_successful_run_with_limit_leaves_no_private_data_dir(project: Path, tmp_path: Path) -> None:
    events, result = run_collecting(project, limit="good")
    assert {ev.host for ev in events} == {"good"}
    assert result.ok  # type: ignore[attr-defined]  # run_collecting returns it as object
    assert result.hosts_seen == {"good"}  # type: ignore[attr-defined]  # as above
    assert list((tmp_path / "tmp").iterdir()) == []


def test_limit_matching_no_host_is_a_config_error(project: Path) -> None:
    with pytest.raises(ConfigError, match="no hosts"):
        run_collecting(project, limit="nosuchhost")


def test_empty_inventory_is_detected(project: Path) -> None:
    empty = project / "empty.yml"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"no hosts.*empty\.yml"):
        PlaybookRunner().run(project / "site.yml", str(empty))
    with pytest.raises(ConfigError, match=r"empty\.yml: no hosts"):
        list_inventory(str(empty))
    assert inventory_hosts(list_inventory(str(empty), allow_empty=True)) == set()


def test_broken_playbook_is_a_config_error_naming_the_problem(project: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        run_collecting(project, playbook="broken.yml")
    assert "broken.yml" in str(exc.value)
    assert "this_module_does_not_exist" in str(exc.value)
    assert exc.value.code == EXIT_USAGE


def test_missing_inventory_or_playbook(project: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yml: no such file"):
        PlaybookRunner().run(project / "site.yml", str(project / "nope.yml"))
    with pytest.raises(ConfigError, match=r"missing\.yml"):
        PlaybookRunner().run(project / "missing.yml", str(project / "inventory.yml"))


def test_timeout_is_a_host_failure_error(project: Path) -> None:
    started = time.monotonic()
    with pytest.raises(PatchctlError, match="timed out") as exc:
        run_collecting(project, playbook="slow.yml", limit="good", timeout=3)
    assert exc.value.code == EXIT_HOST_FAILURES
    assert time.monotonic() - started < 25


def test_cancel_from_another_thread(project: Path) -> None:
    runner = PlaybookRunner()

    def cancel_on_first(ev: HostEvent) -> None:
        threading.Timer(0.2, runner.cancel).start()

    with pytest.raises(PatchctlError, match="canceled") as exc:
        runner.run(project / "slow.yml", str(project / "inventory.yml"), limit="good", on_event=cancel_on_first)
    assert exc.value.code == EXIT_HOST_FAILURES


def test_exception_in_on_event_stops_the_run_and_is_raised(project: Path) -> None:
    class StoreDown(RuntimeError):
        pass

    def boom(ev: HostEvent) -> None:
        raise StoreDown("store is down")

    started = time.monotonic()
    with pytest.raises(StoreDown):
        PlaybookRunner().run(project / "slow.yml", str(project / "inventory.yml"), limit="good", on_event=boom)
    assert time.monotonic() - started < 25


def test_list_inventory_reads_hosts_and_vars(project: Path) -> None:
    data = list_inventory(str(project / "inventory.yml"))
    assert inventory_hosts(data) == {"good", "failer", "dead"}
    assert data["_meta"]["hostvars"]["dead"]["ansible_port"] == 1


@contextlib.contextmanager
def nonblocking_stdin() -> Iterator[None]:
    """fd 0 is a pipe in non-blocking mode (as a killed ssh client or a CI runner can leave it)."""
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    saved = os.dup(0)
    os.dup2(read_end, 0)
    try:
        yield
    finally:
        os.dup2(saved, 0)
        for fd in (saved, read_end, write_end):
            os.close(fd)


def test_ansible_runs_even_when_patchctls_stdin_is_non_blocking(project: Path) -> None:
    # Ansible refuses a non-blocking stdin ("Ansible requires blocking IO"): patchctl must not
    # hand its own stdin to the Ansible commands it runs.
    with nonblocking_stdin():
        assert not os.get_blocking(0)
        data = list_inventory(str(project / "inventory.yml"))
        result = PlaybookRunner().run(project / "site.yml", str(project / "inventory.yml"), limit="good")
    assert inventory_hosts(data) == {"good", "failer", "dead"}
    assert result.ok and result.hosts_seen == {"good"}


def test_list_inventory_malformed_yaml_names_file_and_line(project: Path) -> None:
    bad = project / "bad.yml"
    bad.write_text("all:\n  hosts:\n    a: {\n  oops\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        list_inventory(str(bad))
    message = str(exc.value)
    assert str(bad) in message
    assert "line" in message and "YAML" in message
    assert "\n" not in message
    assert exc.value.code == EXIT_USAGE


def test_list_inventory_bad_ini_names_file(project: Path) -> None:
    bad = project / "hosts"
    bad.write_text("[web\nhost1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        list_inventory(str(bad))
    assert str(bad) in str(exc.value)
    assert "\n" not in str(exc.value)


def test_list_inventory_missing_file(project: Path) -> None:
    with pytest.raises(ConfigError, match=r"absent\.yml: no such file"):
        list_inventory(str(project / "absent.yml"))


def test_environment_keeps_host_key_checking_and_finds_our_ansible() -> None:
    env = ansible_env({"ANSIBLE_HOST_KEY_CHECKING": "False", "EXTRA": "1"})
    assert env["ANSIBLE_HOST_KEY_CHECKING"] == "True"
    assert env["EXTRA"] == "1"
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)
    assert env["ANSIBLE_INVENTORY_UNPARSED_FAILED"] == "True"
    assert env["ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED"] == "True"
    assert env["ANSIBLE_PIPELINING"] == "True"
    for key in ("ANSIBLE_LIBRARY", "ANSIBLE_ROLES_PATH", "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_MODULE_UTILS"):
        assert env[key]


# ansible.cfg key -> the environment variable that patchctl sets instead
CONTENT_SETTINGS = {
    "library": "ANSIBLE_LIBRARY",
    "module_utils": "ANSIBLE_MODULE_UTILS",
    "roles_path": "ANSIBLE_ROLES_PATH",
    "collections_path": "ANSIBLE_COLLECTIONS_PATH",
}


def test_ansible_cfg_and_the_environment_name_the_same_content_directories() -> None:
    """The checkout's ansible.cfg (ansible-lint, molecule, ansible-playbook by hand) and
    ansible_env (every run patchctl starts) point Ansible at the same directories, and at no
    plugin directory the project does not have (there is no plugins/filter).

    Broken on purpose: setting ANSIBLE_FILTER_PLUGINS again in ansible_env, or a filter_plugins
    line in ansible.cfg, or pointing ANSIBLE_LIBRARY elsewhere, fails this test.
    """
    root = Path(__file__).resolve().parents[2]
    cfg = configparser.ConfigParser()
    cfg.read(root / "ansible.cfg", encoding="utf-8")
    defaults = dict(cfg["defaults"])
    env = ansible_env()
    for key, var in CONTENT_SETTINGS.items():
        assert (root / defaults[key]).resolve() == Path(env[var]).resolve(), key
    assert [k for k in defaults if k.endswith("_plugins")] == []
    assert [k for k in env if k.endswith("_PLUGINS")] == []
