# Copyright: patchctl contributors
# Apache License 2.0 (see the LICENSE file of the patchctl project)
"""Change safety on a Linux host: hooks around the install, health checks before and after it.

Runs on the target host: Python 3.7+, standard library only. patch_apply_linux and patch_health
import it (``ansible.module_utils.patchctl_safety``, shipped in their AnsiballZ payload).

A hook is ``{command, timeout, must_succeed, name, environment, no_log}``: ``command`` runs with
``/bin/sh -c`` in a session of its own (``environment`` added: the place for secrets, which the
modules declare no_log), killed with its children after ``timeout`` seconds. A hook's command is
never returned (only its name); with ``no_log`` its output is not returned either.

A health check is ``{kind, name, ...}`` of kind ``command`` (``command``: exit 0 passes), ``tcp``
(``port``, ``host`` default 127.0.0.1: a connection opens), ``http`` (``url``, ``status`` default
200: that status answers, from the host), ``service`` (``unit``: ``systemctl is-active``) or
``failed_units`` (``systemctl --failed`` lists none). :func:`compare` says what a check's result
after the change means against its baseline: ``passed``, ``failed`` (passed before, fails now:
this fails the host), ``pre_existing`` (failed before already: reported, never fails the host).
"""

import contextlib
import os
import signal
import socket
import subprocess
import time

try:  # Python 3 standard library
    from urllib.error import HTTPError, URLError
    from urllib.request import Request, urlopen
except ImportError:  # pragma: no cover
    HTTPError = URLError = Exception

OUTPUT_LIMIT = 2000
HIDDEN = "(output hidden: no_log)"
DEFAULT_HOOK_TIMEOUT = 300
DEFAULT_CHECK_TIMEOUT = 10

# states of a check after the change, against its baseline
PASSED = "passed"
FAILED = "failed"
PRE_EXISTING = "pre_existing"


def _tail(text, limit=OUTPUT_LIMIT):
    text = (text or "").strip()
    return text if len(text) <= limit else "..." + text[-limit:]


