"""What the instance commands print: tables and JSON from plain data, the same locally and remotely.

Every function takes the data as the service layer returns it (datetimes) or as the HTTP API
returns it (ISO 8601 strings) and the agreement's time zone: times are shown, also in JSON, in
that zone. Ids (instances, workflows, triggers) are never cut or wrapped: their columns keep
their full width and the free-text columns wrap instead. Stored text goes through
engine.views.text (no markup, no escape codes). Headers, titles and lines are in the CLI's language
(engine/cli/language.py: in Vietnamese, times as dd/mm/yyyy HH:MM and counts as 1.234); JSON is
the same in every language.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

import click

from engine.cli.language import _N_, _, number, voice, wall
from engine.cli.language import moment as wall_clock
from engine.views.text import cell, line


def console():
    """A rich Console: the terminal's width (or $COLUMNS); 160 columns when writing to a file or a pipe."""
    import os

    from rich.console import Console

    wide = sys.stdout.isatty() or os.environ.get("COLUMNS", "").isdigit()
    return Console(file=sys.stdout, width=None if wide else 160)


def moment(value: datetime | str | None) -> datetime | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def iso(value: datetime | str | None, tz) -> str | None:
    """An instant in the agreement's zone, ISO 8601 with its offset (None stays None)."""
    at = moment(value)
    return at.astimezone(tz).isoformat() if at else None


def local(value: datetime | str | None, tz) -> str:
    """An instant in the agreement's zone, to the minute, for people to read (in the CLI's language)."""
    at = moment(value)
    return wall_clock(at.astimezone(tz)) if at else ""


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _fit(widths: dict[int, int], least: list[int], room: int) -> dict[int, int]:
    """Narrow the widest columns first (never below their longest word) until the table fits `room`."""
    excess = sum(widths.values()) - room
    while excess > 0:
        wide = [i for i in widths if widths[i] > least[i]]
        if not wide:
            break
        top = max(widths[i] for i in wide)
        widest = [i for i in wide if widths[i] == top]
        below = max([widths[i] for i in wide if widths[i] < top], default=0)
        for i in widest:
            cut = min(excess, top - max(below, least[i]), -(-excess // len(widest)))
            widths[i] -= max(cut, 0)
            excess -= max(cut, 0)
        if all(widths[i] <= least[i] for i in widest) and not [i for i in widths if widths[i] > least[i]]:
            break
    return widths


def grid(title: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]], drop: tuple[str, ...] = (),
         right: tuple[str, ...] = ()):
    """A table that never cuts a word: each column is at least as wide as its longest word (ids and
    triggers have no spaces, so they are shown whole; text wraps between words). When that does
    not fit the terminal, the `drop` columns are left out, in order (e.g. the workflow, which every
    instance id starts with)."""
    from rich.table import Table
    from rich.text import Text

    texts = [[v if isinstance(v, Text) else cell(v) for v in row] for row in rows]
    least = [max([len(name), *(max((len(w) for w in row[i].plain.split()), default=0) for row in texts)])
             for i, name in enumerate(columns)]
    natural = [max([len(name), *(max((len(x) for x in row[i].plain.splitlines()), default=0) for row in texts)])
               for i, name in enumerate(columns)]
    keep = list(range(len(columns)))
    room = console().width
    for name in drop:
        if sum(least[i] for i in keep) + 3 * len(keep) + 1 <= room:
            break
        keep.remove(columns.index(name))
    widths = _fit({i: natural[i] for i in keep}, least, room - 3 * len(keep) - 1)
    out = Table(title=cell(title, single_line=True))
    for i in keep:
        out.add_column(columns[i], width=widths[i], overflow="fold", justify="right" if columns[i] in right else "left")
    for row in texts:
        out.add_row(*(row[i] for i in keep))
    return out


# ---------------------------------------------------------------- instances


def instance_json(row: dict[str, Any], tz) -> dict[str, Any]:
    """One instance as `status INSTANCE --json` and `status -w/-s --json` print it."""
    deadline = row.get("deadline")
    out = {
        "instance": row["id"], "workflow": row["workflow"], "version": row.get("version"), "state": row["state"],
        "state_title": row.get("state_title") or row["state"], "final": bool(row.get("final")),
        "fields": row.get("fields") or {}, "created_at": iso(row.get("created_at"), tz),
        "updated_at": iso(row.get("updated_at"), tz),
        "deadline": {"due_at": iso(deadline["due_at"], tz), "fires": deadline["fires"]} if deadline else None,
    }
    if "consents" in row:
        out["consents"] = [{"trigger": c["trigger"], "party": c["party"], "actor": c["actor"], "at": iso(c["at"], tz),
                            "expires_at": iso(c.get("expires_at"), tz)} for c in row["consents"]]
    if "awaiting_consent" in row:
        out["awaiting_consent"] = row["awaiting_consent"]
    if row.get("actions") is not None:
        out["acting_role"] = row.get("acting_role")
        out["actions"] = row["actions"]
    return out


