"""No leaked secrets: a real scan (a scheduled one, with its log, and a direct one) and a real deploy
on the lab, with known secrets placed where operators put them: an ansible-vault encrypted file
in the inventory (its password from a file named by ANSIBLE_VAULT_PASSWORD_FILE), an
``ansible_become_password``, a WinRM/PSRP password in the example inventory's style (from the
vault, on a Windows host that cannot be reached), and an environment variable read by a lookup.
Then every file patchctl wrote ($PATCHCTL_HOME: store, logs, locks), every store row, every
JSON output, the runner's temporary directories, what appeared in /tmp and in Ansible's local
temp dir, and every host's temporary, home and log directories are searched: no secret
anywhere. The store and the logs are owner-only (0600). A task evaluates the vaulted token and
the environment lookup (the pilot server's pre-reboot command, whose digest of both is read back
from the host); the become password is decrypted with the vault but no task evaluates it (the
lab logs in as root, no Linux play uses become). Seen failing with that command also writing the
token to /var/log on the host (found by the hosts' search)."""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from .conftest import LabEnv

pytestmark = [pytest.mark.integration, pytest.mark.lab]

ROOT = Path(__file__).resolve().parents[2]
MAX_READ = 50 * 1024 * 1024
TOKEN_DIGEST = "/root/patchctl-test-token.sha256"


def make_secrets() -> dict[str, str]:
    """Unique strings: finding one anywhere is a leak, never a coincidence."""
    kinds = ("vault password", "vaulted token", "become password", "winrm password", "env token")
    return {kind: f"S3cr3t-{kind.split()[0]}-{secrets.token_hex(12)}" for kind in kinds}


def files_under(*roots: Path) -> list[Path]:
    out = []
    for root in roots:
        if root.is_file():
            out.append(root)
            continue
        for dirpath, _dirs, names in os.walk(root, onerror=lambda _e: None):
            out.extend(Path(dirpath) / n for n in names)
    return out


def leaks(paths: list[Path], found_in: dict[str, str]) -> list[str]:
    """'<secret kind> in <file>' for every regular file that holds a secret (raw bytes)."""
    hits = []
    for path in paths:
        try:
            if not stat.S_ISREG(path.lstat().st_mode) or path.stat().st_size > MAX_READ:
                continue
            blob = path.read_bytes()
        except OSError:  # vanished meanwhile (another process's temp file) or unreadable
            continue
        hits += [f"{kind} in {path}" for kind, value in found_in.items() if value.encode() in blob]
    return hits


def snapshot(directory: Path) -> set[Path]:
    try:
        return set(directory.iterdir())
    except OSError:
        return set()