def run_shell(command, timeout, environment=None):
    """(rc, output, timed_out) of ``/bin/sh -c command``; stdout and stderr together. On timeout the
    whole session is killed and rc is 124 (as timeout(1) says it)."""
    env = dict(os.environ)
    env.update({str(k): str(v) for k, v in (environment or {}).items()})
    proc = subprocess.Popen(
        ["/bin/sh", "-c", command],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out.decode("utf-8", "replace"), False
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return 124, out.decode("utf-8", "replace"), True


def hook_name(hook, phase, index):
    return hook.get("name") or f"{phase}[{index}]"


def run_hooks(hooks, phase):
    """Run one phase's hooks in order; stop at the first failing one that must succeed.
    Returns (results, error): ``error`` names that hook, its exit and its output, else None."""
    results = []
    for index, hook in enumerate(hooks or []):
        name = hook_name(hook, phase, index)
        timeout = hook.get("timeout") or DEFAULT_HOOK_TIMEOUT
        started = time.time()
        rc, out, timed_out = run_shell(hook["command"], timeout, hook.get("environment"))
        ok = rc == 0
        must = hook.get("must_succeed", True) is not False
        output = HIDDEN if hook.get("no_log") else _tail(out)
        results.append(
            {
                "phase": phase,
                "name": name,
                "rc": rc,
                "ok": ok,
                "must_succeed": must,
                "timed_out": timed_out,
                "seconds": round(time.time() - started, 2),
                "output": output,
            }
        )
        if not ok and must:
            why = f"timed out after {timeout}s" if timed_out else f"exit {rc}"
            return results, "{} hook {} failed ({}): {}".format(phase, name, why, output or "no output")
    return results, None


def check_name(check):
    if check.get("name"):
        return check["name"]
    kind = check.get("kind")
    if kind == "tcp":
        return "tcp {}:{}".format(check.get("host") or "127.0.0.1", check.get("port"))
    if kind == "http":
        return "http {}".format(check.get("url"))
    if kind == "service":
        return "service {}".format(check.get("unit"))
    if kind == "command":
        return "command"
    return str(kind)


def _systemctl(args, timeout):
    rc, out, timed_out = run_shell("systemctl " + " ".join(args), timeout)
    return rc, out.strip(), timed_out


def run_check(check):
    """(ok, message) of one health check, run now on this host."""
    kind = check.get("kind")
    timeout = check.get("timeout") or DEFAULT_CHECK_TIMEOUT
    if kind == "command":
        rc, out, timed_out = run_shell(check["command"], timeout)
        if timed_out:
            return False, f"timed out after {timeout}s"
        detail = HIDDEN if check.get("no_log") else _tail(out, 300)
        return rc == 0, "exit {}{}".format(rc, ": " + detail if detail else "")
    if kind == "tcp":
        host = check.get("host") or "127.0.0.1"
        port = int(check["port"])
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return True, f"{host}:{port} accepts connections"
        except OSError as exc:
            return False, f"{host}:{port} refused a connection: {exc.strerror or exc}"
    if kind == "http":
        want = int(check.get("status") or 200)
        try:
            with urlopen(Request(check["url"], method="GET"), timeout=timeout) as resp:  # noqa: S310 - the operator's own health URL, http(s) by their choice
                got = resp.status
        except HTTPError as exc:
            got = exc.code
        except (URLError, OSError) as exc:
            return False, "{}: {}".format(check["url"], getattr(exc, "reason", exc))
        if got == want:
            return True, "{} answered {}".format(check["url"], got)
        return False, "{} answered {}, expected {}".format(check["url"], got, want)
    if kind == "service":
        rc, out, _t = _systemctl(["is-active", "--", _quote(check["unit"])], timeout)
        state = out.splitlines()[-1] if out else "unknown"
        return rc == 0, "{} is {}".format(check["unit"], state)
    if kind == "failed_units":
        rc, out, _t = _systemctl(["--failed", "--no-legend", "--plain", "--no-pager"], timeout)
        if rc != 0:
            return False, f"systemctl --failed: exit {rc}: {_tail(out, 200)}"
        units = [line.split()[0] for line in out.splitlines() if line.strip()]
        return not units, ("failed units: " + ", ".join(units)) if units else "no failed units"
    return False, f"unknown check kind {kind!r}"


def _quote(word):
    return "'" + str(word).replace("'", "'\\''") + "'"


def run_checks(checks):
    """Every check once: [{name, kind, ok, message}]."""
    out = []
    for check in checks or []:
        ok, message = run_check(check)
        out.append({"name": check_name(check), "kind": check.get("kind"), "ok": ok, "message": message})
    return out


def compare(before, after):
    """Each check after the change against its baseline (matched by name): a list of
    {name, kind, state, before, message}; a check without a baseline counts as having passed."""
    base = {c["name"]: c for c in before or []}
    out = []
    for c in after:
        b = base.get(c["name"])
        was_ok = b is None or b["ok"]
        if c["ok"]:
            state = PASSED
        elif was_ok:
            state = FAILED
        else:
            state = PRE_EXISTING
        out.append(
            {
                "name": c["name"],
                "kind": c["kind"],
                "state": state,
                "before": None if b is None else ("passed" if b["ok"] else "failed"),
                "message": c["message"],
            }
        )
    return out


def health_error(compared, when):
    """The host's error when a check that passed before fails now, else None."""
    bad = [c for c in compared if c["state"] == FAILED]
    if not bad:
        return None
    return "health check failed {}: {}".format(when, "; ".join("{}: {}".format(c["name"], c["message"]) for c in bad))


# --- services still running replaced files --------------------------------------------------

# mappings that are no replaced code: shared memory, anonymous files, temporary files
_NOT_CODE = (
    "/dev/",
    "/memfd:",
    "/SYSV",
    "/tmp/",  # noqa: S108 - a prefix to ignore, no file is made there
    "/var/tmp/",  # noqa: S108 - a prefix to ignore, no file is made there
    "/run/",
    "/proc/",
    "/sys/",
)
COMM_LEN = 15  # the kernel keeps 15 characters of a process name


def deleted_mappings(maps_text):
    """The files a process maps that were deleted (replaced by an update) from /proc/PID/maps."""
    found = set()
    for line in maps_text.splitlines():
        if not line.endswith(" (deleted)"):
            continue
        parts = line.split(None, 5)
        if len(parts) < 6:
            continue
        path = parts[5][: -len(" (deleted)")].strip()
        if path.startswith("/") and not path.startswith(_NOT_CODE):
            found.add(path)
    return sorted(found)


def unit_of(cgroup_text):
    """The systemd service of a process from /proc/PID/cgroup, else None."""
    for line in cgroup_text.splitlines():
        for part in reversed(line.rsplit(":", 1)[-1].split("/")):
            if part.endswith(".service") and not part.startswith(("user@", "session-")):
                return part
    return None


def process_name(comm, cmdline):
    """A process's name: its comm, or where the kernel cut it, the full name of the argument it
    stands for (a script run by its interpreter: /usr/sbin/some-long-daemon)."""
    if len(comm) < COMM_LEN:
        return comm
    for arg in cmdline:
        base = os.path.basename(arg)
        if base.startswith(comm):
            return base
    return comm


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return None


def restart_pending(proc="/proc", skip=()):
    """[{unit, name, processes: [{pid, name}], files}] of the processes still mapping deleted
    files, grouped by systemd unit (or, without one, by process name)."""
    groups = {}
    for entry in sorted(os.listdir(proc), key=lambda e: (len(e), e)):
        if not entry.isdigit() or int(entry) in skip:
            continue
        maps = _read(os.path.join(proc, entry, "maps"))
        files = deleted_mappings(maps or "")
        if not files:
            continue
        comm = (_read(os.path.join(proc, entry, "comm")) or "?").strip()
        cmdline = (_read(os.path.join(proc, entry, "cmdline")) or "").split("\0")
        name = process_name(comm, cmdline)
        unit = unit_of(_read(os.path.join(proc, entry, "cgroup")) or "")
        key = unit or name
        g = groups.setdefault(key, {"unit": unit, "name": key.rsplit(".service", 1)[0], "processes": [], "files": []})
        g["processes"].append({"pid": int(entry), "comm": name})
        g["files"] = sorted(set(g["files"]) | set(files))[:10]
    return [groups[k] for k in sorted(groups)]


def needrestart_services(text):
    """The units ``needrestart -b`` names (``NEEDRESTART-SVC: nginx.service``)."""
    return sorted(
        {line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("NEEDRESTART-SVC:")} - {""}
    )


def find_restart_pending(run_command=None):
    """What still runs replaced files: /proc, with the units ``needrestart -b`` adds where it is
    installed (``run_command``: the module's, a list argv -> (rc, out, err))."""
    found = restart_pending(skip=(os.getpid(), os.getppid()))
    if run_command is not None and any(
        os.access(os.path.join(d, "needrestart"), os.X_OK) for d in ("/usr/sbin", "/usr/bin", "/sbin")
    ):
        rc, out, _err = run_command(["needrestart", "-b", "-r", "l"])
        if rc == 0:
            known = {g["unit"] for g in found if g["unit"]}
            for unit in needrestart_services(out):
                if unit not in known:
                    found.append({"unit": unit, "name": unit.rsplit(".service", 1)[0], "processes": [], "files": []})
    return found