def instance(row: dict[str, Any], tz, as_json: bool) -> None:
    """`status INSTANCE`: state, deadline, consents, fields, and (from a server) what the caller may do.

    Plain lines, each as long as it is (no table: the one view that needs no rich, so it starts fastest)."""
    data = instance_json(row, tz)
    if as_json:
        return echo_json(data)

    def say(text: str) -> None:
        click.echo(line(text))

    say(_("%(instance)s  %(workflow)s (version %(version)s)", instance=data["instance"], workflow=data["workflow"],
          version=data["version"]))
    state = {"state": data["state"], "title": data["state_title"]}
    say(_("state: %(state)s — %(title)s (final)", **state) if data["final"] else _("state: %(state)s — %(title)s", **state))
    if data["deadline"]:
        say(_("deadline: %(at)s → fires %(trigger)s", at=local(data["deadline"]["due_at"], tz),
              trigger=data["deadline"]["fires"]))
    for c in data.get("consents", []):
        say(_("consent to %(trigger)s: %(party)s (%(actor)s, %(at)s)", trigger=c["trigger"], party=c["party"],
              actor=c["actor"], at=local(c["at"], tz)))
    for trigger, parties in data.get("awaiting_consent", {}).items():
        if parties:
            say(_("consent to %(trigger)s still needed from: %(parties)s", trigger=trigger, parties=", ".join(parties)))
    for name, value in data["fields"].items():
        if value not in (None, "", []):
            say(f"  {name} = {value}")
    actions = data.get("actions") or []
    open_ = [a["trigger"] for a in actions if a["allowed"]]
    if actions:
        say(_("you may (%(role)s): %(steps)s", role=data["acting_role"], steps=", ".join(open_) if open_ else _("nothing now")))
    for a in actions:
        if not a["allowed"]:
            say(f"  {a['trigger']}: {voice().reason(a['reason'])}")


def more_line(shown_from: int, shown: int, total: int, command: str, page: int, limit: int) -> str | None:
    """The line under a page that says what the page holds and how to see the rest (None when all is shown)."""
    if total <= shown and shown_from == 0:
        return None
    if shown == 0:
        return _("page %(page)s is past the end (%(total)s in all): coopflow %(command)s --page 1", page=page,
                 total=number(total), command=command)
    first, last = number(shown_from + 1), number(shown_from + shown)
    if shown_from + shown < total:
        return _("showing %(first)s–%(last)s of %(total)s; next: coopflow %(command)s --page %(next)s (or --limit N)",
                 first=first, last=last, total=number(total), command=command, next=page + 1)
    return _("showing %(first)s–%(last)s of %(total)s", first=first, last=last, total=number(total))


def _more(more: str | None, as_json: bool) -> None:
    if more:
        click.echo(line(more), err=as_json)


def instance_list(rows: list[dict[str, Any]], tz, as_json: bool, total: int | None = None, more: str | None = None) -> None:
    """`status -w/-s`: one page of the instances, newest first (`total`: how many match in all)."""
    if as_json:
        _more(more, True)
        return echo_json([instance_json(r, tz) for r in rows])
    cells = [(r["id"], r["workflow"], f"{r['state']} — {r.get('state_title') or r['state']}", local(r.get("updated_at"), tz),
              f"{local(r['deadline']['due_at'], tz)} → {r['deadline']['fires']}" if r.get("deadline") else "")
             for r in rows]
    columns = (_("instance"), _("workflow"), _("state"), _("updated"), _("next deadline"))
    console().print(grid(_("%(n)s instance(s)", n=number(len(rows) if total is None else total)), columns, cells,
                         drop=(columns[1], columns[3])))
    _more(more, False)


def history(instance_id: str, rows: list[dict[str, Any]], tz, as_json: bool) -> None:
    """`history INSTANCE`: every applied and refused event, times in the agreement's zone."""
    if as_json:
        for r in rows:
            click.echo(json.dumps({**r, "at": iso(r["at"], tz)}, ensure_ascii=False, default=str))
        return
    cells = [(str(r["seq"]), local(r["at"], tz), f"{r['kind']} {r.get('trigger') or ''}".strip(), r.get("actor"),
              r.get("from_state"), r.get("to_state"), _outcome_cell(r["outcome"], r.get("reason")))
             for r in rows]
    columns = ("#", _("at"), _("event"), _("actor"), _("from"), _("to"), _("outcome"))
    console().print(grid(_("history of %(instance)s", instance=instance_id), columns, cells, drop=(columns[4], columns[1])))


OUTCOMES = {"applied": _N_("applied"), "refused": _N_("refused")}


def _outcome_cell(outcome: str, reason: str | None) -> str:
    """A history row's outcome and reason: as stored in English; in the CLI's language otherwise."""
    if not voice().vietnamese:
        return outcome + (f": {reason}" if reason else "")
    said = _(OUTCOMES[outcome]) if outcome in OUTCOMES else outcome
    return said + (f": {voice().reason(reason)}" if reason else "")


