"""The approval policy (a baseline per OS family) and the waves, as pure rules.

No I/O: :func:`parse_policy` takes the file's text and name (the flows read the file), and
:func:`evaluate` decides one update at one moment. Every validation error is a ConfigError
naming the file, the line and the field (:mod:`patchctl.rules.yamldoc` reads the YAML), e.g.
``policy file /etc/patchctl/policy.yml, line 7: baselines.debian.approve_after_days: must be ...``.

The file (see ``policies/default.yml`` for a commented example)::

    baselines:                 # per OS family: debian, redhat, suse, windows, or default
      debian:
        classifications: [security, bugfix]   # approved classifications
        severities: []           # approved severities; empty: any (updates without one pass)
        approve_after_days: 3    # days since its release (when the source dates it), else since first seen
        reject: ["*-dbg"]        # name, uid or KB patterns (shell wildcards): never approved
        allow: ["openssl"]       # approved at once whatever the classification and age
        successors: repilot      # when a rollout's approved version is no longer offered:
                                 # repilot (the default), install or block (see below)
        successor_bake_days: 7   # repilot: the follow-up's pilot bake (default: the pilot's)
        starved_after_days: 30   # a lineage not delivered beyond the pilot for longer is starved
    waves:                     # ordered; each wave's hosts exclude those of earlier waves
      - name: pilot
        hosts: pilot             # an inventory host pattern or group
        bake_days: 7
        max_concurrency: 1       # hosts at a time: a count or a percentage ("25%")
        max_fail_percent: 0      # failed or unreachable hosts above this halt the wave
        min_success_percent: 100 # needed for the next wave to be promoted

Precedence of the rules for an update: ``reject`` first (a rejected update is never approved,
not even by ``allow``), then ``major`` (never approved by a rule: only ``patchctl approve ID
--major``), then ``allow``, then classification, severity and ``approve_after_days``.

``successors`` decides what a deploy does on a host whose rollout-approved version is no longer
offered (the repositories superseded it; the host is below it): ``install`` installs the newest
offered version of the same package when it is not major and the baseline approves its
classification (no ``approve_after_days`` wait); ``block`` leaves the host ``blocked`` until an
operator approves the successor; ``repilot`` (the default) blocks the host too, and ``patchctl
rollout promote`` sends the successor through a follow-up rollout of its own (only the
successors; the policy's waves, the first one baking ``successor_bake_days``) before the blocked
hosts get it. A major successor is never taken. A lineage whose successors come faster than the
pilot's bake never gets beyond the pilot: after ``starved_after_days`` the report and ``rollout
status`` name it *starved* and point at ``successors: install``.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import yaml

from patchctl.errors import ConfigError
from patchctl.rules.freezes import Freeze, parse_freezes
from patchctl.rules.maintenance import Window, parse_windows
from patchctl.rules.model import CLASSIFICATIONS, URGENCIES
from patchctl.rules.sla import AT_RISK_KEY, DEFAULT_KEY, Sla
from patchctl.rules.yamldoc import YamlDoc

FAMILIES = ("debian", "redhat", "suse", "windows", "default")
# Update source -> the OS family whose baseline decides it.
FAMILY_OF_SOURCE = {
    "apt": "debian",
    "dnf": "redhat",
    "zypper": "suse",
    "windows": "windows",
    "chocolatey": "windows",
}

# Policy states of an update (what `patchctl updates` shows, with manual decisions on top).
STATE_NEW = "new"  # seen, but no rule approves it (classification or severity not approved)
STATE_APPROVED = "approved"
STATE_REJECTED = "rejected"
STATE_WAITING = "waiting"  # approved by a rule once approve_after_days have passed
STATE_MANUAL = "needs manual approval"  # a major upgrade
POLICY_STATES = (STATE_NEW, STATE_APPROVED, STATE_REJECTED, STATE_WAITING, STATE_MANUAL)

# The ``successors`` setting of a baseline (see the module docstring).
SUCCESSORS_REPILOT = "repilot"
SUCCESSORS_INSTALL = "install"
SUCCESSORS_BLOCK = "block"
SUCCESSORS = (SUCCESSORS_REPILOT, SUCCESSORS_INSTALL, SUCCESSORS_BLOCK)


@dataclass(frozen=True)
class Baseline:
    """What a policy approves for one OS family."""

    classifications: tuple[str, ...] = ("security", "critical")
    severities: tuple[str, ...] = ()  # empty: any severity
    approve_after_days: int = 0
    reject: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()
    successors: str = SUCCESSORS_REPILOT  # one of SUCCESSORS
    # successors: repilot: the follow-up rollout's first wave bakes this long (None: its bake_days)
    successor_bake_days: float | None = None
    # a lineage not delivered beyond the first wave for longer than this is starved
    starved_after_days: float = 30


@dataclass(frozen=True)
class Concurrency:
    """``max_concurrency``: a host count, or a percentage of the wave's hosts."""

    value: int
    percent: bool = False

    def hosts(self, total: int) -> int:
        """How many hosts may run at once in a wave of ``total`` hosts (at least 1)."""
        if total <= 0:
            return 0
        n = math.ceil(total * self.value / 100) if self.percent else self.value
        return max(1, min(total, n))

    def __str__(self) -> str:
        return f"{self.value}%" if self.percent else str(self.value)

    @classmethod
    def parse(cls, text: str) -> Concurrency:
        """``"5"`` or ``"25%"``; ValueError otherwise."""
        raw = text.strip()
        percent = raw.endswith("%")
        number = int(raw[:-1].strip() if percent else raw)
        if number < 1 or (percent and number > 100):
            raise ValueError(raw)
        return cls(number, percent)


