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
