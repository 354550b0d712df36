"""The half-year report for the periodic review meeting, computed from the store's history.

`coopflow report --period 2027H1 [--format md|html]`. Periods are half years in the policy's
time zone: ``YYYYH1`` is 1 January 00:00 to 1 July 00:00, ``YYYYH2`` is 1 July to 1 January.

What is counted (the same text is printed in the report, see `DEFINITIONS`):

* **opened**: instances started in the period;
* **closed**: transitions into a final state applied in the period;
* **overdue**: *lateness transitions* applied in the period — fired by a deadline timer and
  allowed to nobody but the system (``overdue``, ``escalate``, ``deemed_received``…); deadline
  transitions that people may also fire (``request_reports``, ``meeting_time``) are the normal
  course of a workflow and are not counted;
* **response time** of a party: from the moment an instance enters a state in which that party
  owes the next step (it may fire a non-system transition from that state, see
  `engine.views.overview.next_steps`) to that party's first applied event in that state — the
  transition that leaves it, or its consent when the transition needs several parties' consent.
  Counted in the period of the response; a state left by someone else (or by a deadline) gives
  no response time;
* **emergency meetings**: `emergency_review` instances opened in the period or ended in it; the
  outcome is the title of the final state reached (as of the period's end);
* **escalations**: lateness transitions, and every instance started or transition fired by an
  event rule (rules/escalation.yaml), in the period.
"""

from __future__ import annotations

import html
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from engine import clock
from engine.views.overview import MEETING_WORKFLOW, Specs, clause_key, is_lateness, next_steps
from engine.policy.spec import SYSTEM
from engine.store.database import history, instances
from engine.views.text import clean

PERIOD_RE = re.compile(r"^(\d{4})[Hh]([12])$")
MIN_YEAR, MAX_YEAR = 1970, 9998  # the years a report (and a simulation) may cover

DEFINITIONS = [
    ("Mở mới", "số hồ sơ được khởi tạo trong kỳ."),
    ("Kết thúc", "số lần hồ sơ chuyển sang trạng thái cuối (đã trả lời, từ chối, rút, kết thúc…) trong kỳ."),
    ("Quá hạn", "số lần hệ thống tự động chuyển trạng thái khi hết thời hạn mà chỉ hệ thống được thực hiện "
                "(ví dụ: quá hạn trả lời, báo cáo lãnh đạo, coi như đã nhận); các bước hệ thống làm thay khi đến hạn "
                "mà con người cũng được làm (ví dụ: đến giờ họp) không tính."),
    ("Thời gian phản hồi", "tính cho từng cơ quan: từ lúc hồ sơ chuyển đến trạng thái mà cơ quan đó có bước "
                           "tiếp theo phải làm (được thực hiện một chuyển trạng thái không phải của hệ thống) đến lúc "
                           "cơ quan đó thực hiện sự kiện đầu tiên được chấp nhận ở trạng thái này (chuyển trạng thái, "
                           "hoặc cho ý kiến đồng ý khi cần sự thống nhất của nhiều cơ quan). Tính vào kỳ có phản hồi; "
                           "trạng thái do cơ quan khác hoặc hệ thống chuyển đi thì không tính."),
    ("Chuyển cấp", "các lần quá hạn nêu trên, và mọi hồ sơ được khởi tạo hoặc chuyển trạng thái theo quy tắc "
                   "sự kiện (ví dụ: đề xuất họp giao ban đột xuất, báo cáo UBND tỉnh)."),
]
DEFINITIONS_EN = (
    "Response time of a party: from an instance entering a state in which that party owes the next step "
    "(may fire a non-system transition from it) to that party's first applied event in that state "
    "(the transition leaving it, or its consent to a transition needing several parties' consent)."
)


class PeriodError(ValueError):
    """A period that is not YYYYH1 or YYYYH2."""


@dataclass(frozen=True)
class Period:
    label: str
    year: int
    half: int
    start: datetime
    end: datetime  # exclusive

    def __contains__(self, moment: datetime) -> bool:
        return self.start <= moment < self.end

    @property
    def title(self) -> str:
        return f"6 tháng {'đầu' if self.half == 1 else 'cuối'} năm {self.year}"


