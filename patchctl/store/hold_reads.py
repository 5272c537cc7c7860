"""Reading the hosts' package holds (``hosts.holds``, migration 0012) through a
:data:`~patchctl.store.reports.Query` (plain SQL: ``patchctl report`` reads it with the standard
library alone)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from patchctl.rules.holds import HostHolds, host_holds
from patchctl.store.reports import Query, _host_filter

_HOLDS_SQL = "SELECT name AS host, holds FROM hosts WHERE holds IS NOT NULL"


def holds(q: Query, hosts: Sequence[str] | None = None) -> dict[str, HostHolds]:
    """host -> its holds and the updates they keep back, for hosts with any."""
    params: dict[str, Any] = {}
    rows = q(_HOLDS_SQL + _host_filter("id", hosts, params), params)
    out: dict[str, HostHolds] = {}
    for r in rows:
        raw = r["holds"]
        data = json.loads(raw) if isinstance(raw, str) else raw
        found = host_holds(str(r["host"]), data if isinstance(data, dict) else None)
        if found.holds or found.updates:
            out[found.host] = found
    return out