@dataclass(frozen=True)
class Wave:
    name: str
    hosts: str  # an inventory host pattern or group
    bake_days: float = 7
    max_concurrency: Concurrency = field(default_factory=lambda: Concurrency(1))
    max_fail_percent: float = 0
    min_success_percent: float = 100
    install_window: str | None = None  # a window of the policy (patchctl.rules.install_windows)

    def as_dict(self) -> dict[str, Any]:
        return {
            **({"install_window": self.install_window} if self.install_window else {}),
            "name": self.name,
            "hosts": self.hosts,
            "bake_days": self.bake_days,
            "max_concurrency": str(self.max_concurrency),
            "max_fail_percent": self.max_fail_percent,
            "min_success_percent": self.min_success_percent,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Wave:
        """The inverse of :meth:`as_dict` (waves frozen into a rollout)."""
        return cls(
            name=str(data["name"]),
            hosts=str(data["hosts"]),
            bake_days=float(data["bake_days"]),
            max_concurrency=Concurrency.parse(str(data["max_concurrency"])),
            max_fail_percent=float(data["max_fail_percent"]),
            min_success_percent=float(data["min_success_percent"]),
            install_window=data.get("install_window"),
        )


DEFAULT_WAVES = (
    Wave("pilot", "pilot", bake_days=7, max_concurrency=Concurrency(1), max_fail_percent=0, min_success_percent=100),
    Wave(
        "fleet",
        "all",
        bake_days=0,
        max_concurrency=Concurrency(25, percent=True),
        max_fail_percent=10,
        min_success_percent=90,
    ),
)


@dataclass(frozen=True)
class Policy:
    source: str  # the file, or "built-in"
    baselines: dict[str, Baseline] = field(default_factory=lambda: {"default": Baseline()})
    waves: tuple[Wave, ...] = DEFAULT_WAVES
    # maintenance windows by name (the file's ``windows:``, see patchctl.rules.maintenance)
    windows: dict[str, Window] = field(default_factory=dict)
    # change freezes (the file's ``freezes:``, see patchctl.rules.freezes)
    freezes: tuple[Freeze, ...] = ()
    # patch_role -> install window name (the file's ``roles:``, see patchctl.rules.install_windows)
    role_install_windows: dict[str, str] = field(default_factory=dict)

    # updates approved at once, with a short pilot bake of their own (see FastLane)
    fast_lane: FastLane | None = None
    # days-to-patch (patchctl.rules.sla); None: no SLA section in the report
    sla: Sla | None = None

    def wave_install_window(self, wave: str) -> str | None:
        return next((w.install_window for w in self.waves if w.name == wave), None)

    def baseline_for(self, source: str) -> Baseline | None:
        """The baseline deciding updates of ``source`` (apt, dnf, ...), else ``default``."""
        family = FAMILY_OF_SOURCE.get(source, "default")
        return self.baselines.get(family) or self.baselines.get("default")


BUILTIN = Policy(source="built-in")


# --- evaluation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class UpdateFacts:
    """What the policy looks at for one update."""

    uid: str
    source: str
    name: str
    classification: str
    first_seen_at: datetime
    severity: str | None = None
    major: bool = False
    kbs: tuple[str, ...] = ()
    released_at: datetime | None = None  # when the source released it, if it says
    unmanaged: bool = False  # an application installed outside Chocolatey (model.Update.unmanaged)
    cves: tuple[str, ...] = ()
    urgency: str | None = None  # apt: the Debian urgency of the changelog entries it brings

    @property
    def counted_from(self) -> str:
        """What ``approve_after_days`` counts from: ``released`` (the source's release date) when
        the source gives one, else ``first_seen`` (the first scan that reported it)."""
        return COUNT_FROM_RELEASE if self.released_at is not None else COUNT_FROM_FIRST_SEEN

    @property
    def counted_since(self) -> datetime:
        """The time ``approve_after_days`` counts from (see :attr:`counted_from`)."""
        return self.released_at if self.released_at is not None else self.first_seen_at


COUNT_FROM_RELEASE = "released"
COUNT_FROM_FIRST_SEEN = "first_seen"
_COUNT_FROM_WORDS = {COUNT_FROM_RELEASE: "release", COUNT_FROM_FIRST_SEEN: "first seen"}


@dataclass(frozen=True)
class Evaluation:
    state: str  # one of POLICY_STATES
    reason: str
    approve_at: datetime | None = None  # when a waiting update becomes approved

    def waiting_days(self, now: datetime) -> int:
        """Whole days (rounded up) until a waiting update is approved; 0 otherwise."""
        if self.state != STATE_WAITING or self.approve_at is None:
            return 0
        return max(1, math.ceil((self.approve_at - now).total_seconds() / 86400))


def _matches(patterns: Sequence[str], facts: UpdateFacts) -> str | None:
    names = (facts.name, facts.uid, *facts.kbs)
    for pattern in patterns:
        if any(fnmatch.fnmatchcase(n.lower(), pattern.lower()) for n in names):
            return pattern
    return None


def evaluate(policy: Policy, facts: UpdateFacts, now: datetime) -> Evaluation:
    """The policy's decision on one update at ``now`` (see the module docstring for precedence)."""
    baseline = policy.baseline_for(facts.source)
    if baseline is None:
        family = FAMILY_OF_SOURCE.get(facts.source, facts.source)
        return Evaluation(STATE_NEW, f"no baseline for {family} in {policy.source}")
    hit = _matches(baseline.reject, facts)
    if hit is not None:
        return Evaluation(STATE_REJECTED, f"matches reject pattern {hit!r}")
    if facts.unmanaged:
        return Evaluation(
            STATE_MANUAL,
            "installed outside Chocolatey: only 'patchctl approve ID --take-over' approves it",
        )
    if facts.major:
        return Evaluation(STATE_MANUAL, "major upgrade: only 'patchctl approve ID --major' approves it")
    fast = fast_lane_reason(policy, baseline, facts)
    if fast is not None:
        return Evaluation(STATE_APPROVED, fast)
    hit = _matches(baseline.allow, facts)
    if hit is not None:
        return Evaluation(STATE_APPROVED, f"matches allow pattern {hit!r}")
    if facts.classification not in baseline.classifications:
        return Evaluation(STATE_NEW, f"classification {facts.classification!r} is not approved by the policy")
    if baseline.severities and facts.severity is not None and facts.severity.lower() not in baseline.severities:
        return Evaluation(STATE_NEW, f"severity {facts.severity!r} is not approved by the policy")
    approve_at = facts.counted_since + timedelta(days=baseline.approve_after_days)
    since = _COUNT_FROM_WORDS[facts.counted_from]
    if now < approve_at:
        return Evaluation(
            STATE_WAITING,
            f"{facts.classification}, approved {baseline.approve_after_days} days after {since}",
            approve_at,
        )
    return Evaluation(
        STATE_APPROVED,
        f"{facts.classification}, {baseline.approve_after_days} days since {since} have passed",
        approve_at,
    )


# --- parsing and validation ------------------------------------------------------------------

_BASELINE_KEYS = ("classifications", "severities", "approve_after_days", "reject", "allow", "successors")
# What becomes of a rollout's lineages when the repositories move on (rules/lineage.py).
_LINEAGE_KEYS = ("successor_bake_days", "starved_after_days")
_WAVE_KEYS: tuple[str, ...] = (
    "name",
    "hosts",
    "bake_days",
    "max_concurrency",
    "max_fail_percent",
    "min_success_percent",
)
_WAVE_KEYS += ("install_window",)
_TOP_KEYS = ("version", "baselines", "waves", "windows", "freezes", "roles", "fast_lane", "fast_lane_bake_days", "sla")


def parse_policy(text: str, filename: str) -> Policy:
    """Parse and validate a policy file's text; ConfigError names ``filename``, line and field."""
    doc = YamlDoc(text, filename)
    root = doc.root()
    if root is None:
        raise doc.error(None, "", "the file is empty (expected baselines: and waves:)")
    top = doc.mapping(root, "", _TOP_KEYS)
    if "version" in top:
        _knode, vnode = top["version"]
        if doc.value(vnode) != 1:
            raise doc.error(vnode, "version", f"must be 1, got {doc.value(vnode)!r}")
    if "baselines" not in top:
        raise doc.error(root, "baselines", "missing (a mapping of OS family to baseline)")
    baselines: dict[str, Baseline] = {}
    _key, bnode = top["baselines"]
    for family, (_fk, fnode) in doc.mapping(bnode, "baselines", FAMILIES).items():
        baselines[family] = _baseline(doc, fnode, f"baselines.{family}")
    if not baselines:
        raise doc.error(bnode, "baselines", "must name at least one OS family")
    waves: tuple[Wave, ...] = DEFAULT_WAVES
    if "waves" in top:
        waves = _waves(doc, top["waves"][1])
    windows: dict[str, Window] = {}
    if "windows" in top:
        windows = parse_windows(top["windows"][1], filename)
    for i, w in enumerate(waves):
        if w.install_window is not None and w.install_window not in windows:
            node = top["waves"][1].value[i]
            raise doc.error(node, f"waves[{i}] ({w.name}).install_window", _undefined(w.install_window))
    fast_lane = _fast_lane(doc, top)
    sla = _sla(doc, top["sla"][1]) if "sla" in top else None
    return Policy(
        source=filename,
        baselines=baselines,
        waves=waves,
        windows=windows,
        freezes=_policy_freezes(doc, top),
        role_install_windows=_roles(doc, top, windows),
        fast_lane=fast_lane,
        sla=sla,
    )


# --- install windows (patchctl.rules.install_windows) -----------------------------------------------


def _undefined(name: str) -> str:
    return f"window {name!r} is not defined in windows:"


def _roles(doc: YamlDoc, top: dict[str, Any], windows: dict[str, Window]) -> dict[str, str]:
    if "roles" not in top:
        return {}
    out: dict[str, str] = {}
    for role, (_rk, rnode) in doc.mapping(top["roles"][1], "roles", ()).items():
        path = f"roles.{role}"
        fields = doc.mapping(rnode, path, ("install_window",))
        if "install_window" not in fields:
            raise doc.error(rnode, f"{path}.install_window", "missing")
        name = doc.string(fields["install_window"][1], f"{path}.install_window")
        if name not in windows:
            raise doc.error(fields["install_window"][1], f"{path}.install_window", _undefined(name))
        out[str(role)] = name
    return out


# --- freezes (patchctl.rules.freezes) ---------------------------------------------------------------


def _policy_freezes(doc: YamlDoc, top: dict[str, Any]) -> tuple[Freeze, ...]:
    return parse_freezes(doc, top["freezes"][1]) if "freezes" in top else ()


def _classification(doc: YamlDoc) -> Callable[[yaml.Node, str, str], str]:
    def check(node: yaml.Node, fieldname: str, value: str) -> str:
        if value not in CLASSIFICATIONS:
            raise doc.error(node, fieldname, f"unknown classification {value!r} (known: {', '.join(CLASSIFICATIONS)})")
        return value

    return check


def _baseline(doc: YamlDoc, node: yaml.Node, path: str) -> Baseline:
    fields = doc.mapping(node, path, _BASELINE_KEYS + _LINEAGE_KEYS)
    kwargs: dict[str, Any] = {}
    if "classifications" in fields:
        kwargs["classifications"] = doc.strings(
            fields["classifications"][1], f"{path}.classifications", _classification(doc)
        )
    if "severities" in fields:
        kwargs["severities"] = tuple(s.lower() for s in doc.strings(fields["severities"][1], f"{path}.severities"))
    if "approve_after_days" in fields:
        kwargs["approve_after_days"] = doc.int_value(fields["approve_after_days"][1], f"{path}.approve_after_days")
    for name in ("reject", "allow"):
        if name in fields:
            kwargs[name] = doc.strings(fields[name][1], f"{path}.{name}")
    if "successors" in fields:
        snode = fields["successors"][1]
        value = doc.string(snode, f"{path}.successors")
        if value not in SUCCESSORS:
            raise doc.error(snode, f"{path}.successors", f"must be one of {', '.join(SUCCESSORS)}, got {value!r}")
        kwargs["successors"] = value
    # the lineage keys
    for name in _LINEAGE_KEYS:
        if name in fields:
            kwargs[name] = doc.number(fields[name][1], f"{path}.{name}")
    return Baseline(**kwargs)


def _waves(doc: YamlDoc, node: yaml.Node) -> tuple[Wave, ...]:
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        raise doc.error(node, "waves", "must be a non-empty list of waves")
    waves: list[Wave] = []
    seen: set[str] = set()
    for i, wnode in enumerate(node.value):
        path = f"waves[{i}]"
        fields = doc.mapping(wnode, path, _WAVE_KEYS)
        for required in ("name", "hosts"):
            if required not in fields:
                raise doc.error(wnode, f"{path}.{required}", "missing")
        name = doc.string(fields["name"][1], f"{path}.name")
        if name in seen:
            raise doc.error(fields["name"][1], f"{path}.name", f"wave {name!r} is named twice")
        seen.add(name)
        path = f"waves[{i}] ({name})"
        kwargs: dict[str, Any] = {"name": name, "hosts": doc.string(fields["hosts"][1], f"{path}.hosts")}
        if "bake_days" in fields:
            kwargs["bake_days"] = doc.number(fields["bake_days"][1], f"{path}.bake_days")
        for pct in ("max_fail_percent", "min_success_percent"):
            if pct in fields:
                kwargs[pct] = doc.number(fields[pct][1], f"{path}.{pct}", 0, 100)
        if "max_concurrency" in fields:
            cnode = fields["max_concurrency"][1]
            raw = doc.value(cnode)
            try:
                if isinstance(raw, bool) or not isinstance(raw, int | str):
                    raise ValueError(raw)
                kwargs["max_concurrency"] = Concurrency.parse(str(raw))
            except ValueError:
                raise doc.error(
                    cnode,
                    f"{path}.max_concurrency",
                    f"must be a host count >= 1 or a percentage like '25%', got {raw!r}",
                ) from None
        if "install_window" in fields:
            kwargs["install_window"] = doc.string(fields["install_window"][1], f"{path}.install_window")
        waves.append(Wave(**kwargs))
    return tuple(waves)


# --- the fast lane ---------------------------------------------------------------------------
#
#     fast_lane:
#       cves: [CVE-2024-3094]        # updates that fix one of these
#       kev: kev.json                # a local copy of CISA's Known Exploited Vulnerabilities
#                                    # catalog (its JSON feed), relative to the policy file;
#                                    # patchctl never downloads it
#       urgency: [high, emergency, critical]   # apt: the Debian urgency of what it brings
#       severities: [critical]       # the source's severity (dnf, zypper, Windows)
#     fast_lane_bake_days: 1         # the pilot bake of a fast-lane rollout (default 1)
#
# A matching update is approved at once (no approve_after_days wait), after reject and the
# major/unmanaged rules (never overridden). ``cves`` and ``kev`` approve it whatever its
# classification; ``urgency`` and ``severities`` only within the baseline's classifications.
# ``patchctl rollout create`` freezes fast-lane updates into a rollout of their own whose first
# wave bakes ``fast_lane_bake_days``.

FAST_LANE_PREFIX = "fast lane: "
_FAST_LANE_KEYS = ("cves", "kev", "urgency", "severities")
DEFAULT_FAST_LANE_BAKE_DAYS = 1.0


@dataclass(frozen=True)
class FastLane:
    cves: frozenset[str] = frozenset()
    kev_file: str | None = None  # as written in the policy (the flow reads it)
    kev: frozenset[str] = frozenset()  # the KEV catalog's CVE ids (filled by with_kev)
    urgency: tuple[str, ...] = ()
    severities: tuple[str, ...] = ()
    bake_days: float = DEFAULT_FAST_LANE_BAKE_DAYS


def fast_lane_reason(policy: Policy, baseline: Baseline, facts: UpdateFacts) -> str | None:
    """Why the fast lane approves ``facts`` now (a reason starting FAST_LANE_PREFIX), or None."""
    lane = policy.fast_lane
    if lane is None:
        return None
    cves = [c.upper() for c in facts.cves]
    named = [c for c in cves if c in lane.cves]
    if named:
        return f"{FAST_LANE_PREFIX}fixes {', '.join(named)} (fast_lane.cves)"
    exploited = [c for c in cves if c in lane.kev]
    if exploited:
        return f"{FAST_LANE_PREFIX}fixes {', '.join(exploited)}, known exploited ({lane.kev_file})"
    if facts.classification not in baseline.classifications:
        return None
    if facts.urgency is not None and facts.urgency.lower() in lane.urgency:
        return f"{FAST_LANE_PREFIX}Debian urgency {facts.urgency}"
    if facts.severity is not None and facts.severity.lower() in lane.severities:
        return f"{FAST_LANE_PREFIX}severity {facts.severity}"
    return None


def fast_lane_waves(policy: Policy) -> tuple[Wave, ...]:
    """The policy's waves, the first one baking ``fast_lane_bake_days`` (when that is shorter)."""
    lane = policy.fast_lane
    bake = lane.bake_days if lane is not None else DEFAULT_FAST_LANE_BAKE_DAYS
    first, *rest = policy.waves
    return (replace(first, bake_days=min(first.bake_days, bake)), *rest)


def _fast_lane(doc: YamlDoc, top: dict[str, Any]) -> FastLane | None:
    bake = DEFAULT_FAST_LANE_BAKE_DAYS
    if "fast_lane_bake_days" in top:
        bake = doc.number(top["fast_lane_bake_days"][1], "fast_lane_bake_days")
    if "fast_lane" not in top:
        return None
    node = top["fast_lane"][1]
    fields = doc.mapping(node, "fast_lane", _FAST_LANE_KEYS)
    kwargs: dict[str, Any] = {"bake_days": bake}
    if "cves" in fields:
        kwargs["cves"] = frozenset(doc.strings(fields["cves"][1], "fast_lane.cves", _cve_check(doc)))
    if "kev" in fields:
        kwargs["kev_file"] = doc.string(fields["kev"][1], "fast_lane.kev")
    if "urgency" in fields:
        kwargs["urgency"] = doc.strings(fields["urgency"][1], "fast_lane.urgency", _urgency_check(doc))
    if "severities" in fields:
        kwargs["severities"] = tuple(s.lower() for s in doc.strings(fields["severities"][1], "fast_lane.severities"))
    return FastLane(**kwargs)


def _cve_check(doc: YamlDoc) -> Callable[[yaml.Node, str, str], str]:
    def check(node: yaml.Node, fieldname: str, value: str) -> str:
        if not _CVE_ID.match(value.strip().upper()):
            raise doc.error(node, fieldname, f"{value!r} is not a CVE id (CVE-YYYY-NNNN)")
        return value.strip().upper()

    return check


def _urgency_check(doc: YamlDoc) -> Callable[[yaml.Node, str, str], str]:
    def check(node: yaml.Node, fieldname: str, value: str) -> str:
        if value.lower() not in URGENCIES:
            raise doc.error(node, fieldname, f"unknown urgency {value!r} (known: {', '.join(URGENCIES)})")
        return value.lower()

    return check


_CVE_ID = re.compile(r"^CVE-\d{4}-\d{4,}$")


def with_kev(policy: Policy, text: str, filename: str) -> Policy:
    """``policy`` with its fast lane's KEV catalog read from ``text`` (CISA's JSON feed:
    ``{"vulnerabilities": [{"cveID": "CVE-...", ...}, ...]}``). ConfigError naming ``filename``
    and the field when it is not that shape."""
    import json

    lane = policy.fast_lane
    if lane is None:
        return policy
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{filename}: not JSON ({exc})") from None
    vulns = data.get("vulnerabilities") if isinstance(data, dict) else None
    if not isinstance(vulns, list):
        raise ConfigError(f"{filename}: vulnerabilities: missing or not a list (CISA's KEV catalog JSON)")
    ids = set()
    for i, item in enumerate(vulns):
        cve = item.get("cveID") if isinstance(item, dict) else None
        if not isinstance(cve, str) or not _CVE_ID.match(cve.strip().upper()):
            raise ConfigError(f"{filename}: vulnerabilities[{i}].cveID: must be a CVE id, got {cve!r}")
        ids.add(cve.strip().upper())
    return replace(policy, fast_lane=replace(lane, kev=frozenset(ids)))


# --- SLAs (patchctl.rules.sla) ---------------------------------------------------------------

# the severities sources give (dnf, zypper, Windows' MsrcSeverity), lower case
SLA_SEVERITIES = ("low", "moderate", "important", "critical")
_SLA_KEYS = tuple(dict.fromkeys((*CLASSIFICATIONS, *SLA_SEVERITIES, *URGENCIES, DEFAULT_KEY, AT_RISK_KEY)))


def _sla(doc: YamlDoc, node: yaml.Node) -> Sla:
    fields = doc.mapping(node, "sla", _SLA_KEYS)
    days = {k: doc.number(v, f"sla.{k}") for k, (_kn, v) in fields.items() if k != AT_RISK_KEY}
    if not days:
        raise doc.error(node, "sla", "must give the days to patch of at least one class, severity or urgency")
    if AT_RISK_KEY in fields:
        return Sla(days, doc.number(fields[AT_RISK_KEY][1], f"sla.{AT_RISK_KEY}"))
    return Sla(days)
