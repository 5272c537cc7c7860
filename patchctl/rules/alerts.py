"""Incidents from an alerting pipeline: an Alertmanager webhook payload, or a plain
``{rollout, host, text}``, read into the incidents to open (pure: text in, values out).

Alertmanager (webhook ``version`` "4"): one incident per alert that is ``firing`` (resolved
alerts open nothing). Its host is the label ``host``, else ``instance`` without its port; its
rollout the label ``patchctl_rollout`` (or ``rollout``), else the one the command names, else the
latest; its text ``alert NAME: summary`` (the annotation ``summary``, else ``description``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from patchctl.errors import ConfigError


@dataclass(frozen=True)
class AlertIncident:
    rollout: int | None  # None: the command's --rollout, else the latest rollout
    host: str | None
    text: str


def _rollout(value: Any, where: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not str(value).strip().isdigit():
        raise ConfigError(f"{where}: must be a rollout id (a whole number), got {value!r}")
    return int(str(value).strip())


def _host(labels: Mapping[str, Any]) -> str | None:
    host = labels.get("host") or labels.get("instance")
    if not isinstance(host, str) or not host.strip():
        return None
    host = host.strip()
    if host.startswith("[") and "]" in host:  # [v6]:port
        return host[1 : host.index("]")]
    name, sep, port = host.rpartition(":")
    return name if sep and port.isdigit() and name else host


def parse_alert(text: str, source: str) -> list[AlertIncident]:
    """The incidents a payload asks for; ConfigError ``SOURCE: FIELD: what`` on bad input."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}: not JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: must be a JSON object (an Alertmanager webhook payload or {{rollout, host, text}})"
        )
    if "alerts" in data:
        return _alertmanager(data, source)
    body = data.get("text")
    if not isinstance(body, str) or not body.strip():
        raise ConfigError(f"{source}: text: must be a non-empty string")
    host = data.get("host")
    if host is not None and (not isinstance(host, str) or not host.strip()):
        raise ConfigError(f"{source}: host: must be a host name")
    return [
        AlertIncident(_rollout(data.get("rollout"), f"{source}: rollout"), host.strip() if host else None, body.strip())
    ]


def _alertmanager(data: Mapping[str, Any], source: str) -> list[AlertIncident]:
    alerts = data["alerts"]
    if not isinstance(alerts, list):
        raise ConfigError(f"{source}: alerts: must be a list")
    found = data.get("commonLabels")
    common: dict[str, Any] = found if isinstance(found, dict) else {}
    out = []
    for i, alert in enumerate(alerts):
        where = f"{source}: alerts[{i}]"
        if not isinstance(alert, dict):
            raise ConfigError(f"{where}: must be an object")
        status = alert.get("status", data.get("status"))
        if status not in ("firing", "resolved"):
            raise ConfigError(f"{where}: status: must be firing or resolved, got {status!r}")
        if status != "firing":
            continue
        own = alert.get("labels") or {}
        if not isinstance(own, dict):
            raise ConfigError(f"{where}: labels: must be an object")
        labels = {**common, **own}
        notes = alert.get("annotations") or {}
        if not isinstance(notes, dict):
            raise ConfigError(f"{where}: annotations: must be an object")
        name = str(labels.get("alertname") or "unnamed")
        about = str(notes.get("summary") or notes.get("description") or "").strip()
        rollout = _rollout(labels.get("patchctl_rollout", labels.get("rollout")), f"{where}: labels.patchctl_rollout")
        out.append(AlertIncident(rollout, _host(labels), f"alert {name}: {about}" if about else f"alert {name}"))
    return out