def parse_period(text: str, tz) -> Period:
    """'2027H1' -> 1 Jan 2027 00:00 .. 1 Jul 2027 00:00 in `tz` (end exclusive)."""
    match = PERIOD_RE.match(text.strip())
    if not match:
        raise PeriodError(f"{text!r} is not a half year: write YYYYH1 (January–June) or YYYYH2 (July–December)")
    year, half = int(match.group(1)), int(match.group(2))
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise PeriodError(f"{text!r}: the year must be between {MIN_YEAR} and {MAX_YEAR}")
    start = datetime(year, 1 if half == 1 else 7, 1, tzinfo=tz)
    end = datetime(year, 7, 1, tzinfo=tz) if half == 1 else datetime(year + 1, 1, 1, tzinfo=tz)
    return Period(f"{year}H{half}", year, half, start, end)


def party_of(actor: str | None) -> str | None:
    if not actor or actor == SYSTEM:
        return None
    return actor.split(".", 1)[0]


def human_duration(seconds: float) -> str:
    """Seconds as Vietnamese text, to the minute: '2 ngày 3 giờ', '45 phút'."""
    minutes = int(round(seconds / 60))
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = [f"{v} {u}" for v, u in ((days, "ngày"), (hours, "giờ"), (mins, "phút")) if v]
    return " ".join(parts) or "0 phút"


# --------------------------------------------------------------------------- figures