def write_inventory(env: LabEnv, inv: Path, secret: dict[str, str], ansible_env: dict[str, str]) -> None:
    """The lab inventory plus secrets in the usual places, the vault file really encrypted."""
    data = yaml.safe_load(env.inventory.read_text())
    children = data["all"]["children"]
    # A Windows workgroup host in the example inventory's style; nothing listens at its address.
    children["windows"] = {
        "children": {
            "windows_workgroup": {"hosts": {"win-01": {"ansible_host": "127.93.254.254", "patch_role": "client"}}}
        }
    }
    (inv / "group_vars" / "all").mkdir(parents=True)
    (inv / "group_vars" / "windows").mkdir()
    (inv / "hosts.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    vault = inv / "group_vars" / "all" / "vault.yml"
    vault.write_text(
        yaml.safe_dump(
            {
                "vault_lab_become_password": secret["become password"],
                "vault_lab_token": secret["vaulted token"],
                "vault_patchctl_workgroup_password": secret["winrm password"],
            }
        )
    )
    # the password comes from ANSIBLE_VAULT_PASSWORD_FILE, as for every run below
    subprocess.run(
        [str(Path(sys.executable).parent / "ansible-vault"), "encrypt", str(vault)],
        check=True,
        capture_output=True,
        env=ansible_env,
    )
    assert b"$ANSIBLE_VAULT" in vault.read_bytes() and secret["become password"].encode() not in vault.read_bytes()
    (inv / "group_vars" / "all" / "credentials.yml").write_text(
        textwrap.dedent(
            """\
            ---
            # the lab logs in as root: a become password is set all the same, and must not leak
            ansible_become_password: "{{ vault_lab_become_password }}"
            patchctl_lab_api_token: "{{ vault_lab_token }}"
            patchctl_lab_env_token: "{{ lookup('ansible.builtin.env', 'PATCHCTL_TEST_ENV_TOKEN') }}"
            """
        )
    )
    # A task that evaluates the vaulted token and the environment lookup: the servers' pre-reboot
    # command (shell by design) hands both to a command that leaves their digest on the host, so
    # the test sees them evaluated. (The become password is decrypted with the vault but evaluated
    # by no task: the lab logs in as root and no play uses become.)
    (inv / "group_vars" / "servers.yml").write_text(
        yaml.safe_dump(
            {
                "patch_reboot_pre_commands": [
                    "printf '%s %s' '{{ patchctl_lab_api_token }}' '{{ patchctl_lab_env_token }}'"
                    f" | sha256sum | cut -d' ' -f1 > {TOKEN_DIGEST}"
                ]
            }
        )
    )
    # the example inventory's Windows connection and workgroup files, as they are
    example = ROOT / "inventories" / "example" / "group_vars"
    (inv / "group_vars" / "windows" / "connection.yml").write_text((example / "windows" / "connection.yml").read_text())
    (inv / "group_vars" / "windows_workgroup.yml").write_text((example / "windows_workgroup.yml").read_text())


def test_no_secret_in_logs_store_output_artifacts_or_temp_files(lab_env: LabEnv, tmp_path: Path) -> None:
    lab = lab_env.lab
    lab.reset()
    secret = make_secrets()
    home = tmp_path / "home"  # patchctl's own: store, logs, locks
    private_tmp = tmp_path / "tmp"  # TMPDIR of every patchctl process: the runner's dirs land here
    inv = tmp_path / "inventory"
    home.mkdir()
    private_tmp.mkdir()
    inv.mkdir()
    vault_pw_file = tmp_path / "vault-password"
    vault_pw_file.write_text(secret["vault password"] + "\n")
    vault_pw_file.chmod(0o600)
    env = dict(lab_env.env)
    env.update(
        {
            "PATCHCTL_HOME": str(home),
            "TMPDIR": str(private_tmp),
            "ANSIBLE_VAULT_PASSWORD_FILE": str(vault_pw_file),
            "PATCHCTL_TEST_ENV_TOKEN": secret["env token"],
            "PATCHCTL_INVENTORY": str(inv),
        }
    )
    env.pop("PATCHCTL_LOG_DIR", None)
    write_inventory(lab_env, inv, secret, env)
    policy = tmp_path / "policy.yml"
    policy.write_text(
        textwrap.dedent(
            """\
            ---
            baselines:
              debian:
                classifications: [security, bugfix, other]
                approve_after_days: 0
                reject: [patchctl-demo-broken]
            waves:
              - {name: pilot, hosts: pilot, bake_days: 0, max_concurrency: 2, max_fail_percent: 0}
            windows:
              - {name: lab-nightly, start: "* * * * *", duration: 2h, timezone: UTC}
            """
        )
    )
    db = home / "store.db"
    ansible_tmp = Path.home() / ".ansible" / "tmp"
    before_tmp, before_ansible = snapshot(Path("/tmp")), snapshot(ansible_tmp)

    outputs: list[str] = []

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "patchctl", "--db", f"sqlite:///{db}", "--policy", str(policy), *args]
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, check=False)
        assert "Traceback" not in proc.stderr, proc.stderr
        outputs.extend([proc.stdout, proc.stderr])
        return proc

    # The scheduled scan (its log in $PATCHCTL_HOME/log), then a direct one with --json. The
    # Windows host cannot be reached: exit 1, every Linux host scanned (so the vault was opened).
    scheduled = cli("--json", "schedule", "run", "scan")
    assert scheduled.returncode == 1, scheduled.stderr
    scan = cli("--json", "scan")
    assert scan.returncode == 1, scan.stderr
    assert scan.stdout.strip().startswith("{")
    with sqlite3.connect(db) as conn:
        statuses = dict(conn.execute("SELECT name, last_status FROM hosts"))
    assert statuses.pop("win-01") in ("unreachable", "failed")
    assert set(statuses.values()) == {"ok"}, statuses
    for args in (["rollout", "create"], ["deploy"], ["report"], ["rollout", "status"], ["updates"], ["config", "show"]):
        proc = cli("--json", *args)
        assert proc.returncode == 0, (args, proc.stderr)
        assert proc.stdout.strip()[:1] in ("{", "["), (args, proc.stdout[:200])
    assert "1.1-1" in lab_env.ssh("srv-01", "dpkg-query -W -f '${Version}' patchctl-demo-app").stdout
    # the deploy rebooted the pilot server (the kernel update, its window open): its pre-reboot
    # command ran with the token and the environment lookup evaluated
    digest = hashlib.sha256(f"{secret['vaulted token']} {secret['env token']}".encode()).hexdigest()
    assert lab_env.ssh("srv-01", f"cat {TOKEN_DIGEST}").stdout.strip() == digest
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT host, status FROM reboots").fetchall() == [("srv-01", "ok")]

    # 1. every JSON and text output of every command
    assert [k for k, v in secret.items() if any(v in out for out in outputs)] == []
    # 2. every file patchctl wrote (store, its -wal, logs, locks) and the runner's temp dirs
    written = files_under(home, private_tmp)
    assert any(p.name == "scan.log" for p in written), written
    assert leaks(written, secret) == []
    assert not [p for p in private_tmp.iterdir() if p.name.startswith(("patchctl-run-", "tmp"))], list(
        private_tmp.iterdir()
    )
    # 3. every row of every table of the store
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        rows = [repr(row) for table in tables for row in conn.execute(f'SELECT * FROM "{table}"')]  # noqa: S608 - names from sqlite_master
    assert len(tables) > 10 and len(rows) > 20
    assert [k for k, v in secret.items() if any(v in row for row in rows)] == []
    # 4. what appeared in /tmp and in Ansible's local temp dir while this ran: other processes'
    # files too (the machine is shared; our runs' own temp dirs are in TMPDIR, checked above),
    # but a unique secret cannot be in them by chance
    new = (snapshot(Path("/tmp")) - before_tmp) | (snapshot(ansible_tmp) - before_ansible)
    assert leaks(files_under(*new), secret) == []
    # 5. the hosts: no temp dirs left behind by the scan's download check, no secret in their
    # temp, home or log directories
    for host in sorted(h.name for h in lab.hosts()):
        left = lab_env.ssh(host, "find /tmp /var/tmp /root -name 'patchctl-verify-*' -o -name 'ansible-tmp-*'").stdout
        assert left.strip() == "", (host, left)
        pattern = "|".join(secret.values())
        found = lab_env.ssh(host, f"grep -rlE '{pattern}' /tmp /var/tmp /root /var/log || true").stdout
        assert found.strip() == "", (host, found)
    # 6. owner-only files
    modes = {p: stat.S_IMODE(p.stat().st_mode) for p in files_under(home)}
    assert db in modes and any(p.suffix == ".log" for p in modes)
    assert {str(p): oct(m) for p, m in modes.items() if m & 0o077} == {}


def test_the_leak_search_finds_a_planted_secret(tmp_path: Path) -> None:
    """The search above is not blind: a secret planted in a file, deep in a tree, is found."""
    secret = make_secrets()
    planted = tmp_path / "a" / "b" / "c.log"
    planted.parent.mkdir(parents=True)
    planted.write_bytes(b"\x00binary\xff" + secret["winrm password"].encode() + b"\n")
    assert leaks(files_under(tmp_path), secret) == [f"winrm password in {planted}"]
