"""The HTML report: one self-contained file a manager can open anywhere.

Inline CSS, inline SVG charts (compliance donut, states by role, wave progress, the trend over
scan runs, the SLA breaches over scan runs when the policy sets an SLA) and a few lines of inline
JavaScript that sort the host table; no network access, no external file. Every figure carries a
``data-*`` attribute naming what it is, so a test (and any scraper) can read the numbers back.
Open ``report.html#sort=missing-desc`` to show the host table sorted by a column (its
``data-key``) on load.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape

from patchctl.render.words import age_text, short_time, state_word
from patchctl.rules.compliance import (
    BLOCKED,
    COMPLIANT,
    FAILED,
    MISSING,
    NEVER_SCANNED,
    REBOOT_PENDING,
    STALE,
    STATES,
    UNREACHABLE,
)
from patchctl.rules.model import CLASSIFICATIONS
from patchctl.rules.report import Report

STATE_COLOURS = {
    COMPLIANT: "#2e9d57",
    MISSING: "#e0a019",
    REBOOT_PENDING: "#4c7fe0",
    FAILED: "#d23f3f",
    BLOCKED: "#b5532a",
    UNREACHABLE: "#8c3b8c",
    STALE: "#8f8f8f",
    NEVER_SCANNED: "#cdd3da",
}

_CSS = """
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;
 background:#f4f6f8;color:#1d2733}