def build(store, policy, period: Period, now: datetime | None = None) -> dict[str, Any]:
    """Every figure of the report as plain data (the Markdown and HTML writers only format it)."""
    now = now or clock.now()
    tz, config = policy.tz, policy.config
    with store.reading() as conn:
        specs = Specs(conn, policy)
        inst = {r["id"]: dict(r) for r in conn.execute(select(instances).where(instances.c.created_at < period.end)).mappings()}
        rows = [dict(r) for r in conn.execute(select(history).where(history.c.outcome == "applied", history.c.at < period.end)
                                              .order_by(history.c.seq)).mappings()]
        spec_of = {iid: specs.get(r["workflow"], r["version"]) for iid, r in inst.items()}

    clauses: dict[str, dict[str, Any]] = {wid: {"workflow": wid, "title": s.title, "clause": s.clause,
                                                "opened": 0, "closed": 0, "overdue": 0}
                                          for wid, s in policy.workflows.items()}
    samples: dict[str, list[dict[str, Any]]] = defaultdict(list)
    escalations: list[dict[str, Any]] = []
    visits: dict[str, dict[str, Any]] = {}
    state_at_end: dict[str, str] = {}
    ended_at: dict[str, datetime] = {}
    went_through: dict[str, set[str]] = defaultdict(set)

    for h in rows:
        iid = h["instance"]
        record = inst.get(iid)
        spec = spec_of.get(iid)
        if record is None or spec is None:
            continue
        inside = h["at"] in period
        clause = clauses.setdefault(h["workflow"] or record["workflow"], {
            "workflow": record["workflow"], "title": spec.title, "clause": spec.clause, "opened": 0, "closed": 0, "overdue": 0})
        data = h["data"] or {}
        party = party_of(h["actor"])
        visit = visits.get(iid)
        if h["kind"] in ("fire", "consent") and visit is not None and party in visit["owed"] and party not in visit["answered"]:
            visit["answered"].add(party)
            if inside:
                samples[party].append({"seconds": (h["at"] - visit["entered"]).total_seconds(), "instance": iid,
                                       "workflow": record["workflow"], "state": visit["state"], "at": h["at"]})
        if h["kind"] not in ("start", "fire") or h["to_state"] is None:
            continue
        if h["kind"] == "start":
            if inside:
                clause["opened"] += 1
                if data.get("rule"):
                    escalations.append(_escalation(h, spec, "rule", tz, data))
        else:
            lateness = is_lateness(spec, h)
            st = spec.states.get(h["to_state"])
            if inside and st is not None and st.final:
                clause["closed"] += 1
            if inside and lateness:
                clause["overdue"] += 1
                escalations.append(_escalation(h, spec, "deadline", tz, data))
            elif inside and data.get("rule"):
                escalations.append(_escalation(h, spec, "rule", tz, data))
        state_at_end[iid] = h["to_state"]
        went_through[iid].add(h["to_state"])
        st = spec.states.get(h["to_state"])
        if st is not None and st.final:
            ended_at[iid] = h["at"]
        visits[iid] = {"state": h["to_state"], "entered": h["at"], "answered": set(),
                       "owed": set(next_steps(spec, h["to_state"], record["fields"], config))}

    parties = []
    for pid in list(config.parties) + sorted(set(samples) - set(config.parties)):
        got = samples.get(pid, [])
        seconds = [s["seconds"] for s in got]
        worst = max(got, key=lambda s: s["seconds"]) if got else None
        parties.append({
            "party": pid, "title": config.parties[pid].title if pid in config.parties else pid,
            "short": (config.parties[pid].short or pid) if pid in config.parties else pid,
            "responses": len(got),
            "median_seconds": statistics.median(seconds) if seconds else None,
            "worst_seconds": worst["seconds"] if worst else None,
            "worst_instance": worst["instance"] if worst else None,
            "worst_state": worst["state"] if worst else None,
        })

    meetings = []
    for iid, record in sorted(inst.items(), key=lambda item: (item[1]["created_at"], item[0])):
        if record["workflow"] != MEETING_WORKFLOW or iid not in state_at_end:
            continue
        opened_in = record["created_at"] in period
        ended_in = iid in ended_at and ended_at[iid] in period
        if not (opened_in or ended_in):
            continue
        spec = spec_of[iid]
        state = state_at_end[iid]
        st = spec.states.get(state)
        fields = record["fields"]
        meetings.append({
            "instance": iid, "issue": fields.get("issue"), "proposed_by": fields.get("proposed_by"),
            "meeting_at": fields.get("meeting_at"), "opened_at": record["created_at"].astimezone(tz).isoformat(),
            "held": bool(went_through[iid] & {"in_session", "held"}), "state": state,
            "state_title": st.title if st else state, "final": bool(st and st.final),
            "outcome": st.title if st and st.final else None,
            "ended_at": ended_at[iid].astimezone(tz).isoformat() if iid in ended_at else None,
            "source_instance": fields.get("source_instance"),
        })

    # `escalations` is in history order (chronological, causes before their effects).
    workflows = sorted(clauses.values(), key=lambda c: (clause_key(c["clause"]), c["workflow"]))
    return {
        "agreement": config.agreement.title, "period": period.label, "period_title": period.title,
        "start": period.start.isoformat(), "end": period.end.isoformat(), "timezone": tz.key,
        "generated_at": now.astimezone(tz).isoformat(),
        "workflows": workflows,
        "totals": {k: sum(c[k] for c in workflows) for k in ("opened", "closed", "overdue")},
        "parties": parties, "meetings": meetings, "escalations": escalations,
    }


def _escalation(h: dict, spec, kind: str, tz, data: dict) -> dict[str, Any]:
    st = spec.states.get(h["to_state"])
    return {
        "at": h["at"].astimezone(tz).isoformat(), "kind": kind, "workflow": h["workflow"], "instance": h["instance"],
        "trigger": h["trigger"], "rule": data.get("rule"), "from": h["from_state"], "to": h["to_state"],
        "to_title": st.title if st else h["to_state"], "cause": data.get("cause"),
    }


# --------------------------------------------------------------------------- Markdown


def _dur(seconds: float | None) -> str:
    return human_duration(seconds) if seconds is not None else "—"


def _md(text: Any) -> str:
    """Text made safe inside a Markdown table cell: one line, no control characters, no HTML, no cell breaks."""
    flat = " ".join(clean(text).split())
    return flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def _when(iso: str | None) -> str:
    return iso[:16].replace("T", " ") if iso else "—"


def _event(e: dict) -> str:
    if e["kind"] == "rule" and e["trigger"] is None:
        return f"khởi tạo {e['workflow']} (quy tắc {e['rule']})"
    if e["kind"] == "rule":
        return f"{e['trigger']} (quy tắc {e['rule']})"
    return f"{e['trigger']} (hết thời hạn)"