def tasks(person: str, items: list[dict[str, Any]], tz, as_json: bool) -> None:
    """`tasks`: what the signed-in person may (so owes to) do now, soonest deadline first."""
    if as_json:
        return echo_json([{**t, "due_at": iso(t.get("due_at"), tz)} for t in items])
    if not items:
        click.echo(_("nothing to do now for %(person)s", person=person))
        return
    cells = [(t["instance"], t["workflow"], t["state"], t["role"], ", ".join(t["triggers"]), local(t.get("due_at"), tz))
             for t in items]
    columns = (_("instance"), _("workflow"), _("state"), _("as"), _("may fire"), _("due"))
    console().print(grid(_("%(n)s task(s) of %(person)s", n=number(len(items)), person=person), columns, cells,
                         drop=(columns[1], columns[3])))


# ---------------------------------------------------------------- the overview and what comes next


def overview(data: dict[str, Any], as_json: bool) -> None:
    """`status` without filters (engine.views.overview's data): counts per clause and state, then one
    page of the overdue instances and of each party's next steps, with how to see the next page."""
    if as_json:
        return echo_json(data)
    out = console()
    cells: list[tuple[str, ...]] = []
    for c in data["workflows"]:
        cells.append((c["clause"], f"{c['workflow']} — {c['title']}", "", number(c["open"]), number(c["overdue"])))
        cells.extend(("", "", f"{st['state']} — {st['title']}", number(st["open"]), number(st["overdue"])) for st in c["states"])
    columns: tuple[str, ...] = (_("clause"), _("workflow"), _("state"), _("open"), _("overdue"))
    out.print(grid(_("open instances per clause: %(n)s (at %(at)s)", n=number(data["open_total"]), at=wall(data["now"])),
                   columns, cells, right=columns[3:]))
    paging = data["page"]
    if data["overdue_total"]:
        cells = [(o["instance"], o["workflow"], f"{o['state']} — {o['state_title']}", "; ".join(r["text"] for r in o["reasons"]))
                 for o in data["overdue"]]
        columns = (_("instance"), _("workflow"), _("state"), _("why"))
        out.print(grid(_("%(n)s overdue instance(s)", n=number(data["overdue_total"])), columns, cells, drop=(columns[1],)))
    cells = []  # party, instance, workflow, state, since, may fire
    for p in data["parties"]:
        if not p["next_steps"]:
            cells.append((p["party"], "—" if not p["open"] else _("(%(n)s in all)", n=number(p["open"])), "", "", "", ""))
        for i, step in enumerate(p["next_steps"]):
            party = (f"{p['party']} ({number(p['open'])})" if p["open"] > len(p["next_steps"]) else p["party"]) if i == 0 else ""
            cells.append((party, _("%(instance)s (overdue)", instance=step["instance"]) if step["overdue"] else step["instance"],
                          step["workflow"], f"{step['state']} — {step['state_title']}", wall(step["since"]),
                          ", ".join(step["triggers"])))
    columns = (_("party"), _("instance"), _("workflow"), _("state"), _("since"), _("may fire"))
    out.print(grid(_("who owes the next step"), columns, cells, drop=(columns[2], columns[4])))
    longest = max([data["overdue_total"], *(p["open"] for p in data["parties"])])
    shown = max([len(data["overdue"]), *(len(p["next_steps"]) for p in data["parties"])])
    more = more_line((paging["page"] - 1) * paging["limit"], shown, longest, "status", paging["page"], paging["limit"])
    if more:
        click.echo(line(_("lists per page: %(more)s", more=more)))
    if data["dead_letters"]:
        click.echo(_("%(n)s notification(s) could not be delivered: coopflow deliveries --status dead",
                     n=number(data["dead_letters"])))


def upcoming(items: list[dict[str, Any]], days: int, tz, as_json: bool, total: int | None = None,
             more: str | None = None) -> None:
    """`upcoming`: one page of a table sorted by time, in the agreement's zone."""
    if as_json:
        _more(more, True)
        return echo_json(items)
    cells = []
    for item in items:
        at = local(item["at"], tz)
        subject = f"{item['subject']} — " if item.get("subject") else ""
        if item["kind"] == "schedule":
            cells.append((at, _("schedule"), item["workflow"], "",
                          _("%(title)s — host %(host)s", title=item["title"], host=item["host"]) if item["host"] else item["title"]))
        elif item["kind"] == "deadline":
            cells.append((at, _("OVERDUE deadline") if item["overdue"] else _("deadline"), item["workflow"], item["instance"],
                          subject + _("%(state)s — %(title)s: fires %(trigger)s", state=item["state"],
                                      title=item["state_title"], trigger=item["trigger"])))
        else:
            details = f"{item['title']}: {item.get('subject') or ''}"
            if not item["meeting_at_set"]:
                details = _("%(details)s (no time set: %(rule)s)", details=details, rule=item["time_rule"])
            cells.append((at, _("meeting"), item["workflow"], item["instance"], details))
    columns = (_("at"), _("what"), _("workflow"), _("instance"), _("details"))
    console().print(grid(_("%(n)s item(s) in the next %(days)s day(s) (%(zone)s)", n=number(len(items) if total is None else total),
                           days=days, zone=tz.key), columns, cells, drop=(columns[2],)))
    _more(more, False)