header{background:#1d2733;color:#fff;padding:18px 28px}
header h1{margin:0;font-size:22px;font-weight:600}
header p{margin:4px 0 0;color:#b8c3cf}
main{padding:20px 28px;max-width:1400px;margin:0 auto}
h2{font-size:15px;margin:0 0 10px;font-weight:600}
.kpis{display:flex;flex-wrap:wrap;gap:12px;margin-bottom:18px}
.kpi{background:#fff;border-radius:8px;padding:12px 16px;min-width:140px;box-shadow:0 1px 2px #0002}
.kpi .v{display:block;font-size:26px;font-weight:700}
.kpi .l{color:#5b6773;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.kpi.bad .v{color:#d23f3f}.kpi.good .v{color:#2e9d57}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(330px,1fr));gap:14px;margin-bottom:18px}
.card{background:#fff;border-radius:8px;padding:14px 16px;box-shadow:0 1px 2px #0002;overflow-x:auto}
.legend{list-style:none;padding:0;margin:8px 0 0;display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12px}
.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px;vertical-align:-1px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e4e8ec;white-space:nowrap}
td.n,th.n{text-align:right}
th{background:#eef1f4;position:sticky;top:0}
table.sortable th{cursor:pointer;user-select:none}
table.sortable th[aria-sort=ascending]::after{content:" \\25B2";font-size:10px}
table.sortable th[aria-sort=descending]::after{content:" \\25BC";font-size:10px}
.st{display:inline-block;padding:1px 7px;border-radius:9px;color:#fff;font-size:12px}
.muted{color:#7a8591}
.empty{color:#7a8591;font-style:italic}
svg{max-width:100%;height:auto}
svg text{font-family:inherit}
.wide{grid-column:1/-1}
.wrap td{white-space:normal;overflow-wrap:anywhere}
td.problem,td.name,td.os,td.when{white-space:normal;overflow-wrap:anywhere}
td.name{min-width:10em}td.os{min-width:7em}td.problem{min-width:12em}
th{white-space:normal;vertical-align:bottom}
.tools{display:flex;flex-wrap:wrap;align-items:center;gap:8px 14px;margin:0 0 8px}
.tools input{font:inherit;padding:4px 8px;border:1px solid #c8d0d8;border-radius:6px;min-width:16em}
.tools button{font:inherit;padding:3px 10px;border:1px solid #c8d0d8;border-radius:6px;background:#fff;cursor:pointer}
.tools button:disabled{color:#aab3bc;cursor:default}
"""

_JS = """
(function(){
  function val(td,num){var v=td.getAttribute('data-v');if(v===null)v=td.textContent;return num?parseFloat(v):v;}
  function sortTable(t,col,desc){
    var th=t.tHead.rows[0].cells,num=th[col].getAttribute('data-type')==='num';
    var rows=Array.prototype.slice.call(t.tBodies[0].rows);
    rows.sort(function(a,b){var x=val(a.cells[col],num),y=val(b.cells[col],num);
      var c=num?(x-y):String(x).localeCompare(String(y));return desc?-c:c;});
    rows.forEach(function(r){t.tBodies[0].appendChild(r);});
    for(var i=0;i<th.length;i++)th[i].removeAttribute('aria-sort');
    th[col].setAttribute('aria-sort',desc?'descending':'ascending');
  }
  var tables=document.querySelectorAll('table.sortable');
  Array.prototype.forEach.call(tables,function(t){
    Array.prototype.forEach.call(t.tHead.rows[0].cells,function(th,i){
      th.addEventListener('click',function(){sortTable(t,i,th.getAttribute('aria-sort')==='ascending');});
    });
  });
  var m=/sort=([a-z_]+)(?:-(asc|desc))?/.exec(location.hash),t=document.getElementById('hosts');
  if(m&&t){var h=t.querySelector('th[data-key="'+m[1]+'"]');if(h)sortTable(t,h.cellIndex,m[2]==='desc');}
  // the hosts table: a page of rows at a time, filtered by the search box (names, as typed)
  if(!t)return;
  var q=document.getElementById('host-search'),info=document.getElementById('host-page'),
      prev=document.getElementById('host-prev'),next=document.getElementById('host-next'),
      size=parseInt(t.getAttribute('data-page-size'),10)||100,page=0;
  function show(){
    var term=(q&&q.value||'').trim().toLowerCase(),rows=t.tBodies[0].rows,hits=[],i;
    for(i=0;i<rows.length;i++){var n=rows[i].getAttribute('data-host');
      if(n!==null&&(!term||n.toLowerCase().indexOf(term)>=0))hits.push(rows[i]);else rows[i].hidden=true;}
    var pages=Math.max(1,Math.ceil(hits.length/size));if(page>=pages)page=pages-1;
    for(i=0;i<hits.length;i++)hits[i].hidden=(i<page*size||i>=(page+1)*size);
    var from=hits.length?page*size+1:0,to=Math.min(hits.length,(page+1)*size);
    if(info)info.textContent=from+'\u2013'+to+' of '+hits.length+' hosts'+(term?' matching \u201c'+term+'\u201d':'');
    if(prev)prev.disabled=page<=0;if(next)next.disabled=page>=pages-1;
  }
  if(q)q.addEventListener('input',function(){page=0;show();});
  if(prev)prev.addEventListener('click',function(){page--;show();});
  if(next)next.addEventListener('click',function(){page++;show();});
  Array.prototype.forEach.call(t.tHead.rows[0].cells,function(th){th.addEventListener('click',function(){page=0;show();});});
  show();
})();
"""


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _badge(state: str) -> str:
    return f'<span class="st" style="background:{STATE_COLOURS.get(state, "#999")}">{_e(state_word(state))}</span>'


def _legend(counts: Mapping[str, int]) -> str:
    items = "".join(
        f'<li data-state="{s}" data-count="{counts.get(s, 0)}"><i style="background:{STATE_COLOURS[s]}"></i>'
        f"{_e(state_word(s))}: <b>{counts.get(s, 0)}</b></li>"
        for s in STATES
        if counts.get(s, 0)
    )
    return f'<ul class="legend">{items}</ul>'


def donut(counts: Mapping[str, int], centre: str, label: str) -> str:
    """An SVG donut of ``counts`` per state, ``centre`` written in the middle."""
    total = sum(counts.values())
    r, width = 62.0, 26.0
    circ = 2 * math.pi * r
    parts = [f'<circle cx="90" cy="90" r="{r}" fill="none" stroke="#eef1f4" stroke-width="{width}"/>']
    offset = 0.0
    for state in STATES:
        n = counts.get(state, 0)
        if not n or not total:
            continue
        length = circ * n / total
        parts.append(
            f'<circle class="seg" data-state="{state}" data-count="{n}" cx="90" cy="90" r="{r}" fill="none" '
            f'stroke="{STATE_COLOURS[state]}" stroke-width="{width}" '
            f'stroke-dasharray="{length:.3f} {circ - length:.3f}" stroke-dashoffset="{-offset:.3f}" '
            f'transform="rotate(-90 90 90)"><title>{_e(state_word(state))}: {n}</title></circle>'
        )
        offset += length
    parts.append(
        f'<text x="90" y="88" text-anchor="middle" font-size="26" font-weight="700" fill="#1d2733">{_e(centre)}'
        f'</text><text x="90" y="110" text-anchor="middle" font-size="12" fill="#5b6773">{_e(label)}</text>'
    )
    return (
        f'<svg id="donut" role="img" aria-label="hosts by compliance state" width="180" height="180" '
        f'viewBox="0 0 180 180">{"".join(parts)}</svg>'
    )


def stacked_bars(rows: Sequence[tuple[str, Mapping[str, int]]], chart_id: str, attr: str) -> str:
    """Horizontal bars, one per ``(label, counts per state)``, each split by state."""
    if not rows:
        return '<p class="empty">nothing to show</p>'
    bar_w, label_w, h = 300.0, 90.0, 26
    height = h * len(rows) + 6
    out = []
    for i, (label, counts) in enumerate(rows):
        total = sum(counts.values())
        y = 4 + i * h
        out.append(
            f'<g class="bar" data-{attr}="{_e(label)}" data-total="{total}">'
            f'<text x="0" y="{y + 15}" font-size="12">{_e(label)}</text>'
        )
        x = label_w
        for state in STATES:
            n = counts.get(state, 0)
            if not n or not total:
                continue
            w = bar_w * n / total
            out.append(
                f'<rect data-state="{state}" data-count="{n}" x="{x:.2f}" y="{y}" width="{w:.2f}" height="{h - 8}" '
                f'fill="{STATE_COLOURS[state]}"><title>{_e(label)}: {_e(state_word(state))} {n}</title></rect>'
            )
            x += w
        out.append(f'<text x="{label_w + bar_w + 6}" y="{y + 15}" font-size="12" fill="#5b6773">{total}</text></g>')
    return (
        f'<svg id="{chart_id}" role="img" width="{label_w + bar_w + 40:.0f}" height="{height}" '
        f'viewBox="0 0 {label_w + bar_w + 40:.0f} {height}">{"".join(out)}</svg>'
    )


def wave_bars(rep: Report) -> str:
    if not rep.waves:
        return '<p class="empty">no rollout yet</p>'
    rows = []
    for w in rep.waves:
        r = w.row
        rows.append(
            (
                r.wave,
                {
                    COMPLIANT: r.hosts_ok,
                    FAILED: r.hosts_failed,
                    UNREACHABLE: r.hosts_unreachable,
                    NEVER_SCANNED: r.hosts_pending,
                },
            )
        )
    table = "".join(
        f'<tr data-wave="{_e(w.row.wave)}"><td>{_e(w.row.wave)}</td><td>{_e(w.row.state)}'
        f"{' (' + _e(w.row.halted_reason) + ')' if w.row.halted_reason else ''}</td>"
        f'<td class="n" data-k="hosts_total">{w.row.hosts_total}</td><td class="n" data-k="hosts_ok">'
        f'{w.row.hosts_ok}</td><td class="n" data-k="hosts_failed">{w.row.hosts_failed + w.row.hosts_unreachable}'
        f'</td><td class="n" data-k="hosts_pending">{w.row.hosts_pending}</td>'
        f"<td>{_e(short_time(w.bake_until))}</td></tr>"
        for w in rep.waves
    )
    legend = (
        '<ul class="legend"><li><i style="background:#2e9d57"></i>deployed ok</li>'
        '<li><i style="background:#d23f3f"></i>failed</li><li><i style="background:#8c3b8c"></i>unreachable</li>'
        '<li><i style="background:#cdd3da"></i>pending</li></ul>'
    )
    return (
        stacked_bars(rows, "waves-chart", "wave")
        + legend
        + '<table id="waves"><thead><tr><th>Wave</th><th>State</th><th class="n">Hosts</th><th class="n">OK</th>'
        '<th class="n">Failed</th><th class="n">Pending</th><th>Bake until</th></tr></thead>'
        f"<tbody>{table}</tbody></table>"
    )


def _time_labels(times: Sequence[datetime], x: Callable[[int], float], h: float) -> str:
    """A chart's time axis: at most ~10 labels; the first starts at its point and the last ends at
    its point, so neither reaches past the chart's edge."""
    n = len(times)
    step = max(1, math.ceil(n / 10))
    shown = [i for i in range(0, n, step) if n - 1 - i >= step / 2] + [n - 1]

    def anchor(i: int) -> str:
        return "start" if i == 0 and n > 1 else ("end" if i == n - 1 and n > 1 else "middle")

    return "".join(
        f'<text x="{x(i):.1f}" y="{h - 10}" font-size="11" text-anchor="{anchor(i)}" fill="#5b6773">'
        f"{_e(times[i].astimezone(UTC).strftime('%m-%d %H:%M'))}</text>"
        for i in shown
    )


def trend(rep: Report) -> str:
    """A line of the compliant share of hosts per scan run, and the missing updates under it."""
    points = rep.history
    if not points:
        return '<p class="empty">no scan yet</p>'
    # drawn 960 wide and scaled to the card's width (a full row of the page)
    w, h, left, top, bottom = 960.0, 220.0, 38.0, 12.0, 28.0
    plot_w, plot_h = w - left - 12, h - top - bottom
    n = len(points)

    def x(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(percent: float) -> float:
        return top + plot_h * (1 - percent / 100)

    grid = "".join(
        f'<line x1="{left}" x2="{w - 12}" y1="{y(p):.1f}" y2="{y(p):.1f}" stroke="#e4e8ec"/>'
        f'<text x="{left - 6}" y="{y(p) + 4:.1f}" font-size="11" text-anchor="end" fill="#5b6773">{p}%</text>'
        for p in (0, 25, 50, 75, 100)
    )
    line = " ".join(f"{x(i):.1f},{y(p.compliant_percent):.1f}" for i, p in enumerate(points))
    most = max(p.missing_total for p in points) or 1
    missing_line = " ".join(f"{x(i):.1f},{y(100 * p.missing_total / most):.1f}" for i, p in enumerate(points))
    dots = "".join(
        f'<circle class="pt" data-run="{p.run_id}" data-compliant-percent="{p.compliant_percent:g}" '
        f'data-missing="{p.missing_total}" data-hosts="{p.hosts}" cx="{x(i):.1f}" cy="{y(p.compliant_percent):.1f}" '
        f'r="4" fill="#2e9d57"><title>run {p.run_id}, {_e(short_time(p.at))}: {p.compliant_percent:g}% compliant, '
        f"{p.missing_total} missing updates on {p.hosts} hosts</title></circle>"
        for i, p in enumerate(points)
    )
    labels = _time_labels([p.at for p in points], x, h)
    return (
        f'<svg id="trend" role="img" aria-label="compliant hosts over time" width="100%" '
        f'viewBox="0 0 {w:.0f} {h:.0f}">{grid}'
        f'<polyline id="trend-missing" fill="none" stroke="#e0a019" stroke-width="2" stroke-dasharray="6 4" '
        f'points="{missing_line}"/>'
        f'<polyline fill="none" stroke="#2e9d57" stroke-width="2.5" points="{line}"/>{dots}{labels}</svg>'
        '<ul class="legend"><li><i style="background:#2e9d57"></i>hosts compliant (%)</li>'
        f'<li><i style="background:#e0a019"></i>missing updates (100% = {most})</li></ul>'
        '<p class="muted">Each point is one scan run (hover it for details).</p>'
    )


def _th(label: str, key: str, num: bool = False) -> str:
    cls = ' class="n"' if num else ""
    kind = ' data-type="num"' if num else ""
    return f'<th data-key="{key}"{kind}{cls}>{_e(label)}</th>'


# The hosts table's first order: the states that need someone first, then by name.
WORST_FIRST = (FAILED, UNREACHABLE, MISSING, STALE, NEVER_SCANNED, REBOOT_PENDING, COMPLIANT)
HOSTS_PAGE = 100  # rows of the hosts table shown at a time


def host_table(rep: Report) -> str:
    """Every host, worst state first; a page at a time, searchable by name (the page's script)."""
    head = (
        _th("Host", "host")
        + _th("OS", "os")
        + _th("Role", "role")
        + (_th("Wave", "wave") if rep.waves_of else "")
        + _th("State", "state")
        + _th("Last scan", "last_scan")
        + _th("Missing, approved", "missing", True)
        + _th("Missing, not approved", "not_approved", True)
        + _th("Security", "security", True)
        + _th("Major", "major", True)
        + _th("Reboot", "reboot")
        + _th("Problem", "error")
    )
    order = {s: i for i, s in enumerate(WORST_FIRST)}
    rows = []
    for h in sorted(rep.hosts, key=lambda h: (order.get(rep.states.get(h.name, NEVER_SCANNED), 99), h.name)):
        state = rep.states.get(h.name, NEVER_SCANNED)
        scan = h.last_scan_at.astimezone(UTC).isoformat() if h.last_scan_at else ""
        wave = f"<td>{_e(rep.waves_of.get(h.name, '-'))}</td>" if rep.waves_of else ""
        approved = rep.missing_approved(h)
        rows.append(
            f'<tr data-host="{_e(h.name)}" data-state="{state}"><td class="name">{_e(h.name)}</td>'
            f'<td class="os">{_e(h.os or "-")}</td>'
            f'<td>{_e(h.patch_role or "-")}</td>{wave}<td data-v="{order.get(state, 99)}">{_badge(state)}</td>'
            f'<td class="when" data-v="{scan}">{_e(short_time(h.last_scan_at))}</td>'
            f'<td class="n" data-k="missing">{approved}</td>'
            f'<td class="n" data-k="not_approved">{h.missing.total - approved}</td>'
            f'<td class="n" data-k="security">{h.missing.security}</td>'
            f'<td class="n" data-k="major">{h.missing.major}</td>'
            f"<td>{'pending' if h.reboot_pending else ''}</td><td class=\"problem\">{_e(h.error or '')}</td></tr>"
        )
    body = "".join(rows) or '<tr><td class="empty" colspan="12">no host in the store</td></tr>'
    tools = (
        '<div class="tools"><input id="host-search" type="search" placeholder="Search hosts by name" '
        'aria-label="search hosts by name"><button id="host-prev" type="button">&larr; previous</button>'
        f'<span id="host-page" class="muted">1&ndash;{min(HOSTS_PAGE, len(rep.hosts))} of {len(rep.hosts)} hosts</span>'
        '<button id="host-next" type="button">next &rarr;</button></div>'
    )
    return (
        f'{tools}<table id="hosts" class="sortable" data-page-size="{HOSTS_PAGE}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


def safety_cards(rep: Report) -> str:
    """Change safety: the health checks of each host's latest run, and the restarts pending."""
    health_rows = [
        [_e(c.host), _e(c.name), _e(c.state), _e(c.before or "-"), _e(c.context), _e(c.message)] for c in rep.health
    ]
    restart_rows = [[_e(r.host), _e(", ".join(r.services)), _e(short_time(r.since))] for r in rep.restart_pending]
    return (
        '<div class="card wide"><h2>Health checks</h2>'
        + _simple_table(
            "health", ["Host", "Check", "State", "Before", "Run", "Message"], health_rows, "no health check ran"
        )
        + '</div><div class="card"><h2>Restart pending</h2>'
        + _simple_table("restart-pending", ["Host", "Services", "Since"], restart_rows, "no restart pending")
        + "</div>"
    )


def _simple_table(table_id: str, header: Iterable[str], rows: Iterable[Iterable[str]], empty: str) -> str:
    cells = ["<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows]
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    if not cells:
        return f'<p class="empty" id="{table_id}">{_e(empty)}</p>'
    return f'<table id="{table_id}" class="wrap"><thead><tr>{head}</tr></thead><tbody>{"".join(cells)}</tbody></table>'


def _kpi(metric: str, value: object, label: str, tone: str = "") -> str:
    cls = f"kpi {tone}".strip()
    return (
        f'<div class="{cls}" data-metric="{metric}"><span class="v">{_e(value)}</span>'
        f'<span class="l">{_e(label)}</span></div>'
    )


def sla_breach_chart(rep: Report) -> str:
    """The breached items (their SLA passed, still missing) at each past scan run, as a line."""
    points = rep.sla.history if rep.sla is not None else ()
    if not points:
        return '<p class="empty" id="sla-breaches">no scan yet</p>'
    w, h, left, top, bottom = 960.0, 200.0, 38.0, 12.0, 28.0
    plot_w, plot_h = w - left - 12, h - top - bottom
    n = len(points)
    most = max(p.breached for p in points) or 1

    def x(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(count: float) -> float:
        return top + plot_h * (1 - count / most)

    ticks = sorted({0, most // 2, most}) if most > 1 else [0, 1]
    grid = "".join(
        f'<line x1="{left}" x2="{w - 12}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e4e8ec"/>'
        f'<text x="{left - 6}" y="{y(v) + 4:.1f}" font-size="11" text-anchor="end" fill="#5b6773">{v}</text>'
        for v in ticks
    )
    line = " ".join(f"{x(i):.1f},{y(p.breached):.1f}" for i, p in enumerate(points))
    dots = "".join(
        f'<circle class="bp" data-run="{p.run_id}" data-breached="{p.breached}" data-hosts="{p.hosts}" '
        f'cx="{x(i):.1f}" cy="{y(p.breached):.1f}" r="4" fill="#c0392b"><title>run {p.run_id}, '
        f"{_e(short_time(p.at))}: {p.breached} breached on {p.hosts} hosts</title></circle>"
        for i, p in enumerate(points)
    )
    labels = _time_labels([p.at for p in points], x, h)
    return (
        f'<svg id="sla-breaches" role="img" aria-label="SLA breaches over time" width="100%" '
        f'viewBox="0 0 {w:.0f} {h:.0f}">{grid}'
        f'<polyline fill="none" stroke="#c0392b" stroke-width="2.5" points="{line}"/>{dots}{labels}</svg>'
        '<p class="muted">Each point is one scan run: the updates missing then whose SLA had passed by then.</p>'
    )


def sla_section(rep: Report) -> str:
    """The SLA card (the policy's sla:): per host at risk and breached, the time to patch per
    class, the breaches over the scan runs. Empty when the policy sets no SLA."""
    sla = rep.sla
    if sla is None:
        return ""
    doc = sla.as_dict()
    fleet = {"host": "(fleet)", **doc["fleet"]}
    host_rows = [
        [
            f'<span data-host="{_e(r["host"])}">{_e(r["host"])}</span>',
            f'<b data-k="tracked">{r["tracked"]}</b>',
            f'<b data-k="at_risk">{r["at_risk"]}</b>',
            f'<b data-k="breached">{r["breached"]}</b>',
        ]
        for r in [*doc["hosts"], fleet]
    ]
    since = "all time" if sla.since is None else f"since {short_time(sla.since)}"
    ttp_rows = [
        [
            f'<span data-class="{_e(p.classification)}">{_e(p.classification)}</span>',
            f'<b data-k="count">{p.count}</b>',
            f'<b data-k="mean_days">{p.mean_days:g}</b>',
            f'<b data-k="p90_days">{p.p90_days:g}</b>',
        ]
        for p in sla.time_to_patch
    ]
    days = ", ".join(f"{k} {v:g}" for k, v in sla.sla.days.items())
    grid = "margin-top:14px;grid-template-columns:repeat(auto-fit,minmax(400px,1fr))"
    return f"""<section class="grid" id="sla" style="{grid}">
<div class="card"><h2>SLA: at risk and breached</h2>
<p class="muted">Days to patch: {_e(days)}; at risk within {sla.sla.at_risk_days:g} days of the breach.</p>
{_simple_table("sla-hosts", ["Host", "Tracked", "At risk", "Breached"], host_rows, "nothing tracked")}</div>
<div class="card"><h2>SLA: time to patch</h2>
<p class="muted">Updates found installed after they were missing, {_e(since)}.</p>
{_simple_table("sla-ttp", ["Class", "Patched", "Mean days", "P90 days"], ttp_rows, "nothing patched")}</div>
<div class="card wide"><h2>SLA breaches over time</h2>{sla_breach_chart(rep)}</div>
</section>"""


_TOP_HEADER = ("Update", "Version", "Class", "", "CVEs", "Hosts")


def render_html(rep: Report, title: str = "Patch compliance") -> str:
    """The whole report as one self-contained HTML document."""
    t = rep.totals
    failures = len({f.host for f in rep.failures})
    kpis = "".join(
        [
            _kpi("hosts", t.hosts, "hosts"),
            _kpi(
                "compliant_percent",
                f"{rep.compliant_percent:g}%",
                "compliant",
                "good" if rep.compliant_percent == 100 else "",
            ),
            _kpi("hosts_with_missing", t.hosts_with_missing, "hosts missing updates"),
            _kpi("missing_total", t.missing.total, "missing updates"),
            _kpi(
                "missing_security", t.missing.security, "security updates missing", "bad" if t.missing.security else ""
            ),
            _kpi("reboot_pending", t.reboot_pending, "reboots pending"),
            _kpi("failures", failures, "hosts failing", "bad" if failures else ""),
        ]
    )
    by_role = stacked_bars(list(rep.by_role.items()), "roles-chart", "role")
    top_rows = [
        [
            f'<span data-uid="{_e(m.uid)}">{_e(m.source)}:{_e(m.name)}</span>',
            _e(m.version),
            _e(m.classification),
            "major" if m.major else "",
            _e(", ".join(m.cves[:4]) + (" ..." if len(m.cves) > 4 else "")),
            f'<b data-k="hosts">{m.hosts}</b>',
        ]
        for m in rep.top_missing
    ]
    reboot_rows = [
        [_e(r.host), _e(r.patch_role or "-"), _e(r.patch_window or "-"), _e(short_time(r.since)), _e(age_text(r.age))]
        for r in rep.pending_reboots
    ]
    failure_rows = [
        [
            _e(f.host),
            _e(f.stage + (f" ({f.wave})" if f.wave else "")),
            _badge(FAILED if f.status != UNREACHABLE else UNREACHABLE),
            _e(f.reason),
            _e(short_time(f.at)),
        ]
        for f in rep.failures
    ]
    sub = f"generated {short_time(rep.generated_at)} &middot; {t.hosts} hosts"
    if rep.rollout_id is not None:
        sub += f" &middot; rollout {rep.rollout_id}"
    sub += f" &middot; stale after {rep.stale_days:g} days"
    classes = ", ".join(f"{c} {n}" for c, n in t.missing.by_class.items() if n and c in CLASSIFICATIONS)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="patchctl">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<header><h1>{_e(title)}</h1><p>{sub}</p></header>
<main>
<section class="kpis" id="kpis">{kpis}</section>
<section class="grid">
<div class="card"><h2>Hosts by compliance state</h2>{donut(rep.by_state, f"{rep.compliant_percent:g}%", "compliant")}
{_legend(rep.by_state)}</div>
<div class="card"><h2>By role</h2>{by_role}{_legend(rep.by_state)}</div>
<div class="card wide"><h2>Wave progress</h2>{wave_bars(rep)}</div>
<div class="card wide"><h2>Compliance over time</h2>{trend(rep)}</div>
</section>
<section class="card"><h2>Hosts</h2>
<p class="muted">Missing updates by classification over the fleet: {_e(classes or "none")}. Click a column to sort.</p>
{host_table(rep)}</section>
<section class="grid" style="margin-top:14px;grid-template-columns:repeat(auto-fit,minmax(400px,1fr))">
<div class="card wide"><h2>Most widespread missing updates</h2>
{_simple_table("top-missing", _TOP_HEADER, top_rows, "nothing is missing")}</div>
<div class="card"><h2>Pending reboots</h2>
{_simple_table("reboots", ["Host", "Role", "Window", "Since", "Age"], reboot_rows, "no reboot pending")}</div>
<div class="card"><h2>Failures</h2>
{_simple_table("failures", ["Host", "Stage", "Status", "Reason", "When"], failure_rows, "no failure")}</div>
{safety_cards(rep)}
</section>
{sla_section(rep)}
</main>
<script>{_JS}</script>
</body>
</html>
"""
