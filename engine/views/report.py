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
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select

from engine import clock
from engine.exceptions import CoopflowError
from engine.views.overview import Specs, clause_key, is_lateness, meeting_workflows, next_steps
from engine.policy.spec import SYSTEM
from engine.store.database import history, instances
from engine.views.text import clean

PERIOD_RE = re.compile(r"^(\d{4})(?:([HhQq])([1-4]))?$")
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
    """A period that is not written YYYYQn, YYYYHn, YYYY or a pair of dates (a usage error)."""


class PeriodRefused(PeriodError, CoopflowError):
    """A well-written period the report cannot cover: not begun yet, or over before the agreement took effect."""


ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV"}


@dataclass(frozen=True)
class Period:
    label: str
    title: str  # "6 tháng đầu năm 2027", "quý IV năm 2027", "năm 2027", "từ ngày … đến ngày …"
    start: datetime
    end: datetime  # exclusive

    def __contains__(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


def vn_date(day: date) -> str:
    return day.strftime("%d/%m/%Y")


def parse_period(text: str, tz, *, effective: date | None = None, now: datetime | None = None) -> Period:
    """'2027Q4', '2027H1' or '2027' -> that quarter, half year or year, midnight to midnight in `tz` (end exclusive).

    With `now` a period that has not begun is refused, with `effective` one that ends before that day (PeriodRefused).
    """
    match = PERIOD_RE.match(text.strip())
    if not match:
        raise PeriodError(f"{text!r} is not a period: write a quarter YYYYQ1–YYYYQ4, a half year YYYYH1 or YYYYH2, "
                          f"a year YYYY, or --from DATE --to DATE")
    year, unit, n = int(match.group(1)), (match.group(2) or "").upper(), int(match.group(3) or 0)
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise PeriodError(f"{text!r}: the year must be between {MIN_YEAR} and {MAX_YEAR}")
    if unit == "H" and n > 2:
        raise PeriodError(f"{text!r} is not a half year: write YYYYH1 (January–June) or YYYYH2 (July–December)")
    months = {"Q": 3, "H": 6, "": 12}[unit]
    first = 1 + (max(n, 1) - 1) * months
    start = datetime(year, first, 1, tzinfo=tz)
    end = datetime(year + 1, 1, 1, tzinfo=tz) if first + months > 12 else datetime(year, first + months, 1, tzinfo=tz)
    title = (f"quý {ROMAN[n]} năm {year}" if unit == "Q" else
             f"6 tháng {'đầu' if n == 1 else 'cuối'} năm {year}" if unit == "H" else f"năm {year}")
    return _checked(Period(f"{year}{unit}{n or ''}", title, start, end), effective, now)


def parse_range(first: str, last: str, tz, *, effective: date | None = None, now: datetime | None = None) -> Period:
    """--from DATE --to DATE: both days included, midnight to midnight in `tz`."""
    days = []
    for text, hint in ((first, "--from"), (last, "--to")):
        try:
            day = date.fromisoformat(text.strip())
        except ValueError:
            raise PeriodError(f"{hint} {text!r} is not a date: write YYYY-MM-DD") from None
        if not MIN_YEAR <= day.year <= MAX_YEAR:
            raise PeriodError(f"{hint} {text}: the year must be between {MIN_YEAR} and {MAX_YEAR}")
        days.append(day)
    if days[1] < days[0]:
        raise PeriodError(f"--to {last} is before --from {first}")
    start = datetime.combine(days[0], time(0), tzinfo=tz)
    end = datetime.combine(days[1] + timedelta(days=1), time(0), tzinfo=tz)
    title = f"từ ngày {vn_date(days[0])} đến ngày {vn_date(days[1])}"
    return _checked(Period(f"{days[0].isoformat()}..{days[1].isoformat()}", title, start, end), effective, now)


def _checked(period: Period, effective: date | None, now: datetime | None) -> Period:
    if now is not None and period.start > now:
        raise PeriodRefused(f"period {period.label} has not begun yet (it starts on {vn_date(period.start.date())}); "
                            f"a report covers only what has happened")
    if effective is not None and period.end <= datetime.combine(effective, time(0), tzinfo=period.start.tzinfo):
        raise PeriodRefused(f"period {period.label} ends before the agreement took effect on {vn_date(effective)} "
                            f"(config.yaml agreement.effective)")
    return period


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
        if record["workflow"] not in meeting_workflows(policy) or iid not in state_at_end:
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

    for c in clauses.values():
        c["requests"] = []
    for iid, record in sorted(inst.items(), key=lambda item: (item[1]["created_at"], item[0])):
        spec = spec_of.get(iid)
        if spec is None or record["created_at"] not in period or record["workflow"] not in clauses:
            continue
        state = state_at_end.get(iid, record["state"])
        st = spec.states.get(state)
        clauses[record["workflow"]]["requests"].append({
            "instance": iid, "subject": record["fields"].get("subject") if "subject" in spec.fields else None,
            "state": state, "state_title": st.title if st and st.title else state,
            "opened_at": record["created_at"].astimezone(tz).isoformat()})

    # `escalations` is in history order (chronological, causes before their effects).
    workflows = sorted(clauses.values(), key=lambda c: (clause_key(c["clause"]), c["workflow"]))
    state_title = {wid: {sid: (st.title or sid) for sid, st in spec.states.items()} for wid, spec in policy.workflows.items()}
    for p in parties:
        if p["worst_instance"]:
            wid = inst[p["worst_instance"]]["workflow"]
            p["worst_state_title"] = state_title.get(wid, {}).get(p["worst_state"], p["worst_state"])
    issuers = [{"party": pid, "title": party.title, "short": party.short or pid,
                "signer": party.roles["leader"].title if "leader" in party.roles and party.roles["leader"].title else None}
               for pid, party in list(config.parties.items())[:2]]
    return {
        "agreement": config.agreement.title, "period": period.label, "period_title": period.title,
        "start": period.start.isoformat(), "end": period.end.isoformat(), "timezone": tz.key,
        "generated_at": now.astimezone(tz).isoformat(),
        "workflows": workflows,
        "totals": {k: sum(c[k] for c in workflows) for k in ("opened", "closed", "overdue")},
        "parties": parties, "meetings": meetings, "escalations": escalations,
        "issuers": issuers, "copies": [p.title for pid, p in list(config.parties.items())[2:]],
        "place": getattr(config.agreement, "place", None) or province(config.agreement.title),
    }


def province(title: str) -> str | None:
    """'… Công an tỉnh Lào Cai trong công tác …' -> 'Lào Cai' (the capitalised words after the last 'tỉnh' / 'thành phố')."""
    found = re.findall(r"(?:tỉnh|thành phố)\s+((?:[A-ZĐÀ-Ỹ][\wÀ-ỹ]*)(?:\s+[A-ZĐÀ-Ỹ][\wÀ-ỹ]*)*)", " ".join(title.split()))
    return found[-1] if found else None


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
* { box-sizing: border-box; }
body { font-family: "Times New Roman", "Liberation Serif", "DejaVu Serif", serif; font-size: 13pt; color: #000;
       margin: 2rem auto; max-width: 48rem; padding: 0 1rem; line-height: 1.4; }
table.head, table.foot, table.signs { width: 100%; border: none; margin: 0 0 1rem; }
table.head td, table.foot td, table.signs td { border: none; text-align: center; vertical-align: top; }
td.agency { width: 42%; font-weight: 600; } td.nation { width: 58%; } td.copies { text-align: left !important; font-size: 11pt; }
.rule { display: inline-block; width: 6rem; border-top: 1px solid #000; }
h1 { font-size: 14pt; text-align: center; margin: 1.5rem 0 1rem; } h1 span { font-size: 13pt; }
h2 { font-size: 13pt; margin-top: 1.2rem; } h3 { font-size: 13pt; font-style: italic; font-weight: normal; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; font-size: 11.5pt; }
th, td { border: 1px solid #000; padding: .2rem .4rem; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
td.sign { width: 50%; padding-bottom: 5rem; } ul { list-style: "- "; margin: .2rem 0; padding-left: 1rem; }
svg { max-width: 100%; height: auto; display: block; margin: .5rem 0 1rem; }
svg text { font-family: inherit; font-size: 12px; fill: #000; }
svg .median { fill: #1f5f99; } svg .worst { fill: #b3412e; }
@media print {
  body { margin: 0; max-width: none; }
  h2, h3 { break-after: avoid; page-break-after: avoid; }
  table, svg, tr { break-inside: avoid; page-break-inside: avoid; }
  @page { size: A4; margin: 20mm 15mm 20mm 30mm; }
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


# --------------------------------------------------------------------------- the official document (HTML, DOCX)
# Layout of an administrative report per Decree 30/2020/NĐ-CP: the agencies and the national title side by side,
# number/symbol and place-and-date, title, body, "Nơi nhận" and one signature block per issuing agency.

NATIONAL_TITLE = "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"
MOTTO = "Độc lập - Tự do - Hạnh phúc"


def _vn(iso: str | None, with_time: bool = False) -> str:
    """An ISO instant as a Vietnamese date dd/mm/yyyy (and HH:MM)."""
    if not iso:
        return "—"
    moment = datetime.fromisoformat(iso)
    return moment.strftime("%H:%M %d/%m/%Y" if with_time else "%d/%m/%Y")


def _symbol(title: str) -> str:
    """'Sở Thông tin và Truyền thông tỉnh Lào Cai' -> 'STTTT': initials of the name before 'tỉnh', without accents."""
    words = re.split(r"\s+(?:tỉnh|thành phố)\s+", " ".join(title.split()), maxsplit=1)[0].split()
    initials = "".join(w[0] for w in words if w.lower() != "và").upper().replace("Đ", "D")
    return unicodedata.normalize("NFKD", initials).encode("ascii", "ignore").decode() or "CQ"


def _date_line(data: dict) -> str:
    """'Lào Cai, ngày 02 tháng 12 năm 2026' (Decree 30: days below 10 and months below 3 take a leading 0)."""
    day = datetime.fromisoformat(data["generated_at"])
    month = f"{day.month:02d}" if day.month < 3 else str(day.month)
    text = f"ngày {day.day:02d} tháng {month} năm {day.year}"
    return f"{data['place']}, {text}" if data.get("place") else text.capitalize()


def official(data: dict[str, Any]) -> dict[str, Any]:
    """The report as a neutral document: header lines, body blocks and closing, rendered by `render_html` and `docx`."""
    issuers = data["issuers"]
    body: list[tuple] = [("p", f"Căn cứ {data['agreement']}; kỳ báo cáo {data['period_title']} "
                               f"(từ ngày {_vn(data['start'])} đến hết ngày {_vn(_last_day(data) + 'T00:00')}), "
                               f"{' và '.join(i['title'] for i in issuers)} báo cáo kết quả phối hợp như sau:"),
                         ("h2", "1. Kết quả theo điều khoản")]
    t = data["totals"]
    body.append(("table", ["Điều khoản", "Quy trình", "Mở mới", "Kết thúc", "Quá hạn"],
                 [[c["clause"], c["title"], c["opened"], c["closed"], c["overdue"]] for c in data["workflows"]]
                 + [["", "Tổng cộng", t["opened"], t["closed"], t["overdue"]]]))
    for c in data["workflows"]:
        if c.get("requests"):
            body.append(("h3", f"Điều khoản {c['clause']} – {c['title']}: các hồ sơ mở trong kỳ ({len(c['requests'])})"))
            body.append(("table", ["Hồ sơ", "Nội dung", "Trạng thái", "Ngày mở"],
                         [[r["instance"], r["subject"] or "—", r["state_title"], _vn(r["opened_at"])] for r in c["requests"]]))
    body += [("h2", "2. Thời gian phản hồi của các cơ quan"),
             ("table", ["Cơ quan", "Số lần phản hồi", "Trung vị", "Lâu nhất", "Hồ sơ phản hồi lâu nhất"],
              [[p["title"], p["responses"], _dur(p["median_seconds"]), _dur(p["worst_seconds"]),
                f"{p['worst_instance']} ({p['worst_state_title']})" if p["worst_instance"] else "—"] for p in data["parties"]]),
             ("chart",), ("h2", "3. Họp giao ban đột xuất")]
    if data["meetings"]:
        body.append(("table", ["Hồ sơ", "Vấn đề", "Cơ quan đề xuất", "Thời gian họp", "Đã họp", "Kết quả"],
                     [[m["instance"], m["issue"], m["proposed_by"] or "—", _vn(m["meeting_at"], True),
                       "có" if m["held"] else "không", m["outcome"] or f"chưa kết thúc: {m['state_title']}"]
                      for m in data["meetings"]]))
        body.append(("p", f"Số cuộc họp đột xuất được đề xuất hoặc kết thúc trong kỳ: {len(data['meetings'])}; "
                          f"đã họp: {sum(m['held'] for m in data['meetings'])}."))
    else:
        body.append(("p", "Không có đề xuất họp giao ban đột xuất trong kỳ."))
    body.append(("h2", "4. Quá hạn và chuyển cấp"))
    if data["escalations"]:
        body.append(("table", ["Thời điểm", "Quy trình", "Hồ sơ", "Sự kiện", "Chuyển đến"],
                     [[_vn(e["at"], True), e["workflow"], e["instance"], _event(e), e["to_title"]] for e in data["escalations"]]))
        body.append(("p", f"Tổng số lần chuyển cấp: {len(data['escalations'])}."))
    else:
        body.append(("p", "Không có trường hợp quá hạn hoặc chuyển cấp trong kỳ."))
    body.append(("h2", "Cách tính"))
    body += [("def", name, text) for name, text in DEFINITIONS]
    symbol = "-".join(_symbol(i["title"]) for i in issuers)
    return {
        "agencies": [i["title"].upper() for i in issuers], "national": NATIONAL_TITLE, "motto": MOTTO,
        "number": f"Số: …/BC-{symbol}", "date_line": _date_line(data),
        "title": "BÁO CÁO", "subtitle": f"Kết quả phối hợp {data['period_title']}", "body": body,
        "recipients": [f"{c} (để báo cáo);" for c in data["copies"]] + ["Lãnh đạo hai cơ quan;", "Lưu: VT."],
        "signatures": [{"agency": i["title"].upper(), "signer": (i["signer"] or "Thủ trưởng cơ quan").upper(),
                        "note": "(Ký, ghi rõ họ tên, đóng dấu)"} for i in issuers],
    }


def render_html(data: dict[str, Any]) -> str:
    """The report as one self-contained HTML page in the official layout: inline CSS and SVG, no scripts, A4 print."""
    doc = official(data)
    out = ['<table class="head"><tr>',
           f'<td class="agency">{"<br>".join(_h(a) for a in doc["agencies"])}<br><span class="rule"></span><br>{_h(doc["number"])}</td>',
           f'<td class="nation"><strong>{_h(doc["national"])}</strong><br><strong class="motto">{_h(doc["motto"])}</strong>'
           f'<br><span class="rule"></span><br><em>{_h(doc["date_line"])}</em></td></tr></table>',
           f'<h1>{_h(doc["title"])}<br><span>{_h(doc["subtitle"])}</span></h1>']
    for block in doc["body"]:
        kind = block[0]
        if kind in ("h2", "h3", "p"):
            out.append(f"<{kind}>{_h(block[1])}</{kind}>")
        elif kind == "def":
            out.append(f"<p><strong>{_h(block[1])}</strong>: {_h(block[2])}</p>")
        elif kind == "chart":
            out.append(chart_svg(data["parties"]))
        else:
            cells = "".join(f"<th>{_h(h)}</th>" for h in block[1])
            rows = "".join("<tr>" + "".join(f'<td class="n">{v}</td>' if isinstance(v, int) else f"<td>{_h(v)}</td>"
                                            for v in row) + "</tr>" for row in block[2])
            out.append(f"<table><thead><tr>{cells}</tr></thead><tbody>{rows}</tbody></table>")
    copies = "".join(f"<li>{_h(r)}</li>" for r in doc["recipients"])
    signs = "".join(f'<td class="sign"><strong>{_h(s["agency"])}<br>{_h(s["signer"])}</strong><br><em>{_h(s["note"])}</em></td>'
                    for s in doc["signatures"])
    out.append(f'<table class="foot"><tr><td class="copies"><strong><em>Nơi nhận:</em></strong><ul>{copies}</ul></td></tr></table>'
               f'<table class="signs"><tr>{signs}</tr></table>')
    title = f"Báo cáo kết quả phối hợp {data['period']}"
    return ("<!DOCTYPE html>\n<html lang=\"vi\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{_h(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + "\n".join(out) + "\n</body>\n</html>\n")


def docx(data: dict[str, Any]) -> bytes:
    """The report as a Word document (A4, Times New Roman) with the same header, body and signature blocks."""
    import io

    from docx import Document
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.shared import Mm, Pt

    doc, layout = Document(), official(data)
    section = doc.sections[0]
    section.page_width, section.page_height = Mm(210), Mm(297)
    section.top_margin = section.bottom_margin = Mm(20)
    section.left_margin, section.right_margin = Mm(30), Mm(15)
    doc.styles["Normal"].font.name = "Times New Roman"
    doc.styles["Normal"].font.size = Pt(13)

    def cell_lines(cell, lines):
        cell.paragraphs[0].text = ""
        for i, (text, bold, italic) in enumerate(lines):
            par = cell.paragraphs[0] if i == 0 else cell.add_paragraph()
            par.alignment = WD_ALIGN_PARAGRAPH.CENTER
            run = par.add_run(text)
            run.bold, run.italic = bold, italic

    head = doc.add_table(rows=1, cols=2)
    cell_lines(head.cell(0, 0), [(a, True, False) for a in layout["agencies"]] + [(layout["number"], False, False)])
    cell_lines(head.cell(0, 1), [(layout["national"], True, False), (layout["motto"], True, False),
                                 (layout["date_line"], False, True)])
    for text in (layout["title"], layout["subtitle"]):
        par = doc.add_paragraph()
        par.alignment = WD_ALIGN_PARAGRAPH.CENTER
        par.add_run(text).bold = True
    for block in layout["body"]:
        kind = block[0]
        if kind in ("h2", "h3"):
            doc.add_paragraph().add_run(block[1]).bold = True
        elif kind == "p":
            doc.add_paragraph(block[1])
        elif kind == "def":
            par = doc.add_paragraph()
            par.add_run(f"{block[1]}: ").bold = True
            par.add_run(block[2])
        elif kind == "table":
            table = doc.add_table(rows=1, cols=len(block[1]))
            table.style = "Table Grid"
            for cell, text in zip(table.rows[0].cells, block[1]):
                cell.text = text
            for row in block[2]:
                for cell, value in zip(table.add_row().cells, row):
                    cell.text = clean(value)
    par = doc.add_paragraph()
    run = par.add_run("Nơi nhận:")
    run.bold = run.italic = True
    for text in layout["recipients"]:
        doc.add_paragraph(f"- {text}")
    signs = doc.add_table(rows=1, cols=len(layout["signatures"]))
    for cell, s in zip(signs.rows[0].cells, layout["signatures"]):
        cell_lines(cell, [(s["agency"], True, False), (s["signer"], True, False), (s["note"], False, True)])
    buffer = io.BytesIO()
    doc.save(buffer)
    return buffer.getvalue()


FORMATS = {"md": markdown, "html": render_html, "docx": docx}  # docx gives bytes