def markdown(data: dict[str, Any]) -> str:
    """The report as GitHub-flavoured Markdown (for the forge)."""
    t = data["totals"]
    out = [
        f"# Báo cáo kết quả phối hợp {data['period_title']} ({data['period']})",
        "",
        f"**{_md(data['agreement'])}**",
        "",
        f"Kỳ báo cáo: {data['start'][:10]} đến hết {_last_day(data)} (múi giờ {data['timezone']}). "
        f"Lập lúc {_when(data['generated_at'])}.",
        "",
        "## 1. Kết quả theo điều khoản",
        "",
        "| Điều khoản | Quy trình | Mở mới | Kết thúc | Quá hạn |",
        "|---|---|---:|---:|---:|",
    ]
    for c in data["workflows"]:
        out.append(f"| {_md(c['clause'])} | {_md(c['title'])} (`{_md(c['workflow'])}`) | {c['opened']} | {c['closed']} | {c['overdue']} |")
    out += [f"| | **Tổng cộng** | **{t['opened']}** | **{t['closed']}** | **{t['overdue']}** |", "",
            "## 2. Thời gian phản hồi của các cơ quan", "",
            "| Cơ quan | Số lần phản hồi | Trung vị | Lâu nhất | Hồ sơ phản hồi lâu nhất |", "|---|---:|---:|---:|---|"]
    for p in data["parties"]:
        worst = f"{p['worst_instance']} ({p['worst_state']})" if p["worst_instance"] else "—"
        out.append(f"| {_md(p['title'])} (`{_md(p['party'])}`) | {p['responses']} | {_dur(p['median_seconds'])} | "
                   f"{_dur(p['worst_seconds'])} | {_md(worst)} |")
    out += ["", "## 3. Họp giao ban đột xuất", ""]
    if data["meetings"]:
        out += ["| Hồ sơ | Vấn đề | Cơ quan đề xuất | Thời gian họp | Đã họp | Kết quả |", "|---|---|---|---|---|---|"]
        for m in data["meetings"]:
            outcome = m["outcome"] or f"chưa kết thúc: {m['state_title']}"
            out.append(f"| {_md(m['instance'])} | {_md(m['issue'])} | {_md(m['proposed_by'] or '—')} | {_md(_when(m['meeting_at']))} | "
                       f"{'có' if m['held'] else 'không'} | {_md(outcome)} |")
        out += ["", f"Số cuộc họp đột xuất được đề xuất hoặc kết thúc trong kỳ: {len(data['meetings'])}; "
                    f"đã họp: {sum(m['held'] for m in data['meetings'])}."]
    else:
        out.append("Không có đề xuất họp giao ban đột xuất trong kỳ.")
    out += ["", "## 4. Quá hạn và chuyển cấp", ""]
    if data["escalations"]:
        out += ["| Thời điểm | Quy trình | Hồ sơ | Sự kiện | Chuyển đến |", "|---|---|---|---|---|"]
        for e in data["escalations"]:
            out.append(f"| {_when(e['at'])} | {_md(e['workflow'])} | {_md(e['instance'])} | {_md(_event(e))} | {_md(e['to_title'])} |")
        out += ["", f"Tổng số lần chuyển cấp: {len(data['escalations'])}."]
    else:
        out.append("Không có trường hợp quá hạn hoặc chuyển cấp trong kỳ.")
    out += ["", "## Cách tính", ""]
    out += [f"- **{name}**: {text}" for name, text in DEFINITIONS]
    out += [f"- *{DEFINITIONS_EN}*", ""]
    return "\n".join(out)


def _last_day(data: dict) -> str:
    from datetime import date, timedelta

    return (date.fromisoformat(data["end"][:10]) - timedelta(days=1)).isoformat()


# --------------------------------------------------------------------------- HTML

CSS = """
:root { --ink: #1d2733; --muted: #5b6775; --line: #d5dbe2; --accent: #1f5f99; --late: #b3412e; }
* { box-sizing: border-box; }
body { font-family: "Segoe UI", "Noto Sans", "DejaVu Sans", Arial, sans-serif; color: var(--ink);
       margin: 2rem auto; max-width: 60rem; padding: 0 1rem; line-height: 1.45; }
h1 { font-size: 1.5rem; margin-bottom: .25rem; } h2 { font-size: 1.15rem; margin-top: 2rem;
       border-bottom: 2px solid var(--accent); padding-bottom: .2rem; }
.meta { color: var(--muted); margin: 0 0 1rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; font-size: .92rem; }
th, td { border: 1px solid var(--line); padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { background: #eef2f6; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: 600; background: #f7f9fb; }
code { font-size: .85em; color: var(--muted); }
svg { max-width: 100%; height: auto; display: block; margin: .5rem 0 1rem; }
svg text { font-family: inherit; font-size: 12px; fill: var(--ink); }
svg .median { fill: var(--accent); } svg .worst { fill: var(--late); }
dl dt { font-weight: 600; margin-top: .4rem; } dl dd { margin-left: 1rem; }
@media print {
  body { margin: 0; max-width: none; font-size: 10.5pt; }
  h2 { break-after: avoid; page-break-after: avoid; }
  table, svg, tr { break-inside: avoid; page-break-inside: avoid; }
  th { background: #eee !important; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  @page { size: A4; margin: 15mm; }
}
"""


def _h(text: Any) -> str:
    return html.escape(clean(text), quote=True)


def chart_svg(parties: list[dict[str, Any]]) -> str:
    """An inline SVG bar chart: median and worst response time per party, in hours."""
    rows = [p for p in parties if p["responses"]]
    if not rows:
        return "<p>Chưa có phản hồi nào trong kỳ để vẽ biểu đồ.</p>"
    peak = max(p["worst_seconds"] for p in rows) / 3600 or 1
    label_w, bar_w, bar_h, gap = 170, 420, 14, 12
    height = 30 + len(rows) * (2 * bar_h + gap) + 20
    width = label_w + bar_w + 130
    parts = [f'<svg role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" aria-label="Thời gian phản hồi theo cơ quan (giờ)">',
             '<title>Thời gian phản hồi theo cơ quan (giờ): trung vị và lâu nhất</title>',
             f'<rect class="median" x="{label_w}" y="4" width="12" height="10"/>'
             f'<text x="{label_w + 16}" y="13">trung vị</text>',
             f'<rect class="worst" x="{label_w + 90}" y="4" width="12" height="10"/>'
             f'<text x="{label_w + 106}" y="13">lâu nhất</text>']
    y = 30
    for p in rows:
        median_h, worst_h = p["median_seconds"] / 3600, p["worst_seconds"] / 3600
        parts.append(f'<text x="0" y="{y + bar_h + 4}">{_h(p["short"])}</text>')
        for cls, hours, dy in (("median", median_h, 0), ("worst", worst_h, bar_h)):
            w = max(1.0, bar_w * hours / peak)
            parts.append(f'<rect class="{cls}" x="{label_w}" y="{y + dy}" width="{w:.1f}" height="{bar_h - 2}"/>')
            parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + dy + bar_h - 4}">{hours:.1f} giờ</text>')
        y += 2 * bar_h + gap
    parts.append("</svg>")
    return "".join(parts)


def render_html(data: dict[str, Any]) -> str:
    """The report as one self-contained HTML page: inline CSS and SVG, no scripts, no external files."""
    t = data["totals"]
    body = [
        f"<h1>Báo cáo kết quả phối hợp {_h(data['period_title'])} ({_h(data['period'])})</h1>",
        f"<p class=\"meta\"><strong>{_h(data['agreement'])}</strong><br>Kỳ báo cáo: {_h(data['start'][:10])} đến hết "
        f"{_h(_last_day(data))} (múi giờ {_h(data['timezone'])}). Lập lúc {_h(_when(data['generated_at']))}.</p>",
        "<h2>1. Kết quả theo điều khoản</h2>",
        "<table><thead><tr><th>Điều khoản</th><th>Quy trình</th><th>Mở mới</th><th>Kết thúc</th><th>Quá hạn</th></tr></thead><tbody>",
    ]
    for c in data["workflows"]:
        body.append(f"<tr><td>{_h(c['clause'])}</td><td>{_h(c['title'])} <code>{_h(c['workflow'])}</code></td>"
                    f"<td class=\"n\">{c['opened']}</td><td class=\"n\">{c['closed']}</td><td class=\"n\">{c['overdue']}</td></tr>")
    body.append(f"<tr class=\"total\"><td></td><td>Tổng cộng</td><td class=\"n\">{t['opened']}</td>"
                f"<td class=\"n\">{t['closed']}</td><td class=\"n\">{t['overdue']}</td></tr></tbody></table>")
    body += ["<h2>2. Thời gian phản hồi của các cơ quan</h2>",
             "<table><thead><tr><th>Cơ quan</th><th>Số lần phản hồi</th><th>Trung vị</th><th>Lâu nhất</th>"
             "<th>Hồ sơ phản hồi lâu nhất</th></tr></thead><tbody>"]
    for p in data["parties"]:
        worst = f"{p['worst_instance']} ({p['worst_state']})" if p["worst_instance"] else "—"
        body.append(f"<tr><td>{_h(p['title'])} <code>{_h(p['party'])}</code></td><td class=\"n\">{p['responses']}</td>"
                    f"<td class=\"n\">{_h(_dur(p['median_seconds']))}</td><td class=\"n\">{_h(_dur(p['worst_seconds']))}</td>"
                    f"<td>{_h(worst)}</td></tr>")
    body += ["</tbody></table>", chart_svg(data["parties"]), "<h2>3. Họp giao ban đột xuất</h2>"]
    if data["meetings"]:
        body.append("<table><thead><tr><th>Hồ sơ</th><th>Vấn đề</th><th>Cơ quan đề xuất</th><th>Thời gian họp</th>"
                    "<th>Đã họp</th><th>Kết quả</th></tr></thead><tbody>")
        for m in data["meetings"]:
            outcome = m["outcome"] or f"chưa kết thúc: {m['state_title']}"
            body.append(f"<tr><td>{_h(m['instance'])}</td><td>{_h(m['issue'])}</td><td>{_h(m['proposed_by'] or '—')}</td>"
                        f"<td>{_h(_when(m['meeting_at']))}</td><td>{'có' if m['held'] else 'không'}</td><td>{_h(outcome)}</td></tr>")
        body.append(f"</tbody></table><p>Số cuộc họp đột xuất được đề xuất hoặc kết thúc trong kỳ: {len(data['meetings'])}; "
                    f"đã họp: {sum(m['held'] for m in data['meetings'])}.</p>")
    else:
        body.append("<p>Không có đề xuất họp giao ban đột xuất trong kỳ.</p>")
    body.append("<h2>4. Quá hạn và chuyển cấp</h2>")
    if data["escalations"]:
        body.append("<table><thead><tr><th>Thời điểm</th><th>Quy trình</th><th>Hồ sơ</th><th>Sự kiện</th><th>Chuyển đến</th>"
                    "</tr></thead><tbody>")
        for e in data["escalations"]:
            body.append(f"<tr><td>{_h(_when(e['at']))}</td><td>{_h(e['workflow'])}</td><td>{_h(e['instance'])}</td>"
                        f"<td>{_h(_event(e))}</td><td>{_h(e['to_title'])}</td></tr>")
        body.append(f"</tbody></table><p>Tổng số lần chuyển cấp: {len(data['escalations'])}.</p>")
    else:
        body.append("<p>Không có trường hợp quá hạn hoặc chuyển cấp trong kỳ.</p>")
    body.append("<h2>Cách tính</h2><dl>")
    body += [f"<dt>{_h(name)}</dt><dd>{_h(text)}</dd>" for name, text in DEFINITIONS]
    body.append(f"</dl><p><em>{_h(DEFINITIONS_EN)}</em></p>")
    title = f"Báo cáo kết quả phối hợp {data['period']}"
    return ("<!DOCTYPE html>\n<html lang=\"vi\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{_h(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


FORMATS = {"md": markdown, "html": render_html}
