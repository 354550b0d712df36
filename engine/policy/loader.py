"""Load a policy (config.yaml, workflows/, rules/), validate it whole, and give it a content hash.

`load_policy` reports every mistake it finds at once, each at `file:line:col`, by raising
PolicyError. A Policy is immutable: a reload builds a new one.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import types
import typing
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import BaseModel, ValidationError

from engine import settings
from engine.exceptions import ExpressionError, PolicyError, PolicyProblem
from engine.notify import checks as notify_checks
from engine.policy import expr
from engine.policy.cache import CachedSpec, CheckCache, LazyDocument, emits_of
from engine.policy.spec import (
    ANY_STATE,
    SYSTEM,
    WEEKDAYS,
    ConfigSpec,
    EmitAction,
    NotifyAction,
    PartiesFrom,
    RulesFile,
    ScheduleSpec,
    SetAction,
    StartAction,
    WorkflowSpec,
)
from engine.policy.yamlsource import Document, DocumentLike, load_document
from engine.rules import actors
from engine.rules.fields import coerce, typed_defaults
from engine.rules.workcalendar import WorkCalendar

CONFIG_ENV = settings.CONFIG
DEFAULT_CONFIG = "config.yaml"

# Roots an expression may name, per place it appears.
INSTANCE_ATTRS = frozenset({"id", "workflow", "state"})
ACTOR_ATTRS = frozenset({"party", "role", "person", "id"})
EVENT_ATTRS = None  # events carry free-form data
OCCURRENCE_ATTRS = frozenset({"year", "month", "half", "period", "date", "at", "host", "index"})


@dataclass(frozen=True)
class Policy:
    """A validated policy: the deployment config, the workflows and the rules."""

    config_path: Path
    config: ConfigSpec
    workflows: Mapping[str, WorkflowSpec]
    schedules: Mapping[str, ScheduleSpec]
    event_rules: tuple
    digest: str
    sources: Mapping[str, str]
    calendar: WorkCalendar
    expressions: Mapping[str, expr.Expression] = field(repr=False)

    @property
    def root(self) -> Path:
        return self.config_path.parent

    @property
    def tz(self) -> ZoneInfo:
        return self.calendar.tz

    def expression(self, source: str) -> expr.Expression:
        """The compiled form of an expression that appears in this policy."""
        return self.expressions[source]

    def workflow_version(self, workflow_id: str) -> str:
        return workflow_version(self.workflows[workflow_id])

    def folder(self, which: str) -> Path:
        return self.root / getattr(self.config.paths, which)


def workflow_version(spec: WorkflowSpec) -> str:
    """A short hash of a workflow's meaning: changes exactly when its definition changes."""
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()[:16]


def canonical_json(model: BaseModel) -> str:
    return json.dumps(model.model_dump(mode="json", by_alias=True), sort_keys=True, ensure_ascii=False)


def is_expression(value: Any) -> bool:
    """Values written `=...` in `set`, `with` and `data` are expressions, everything else literal."""
    return isinstance(value, str) and value.startswith("=")


def resolve_config_path(given: str | os.PathLike | None) -> Path:
    """CLI flag > COOPFLOW_CONFIG > ./config.yaml."""
    return Path(given or settings.config_path() or DEFAULT_CONFIG)


# --------------------------------------------------------------------------- loading


def load_policy(config_path: str | os.PathLike | None = None, cache: bool = False) -> Policy:
    """Load and validate everything; raise PolicyError listing every problem found.

    `cache` (for `coopflow check`): reuse workflow files validated before (engine.policy.cache);
    the Policy's `expressions` then lack those files' expressions (compiled on first use)."""
    path = resolve_config_path(config_path)
    checker = _Checker(path, CheckCache.for_policy(path) if cache else None)
    return checker.run()


class _Checker:
    """Collects problems while loading; one instance per load."""

    def __init__(self, config_path: Path, cache: CheckCache | None = None):
        self.config_path = config_path
        self.cache = cache
        self.cached: dict[str, CachedSpec] = {}  # display name -> spec found in the cache
        self.problems: list[PolicyProblem] = []
        self.hasher = hashlib.sha256()
        self.expressions: dict[str, expr.Expression] = {}
        self.compiled: dict[tuple, expr.Expression | ExpressionError] = {}
        self.emitted: set[str] | None = None  # events some workflow emits, gathered once
        # Ids of workflows whose file could not be loaded or validated (their own problems are
        # reported already): references to them are not reported again as unknown workflows.
        self.unloaded: set[str] = set()
        # Events named by `emit` in workflow files that did not validate, and whether some workflow
        # file could not be read at all (then it may emit anything).
        self.broken_emits: set[str] = set()
        self.unread: list[Path] = []
        self.workflows_unread = False

    # ---- plumbing

    def report(self, doc: DocumentLike, loc: tuple, message: str) -> None:
        self.problems.append(doc.problem(loc, message))

    def read(self, path: Path, display: str, cached: bool = False) -> Document | LazyDocument | None:
        # The name hashed is relative to the policy folder, so the digest does not depend on the
        # working directory or on how the config path was given.
        name = Path(os.path.relpath(path, self.config_path.parent)).as_posix()
        if cached and self.cache is not None:
            content = path.read_bytes()
            spec = self.cache.lookup(display, content)
            if spec is not None:
                self.hasher.update(name.encode() + b"\0" + content + b"\0")
                self.cached[display] = spec
                return LazyDocument(path, display)
        try:
            doc = load_document(path, display)
        except PolicyError as exc:
            self.problems.extend(exc.problems)
            return None
        self.hasher.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
        return doc

    def validate(self, doc: DocumentLike, model: type[BaseModel]) -> Any:
        if isinstance(doc, LazyDocument) and model is WorkflowSpec:
            return self.cached[doc.file]
        if not isinstance(doc.data, dict):
            self.report(doc, (), f"expected a mapping of keys at the top of the file, found {_found(doc.data)}")
            return None
        try:
            return model.model_validate(doc.data)
        except ValidationError as exc:
            for loc, message in describe_errors(exc.errors(include_url=False), doc.data, model):
                self.report(doc, loc, message)
            return None

    def compile(self, doc: DocumentLike, loc: tuple, source: str, allowed: Mapping) -> None:
        key = (source, frozenset(allowed.items()))  # the same text in the same scope compiles once
        try:
            compiled = self.compiled.get(key)
            if compiled is None:
                try:
                    compiled = self.compiled[key] = expr.parse(source, allowed)
                except ExpressionError as exc:
                    compiled = self.compiled[key] = exc
            if isinstance(compiled, ExpressionError):
                raise compiled
            self.expressions[source] = compiled
        except ExpressionError as exc:
            line, col = doc.where(loc)
            self.problems.append(
                PolicyProblem(doc.file, line, col, f"in expression {source!r}: {exc} (at column {exc.col + 1})")
            )

    def compile_value(self, doc: DocumentLike, loc: tuple, value: Any, allowed: Mapping) -> None:
        if is_expression(value):
            self.compile(doc, loc, value[1:].strip(), allowed)

    # ---- the run

    def run(self) -> Policy:
        display_root = self.config_path.parent
        if not self.config_path.is_file():
            raise PolicyError([PolicyProblem(str(self.config_path), 1, 1, "config file not found")])
        config_doc = self.read(self.config_path, str(self.config_path))
        config = self.validate(config_doc, ConfigSpec) if config_doc else None
        if config_doc is None or config is None:  # config is None whenever config_doc is
            raise PolicyError(self.problems)
        # A bad time zone or holiday country is reported, and the workflows and rules are
        # still checked so that every problem shows at once.
        calendar = self.check_config(config_doc, config)
        for loc, message in notify_checks.config_problems(self.config_path.parent, config):
            self.report(config_doc, loc, message)
        # With the cache, a file that passed unchanged keeps its CachedSpec, which stands in for the
        # WorkflowSpec (what it does not hold at hand is read from the unpickled spec).
        workflows: dict[str, WorkflowSpec | CachedSpec] = {}
        docs: dict[str, DocumentLike] = {}
        for doc in self.folder_docs(display_root / config.paths.workflows, config_doc, ("paths", "workflows"), cached=True):
            spec = self.validate(doc, WorkflowSpec)
            if spec is None:
                self.unloaded.add(Path(doc.file).stem)
                self.broken_emits |= _emits_in(doc.data)
                if isinstance(doc.data, dict) and isinstance(doc.data.get("id"), str):
                    self.unloaded.add(doc.data["id"])
                continue
            if spec.id in workflows:
                self.report(doc, ("id",), f"workflow id '{spec.id}' is already defined in {docs[spec.id].file}")
                continue
            workflows[spec.id], docs[spec.id] = spec, doc
        validated = dict(workflows)
        self.workflows_unread = bool(self.unread)
        cache = self.cache
        context = cache.context(self.config_path.read_bytes(), workflows) if cache else None
        passed = {wid for wid, spec in workflows.items()
                  if cache is not None and context is not None and cache.passed(docs[wid].file, context)}
        checked: dict[str, WorkflowSpec] = {}  # the workflows not passed, checked below in the same order
        for wid, spec in workflows.items():  # defaults become values of their type, once
            # The same bytes passed every check under the same config and neighbours (only a file
            # found in the cache, so a CachedSpec, can have passed).
            if wid in passed and isinstance(spec, CachedSpec):
                workflows[wid] = spec.typed(config)
                continue
            fields, problems = typed_defaults(spec.fields, config)
            for name, message in problems:
                self.report(docs[wid], ("fields", name, "default"), message)
            workflows[wid] = checked[wid] = spec.model_copy(update={"fields": fields})
        for wid, spec in checked.items():
            self.check_workflow(docs[wid], spec, config, workflows)
        schedules: dict[str, ScheduleSpec] = {}
        event_rules = []
        rule_ids: dict[str, str] = {}
        for doc in self.folder_docs(display_root / config.paths.rules, config_doc, ("paths", "rules")):
            rules = self.validate(doc, RulesFile)
            if rules is None:
                continue
            for kind, items in (("schedules", rules.schedules), ("events", rules.events)):
                for i, item in enumerate(items):
                    if item.id in rule_ids:
                        self.report(doc, (kind, i, "id"), f"rule id '{item.id}' is already defined in {rule_ids[item.id]}")
                    rule_ids.setdefault(item.id, doc.file)
            for i, sched in enumerate(rules.schedules):
                self.check_schedule(doc, i, sched, config, workflows)
                schedules[sched.id] = sched
            for i, rule in enumerate(rules.events):
                self.check_event_rule(doc, i, rule, config, workflows)
                event_rules.append(rule)
        if self.problems or calendar is None:
            raise PolicyError(self.problems)
        if cache is not None and context is not None:  # context is None only without a cache
            cache.save(((docs[wid].file, spec) for wid, spec in validated.items()), context)
        return Policy(
            config_path=self.config_path,
            config=config,
            # A CachedSpec reads every WorkflowSpec attribute it lacks from the spec (CachedSpec.__getattr__).
            workflows=typing.cast(dict[str, WorkflowSpec], workflows),
            schedules=schedules,
            event_rules=tuple(event_rules),
            digest=self.hasher.hexdigest(),
            sources={wid: d.file for wid, d in docs.items()},
            calendar=calendar,
            expressions=self.expressions,
        )

    def folder_docs(self, folder: Path, config_doc: DocumentLike, loc: tuple, cached: bool = False) -> Iterator[DocumentLike]:
        if not folder.is_dir():
            self.report(config_doc, loc, f"folder '{folder}' does not exist")
            return
        for path in sorted(folder.iterdir()):
            if path.suffix in (".yaml", ".yml") and path.is_file():
                doc = self.read(path, _display(path), cached)
                if doc is not None:
                    yield doc
                else:
                    self.unloaded.add(path.stem)
                    self.unread.append(path)

    def find_workflow(self, doc: DocumentLike, loc: tuple, wid: str,
                      workflows: Mapping[str, WorkflowSpec | CachedSpec]) -> WorkflowSpec | CachedSpec | None:
        """The workflow `wid`, or None after reporting it unknown (unless its own file is broken)."""
        target = workflows.get(wid)
        if target is None and wid not in self.unloaded:
            self.report(doc, loc, f"unknown workflow '{wid}'; workflows: {', '.join(sorted(workflows)) or 'none'}")
        return target

    # ---- config

    def check_config(self, doc: DocumentLike, config: ConfigSpec) -> WorkCalendar | None:
        ok = True
        signer = config.agreement.signer
        if signer is not None and not any(signer in party.roles for party in list(config.parties.values())[:2]):
            self.report(doc, ("agreement", "signer"), f"no issuing party (the first two parties) has the role '{signer}'")
        try:
            ZoneInfo(config.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            self.report(doc, ("timezone",), f"unknown time zone '{config.timezone}' (use an IANA name such as Asia/Ho_Chi_Minh)")
            ok = False
        country, subdivision = config.calendar.holidays, config.calendar.subdivision
        if country is not None:
            # The registry lists the codes without importing the ~250 country modules that
            # holidays.list_supported_countries() loads (a quarter second on every command).
            from holidays.registry import EntityLoader

            if country.upper() not in set(EntityLoader.get_country_codes(include_aliases=True)):
                self.report(doc, ("calendar", "holidays"),
                            f"unknown holiday country '{country}' (use a two-letter ISO 3166 code such as VN, or null for none)")
                ok = False
            elif subdivision is not None and subdivision not in (subdivisions := list(getattr(holidays, country.upper()).subdivisions)):
                known = ", ".join(subdivisions) or "none"
                self.report(doc, ("calendar", "subdivision"),
                            f"unknown subdivision '{subdivision}' of holiday country '{country}'; known: {known}")
                ok = False
        elif subdivision is not None:
            self.report(doc, ("calendar", "subdivision"), "a subdivision needs a holiday country in 'holidays'")
            ok = False
        for year, overrides in config.calendar.overrides.items():
            for key in ("off", "work"):
                for i, day in enumerate(getattr(overrides, key)):
                    if day.year != year:
                        self.report(doc, ("calendar", "overrides", year, key, i),
                                    f"{day} is listed under year {year}: move it to {day.year} or fix the date")
                        ok = False
        if not ok:
            return None
        days_off = [d for o in config.calendar.overrides.values() for d in o.off]
        work_days = [d for o in config.calendar.overrides.values() for d in o.work]
        try:
            return WorkCalendar(
                config.timezone,
                weekend=[WEEKDAYS.index(d) for d in config.calendar.weekend],
                country=config.calendar.holidays,
                subdivision=config.calendar.subdivision,
                extra_days_off=days_off,
                extra_working_days=work_days,
            )
        except ValueError as exc:  # e.g. a day listed both as off and as worked
            self.report(doc, ("calendar", "overrides"), str(exc))
            return None

    # ---- workflows

    def check_workflow(
        self, doc: DocumentLike, spec: WorkflowSpec, config: ConfigSpec, workflows: Mapping[str, WorkflowSpec | CachedSpec]
    ) -> None:
        states = spec.states
        party_fields = {n for n, f in spec.fields.items() if f.type == "party"}
        allowed = {
            "fields": frozenset(spec.fields),
            "given": frozenset(spec.fields),  # the values supplied with the event (engine.rules.decision)
            "actor": ACTOR_ATTRS,
            "instance": INSTANCE_ATTRS,
            "now": frozenset(),
        }
        if spec.initial not in states:
            self.report(doc, ("initial",), f"initial state '{spec.initial}' is not declared; states: {', '.join(states)}")
        for i, pattern in enumerate(spec.started_by):
            self.check_pattern(doc, ("started_by", i), pattern, config, party_fields)
        outgoing: dict[str, set[str]] = {s: set() for s in states}
        for i, t in enumerate(spec.transitions):
            here = ("transitions", i)
            for j, src in enumerate(t.sources):
                if src == ANY_STATE:
                    continue
                where = here + ("from",) + ((j,) if isinstance(t.source, list) else ())
                if src not in states:
                    self.report(doc, where, f"unknown state '{src}'; states: {', '.join(states)}")
                elif states[src].final:
                    self.report(doc, where, f"state '{src}' is final: no transition may leave it")
            if t.dest not in states:
                self.report(doc, here + ("to",), f"unknown state '{t.dest}'; states: {', '.join(states)}")
            for src in spec.sources_of(t):
                outgoing[src].add(t.dest)
            for j, pattern in enumerate(t.by):
                self.check_pattern(doc, here + ("by", j), pattern, config, party_fields)
            for key in ("require", "accepts"):
                for j, name in enumerate(getattr(t, key)):
                    if name not in spec.fields:
                        self.report(doc, here + (key, j), f"unknown field '{name}'; fields: {', '.join(spec.fields) or 'none'}")
            if t.when:
                self.compile(doc, here + ("when",), t.when, allowed)
            if t.approvals:
                self.check_approvals(doc, here + ("approvals",), t, config, spec)
            for j, action in enumerate(t.then):
                self.check_action(doc, here + ("then", j), action, spec, config, workflows, allowed)
        self.check_duplicate_triggers(doc, spec)
        self.check_views(doc, spec)
        for sid, state in states.items():
            if state.deadline:
                self.check_deadline(doc, sid, spec, config)
            if not state.final and not outgoing.get(sid):
                self.report(doc, ("states", sid, "__key__"), f"state '{sid}' is not final but no transition leaves it")
        if spec.initial in states:
            seen, todo = {spec.initial}, [spec.initial]
            while todo:
                for nxt in outgoing.get(todo.pop(), ()):
                    if nxt in states and nxt not in seen:
                        seen.add(nxt)
                        todo.append(nxt)
            for sid in states:
                if sid not in seen:
                    self.report(doc, ("states", sid, "__key__"), f"state '{sid}' cannot be reached from '{spec.initial}'")

    def check_duplicate_triggers(self, doc: DocumentLike, spec: WorkflowSpec) -> None:
        seen: dict[tuple[str, str], int] = {}
        for i, t in enumerate(spec.transitions):
            for src in spec.sources_of(t):
                key = (t.trigger, src)
                if key in seen and not (t.when and spec.transitions[seen[key]].when):
                    self.report(
                        doc, ("transitions", i, "trigger"),
                        f"trigger '{t.trigger}' from '{src}' is already defined by transition {seen[key] + 1}; "
                        "give both a 'when' guard to choose between them",
                    )
                seen.setdefault(key, i)

    def check_views(self, doc: DocumentLike, spec: WorkflowSpec) -> None:
        """`subject:` and `meeting:` name fields and states of this workflow."""
        if spec.subject is not None and spec.subject not in spec.fields:
            self.report(doc, ("subject",), f"'subject' must name a field of this workflow, not '{spec.subject}'")
        meeting = spec.meeting
        if spec.report is not None:
            self.check_report(doc, spec)
        if meeting is None:
            return
        for loc, sid in [(("meeting", "state"), meeting.state)] + [(("meeting", "held", j), s) for j, s in enumerate(meeting.held)]:
            if sid not in spec.states:
                self.report(doc, loc, f"unknown state '{sid}'; states: {', '.join(spec.states)}")
        if meeting.at is not None and getattr(spec.fields.get(meeting.at), "type", None) != "datetime":
            self.report(doc, ("meeting", "at"), f"'at' must name a datetime field of this workflow, not '{meeting.at}'")
        if meeting.at is None and meeting.state in spec.states and spec.states[meeting.state].deadline is None:
            self.report(doc, ("meeting",), f"give 'at' (a datetime field) or a deadline on state '{meeting.state}': "
                        "otherwise the meeting has no time")

    def check_report(self, doc: DocumentLike, spec: WorkflowSpec) -> None:
        """`report:` names fields and states of this workflow, of the right types."""
        report = spec.report
        if report is None:  # check_views calls this only for a workflow with `report:`
            return
        action = report.action
        # (loc, field named, the type it must have if any), (loc, state named)
        fields: list[tuple[tuple, str | None, str | None]] = [
            (("report", "dispatch", j), f, None) for j, f in enumerate(report.dispatch)]
        fields += [(("report", key), getattr(report, key), None) for key in ("answer", "conclusions")]
        states: list[tuple[tuple, str]] = [
            (("report", key, j), s) for key in ("overdue", "escalated", "referred") for j, s in enumerate(getattr(report, key))]
        if action is not None:
            fields += [(("report", "action", "meeting"), action.meeting, None), (("report", "action", "party"), action.party, "party"),
                       (("report", "action", "due"), action.due, "datetime")]
            states += [(("report", "action", "done", j), s) for j, s in enumerate(action.done)]
            if not action.done:
                self.report(doc, ("report", "action", "done"), "name at least one state meaning the item was carried out")
        for loc, name, kind in fields:
            if name is None:
                continue
            if name not in spec.fields:
                self.report(doc, loc, f"unknown field '{name}'; fields: {', '.join(spec.fields) or 'none'}")
            elif kind is not None and spec.fields[name].type != kind:
                self.report(doc, loc, f"'{name}' must be a {kind} field, not {spec.fields[name].type}")
        for loc, sid in states:
            if sid not in spec.states:
                self.report(doc, loc, f"unknown state '{sid}'; states: {', '.join(spec.states)}")

    def check_deadline(self, doc: DocumentLike, sid: str, spec: WorkflowSpec, config: ConfigSpec | None = None) -> None:
        deadline = spec.states[sid].deadline
        if deadline is None:  # check_workflow calls this only for a state with a deadline
            return
        loc = ("states", sid, "deadline")
        fires = [t for t in spec.transitions if t.trigger == deadline.fire and spec.leaves(t, sid)]
        if not fires:
            self.report(doc, loc + ("fire",), f"deadline fires '{deadline.fire}' but no transition with that trigger leaves '{sid}'")
        elif not any(SYSTEM in t.by for t in fires):
            self.report(doc, loc + ("fire",), f"deadline fires '{deadline.fire}' but that transition does not list 'system' in 'by'")
        if deadline.at is not None:
            fspec = spec.fields.get(deadline.at)
            if fspec is None or fspec.type != "datetime":
                self.report(doc, loc + ("at",), f"'at' must name a datetime field of this workflow, not '{deadline.at}'")
        if deadline.remind is not None:
            self.check_remind(doc, loc + ("remind",), sid, spec, config)

    def check_remind(self, doc: DocumentLike, loc: tuple, sid: str, spec: WorkflowSpec, config: ConfigSpec | None) -> None:
        """`remind:` spans are shorter than their deadline, and reach someone who owes a step from the state."""
        deadline = spec.states[sid].deadline
        remind = deadline.remind if deadline is not None else None
        if deadline is None or remind is None:  # check_deadline calls this only for a deadline with `remind:`
            return
        spans = remind if isinstance(remind, list) else [remind]
        for j, span in enumerate(spans):
            here = loc + ((j,) if isinstance(remind, list) else ())
            unit = next(k for k in ("working_days", "days", "hours") if getattr(span, k) is not None)
            if getattr(span, unit) == 0:
                self.report(doc, here, "a reminder 0 days before the deadline is the deadline itself: give at least 1")
            elif deadline.at is None and getattr(deadline, unit) is not None and getattr(span, unit) >= getattr(deadline, unit):
                self.report(doc, here, f"remind {span.describe()} before a deadline of {deadline.describe()}: "
                            "a reminder comes during the deadline, so make it shorter than the deadline")
        patterns = [p for t in spec.transitions if spec.leaves(t, sid) for p in t.by if p != SYSTEM]
        if not patterns:
            self.report(doc, loc, f"only the system may act in state '{sid}', so nobody owes a step to be reminded of")
        if config is None:
            return
        missing = list(dict.fromkeys(m for p in patterns for m in notify_checks.unreachable(p, config)))
        if missing:
            self.report(doc, loc, f"the reminder goes to those who may act in '{sid}', but {', '.join(missing)} cannot be "
                        "reached: add an address under notifications.contacts (or a webhook for the party)")

    def check_pattern(self, doc: DocumentLike, loc: tuple, pattern: str, config: ConfigSpec, party_fields: set[str]) -> None:
        problem = actors.pattern_problem(pattern, config, party_fields)
        if problem:
            self.report(doc, loc, problem)

    def check_approvals(self, doc: DocumentLike, loc: tuple, t, config: ConfigSpec, spec: WorkflowSpec) -> None:
        approvals, chosen = t.approvals, t.approvals.parties
        known = ', '.join(sorted(config.parties))
        listed, where = (chosen, ("parties",)) if isinstance(chosen, list) else (
            (chosen.among or [], ("parties", "among")) if isinstance(chosen, PartiesFrom) else ([], ()))
        for j, party in enumerate(listed):
            if party not in config.parties:
                self.report(doc, loc + where + (j,), f"unknown party '{party}'; known: {known}")
        if isinstance(chosen, PartiesFrom):
            for key, name, types in (("in", chosen.in_, ("party", "list")), ("others_than", chosen.others_than, ("party",))):
                if name is not None and (name not in spec.fields or spec.fields[name].type not in types):
                    self.report(doc, loc + ("parties", key), f"'{name}' is not a {' or '.join(types)} field of workflow "
                                f"'{spec.id}'; fields: {', '.join(spec.fields) or 'none'}")
        # The most parties that may consent (a field listing parties: counted when consent is given).
        most = (None if isinstance(chosen, PartiesFrom) and chosen.in_ else
                len(config.parties) if chosen == "all" else len(listed or config.parties) - bool(
                    isinstance(chosen, PartiesFrom) and chosen.others_than))
        if most is not None and approvals.quorum is not None and approvals.quorum > most:
            self.report(doc, loc + ("quorum",), f"quorum {approvals.quorum} is more than the {most} parties that may consent")
        if SYSTEM in t.by:
            self.report(doc, loc, "a transition fired by 'system' cannot need approvals")

    def check_literal(self, doc: DocumentLike, loc: tuple, name: str, value: Any, spec: WorkflowSpec | CachedSpec,
                      config: ConfigSpec) -> None:
        fspec = spec.fields.get(name)
        if fspec is None:
            self.report(doc, loc[:-1] + (name, "__key__") if loc[-1] == name else loc,
                        f"unknown field '{name}' of workflow '{spec.id}'; fields: {', '.join(spec.fields) or 'none'}")
            return
        if is_expression(value):
            return
        try:
            coerce(name, fspec, value, config)
        except ValueError as exc:
            self.report(doc, loc, str(exc))

    def check_values(self, doc, loc, values, target: WorkflowSpec | CachedSpec, config, allowed,
                     extra: Collection[str] = frozenset()) -> None:
        for name, value in values.items():
            if name in extra:
                continue
            self.check_literal(doc, loc + (name,), name, value, target, config)
            self.compile_value(doc, loc + (name,), value, allowed)

    def check_action(self, doc, loc, action, spec, config, workflows, allowed) -> None:
        if isinstance(action, EmitAction):
            for key, value in action.data.items():
                self.compile_value(doc, loc + ("data", key), value, allowed)
        elif isinstance(action, SetAction):
            self.check_values(doc, loc + ("set",), action.set, spec, config, allowed)
        elif isinstance(action, StartAction):
            target = self.find_workflow(doc, loc + ("start",), action.start, workflows)
            if target is None:
                return
            self.check_values(doc, loc + ("with",), action.with_, target, config, allowed)
            self.check_required(doc, loc + ("start",), target, set(action.with_))
        elif isinstance(action, NotifyAction):
            party_fields = {n for n, f in spec.fields.items() if f.type == "party"}
            for j, pattern in enumerate(action.notify):
                self.check_pattern(doc, loc + ("notify", j), pattern, config, party_fields)
                if missing := notify_checks.unreachable(pattern, config):
                    self.report(doc, loc + ("notify", j), f"'{pattern}' names {', '.join(missing)}, who cannot be reached: "
                                "add an address under notifications.contacts (or a webhook for the party)")
            self.compile_value(doc, loc + ("message",), action.message, allowed)

    def check_required(self, doc, loc, target: WorkflowSpec | CachedSpec, given: set[str], actor: str = SYSTEM) -> None:
        """A workflow the engine starts (action, schedule, rule) must allow its actor and get its required fields."""
        if actor == SYSTEM and SYSTEM not in target.started_by:
            self.report(doc, loc, f"workflow '{target.id}' is started here by the engine, so its started_by must list 'system'")
        missing = [n for n, f in target.fields.items() if f.required and f.default is None and n not in given]
        if missing:
            self.report(doc, loc, f"workflow '{target.id}' needs the required field(s) {', '.join(missing)}")

    # ---- rules

    def check_schedule(self, doc, i, sched: ScheduleSpec, config, workflows) -> None:
        loc = ("schedules", i)
        target = self.find_workflow(doc, loc + ("start",), sched.start, workflows)
        if target is None:
            return
        if sched.actor != SYSTEM:
            try:
                actors.parse_actor(sched.actor, config)
            except Exception as exc:  # CoopflowError: user text
                self.report(doc, loc + ("as",), str(exc))
        given = set(sched.with_)
        if sched.host:
            self.check_rotation(doc, loc + ("host",), sched.host, config)
            hfield = target.fields.get(sched.host.field)
            if hfield is None or hfield.type != "party":
                self.report(doc, loc + ("host", "field"), f"workflow '{target.id}' has no party field '{sched.host.field}' to hold the host")
            given.add(sched.host.field)
        self.check_values(doc, loc + ("with",), sched.with_, target, config, {"occurrence": OCCURRENCE_ATTRS})
        self.check_required(doc, loc + ("start",), target, given, sched.actor)

    def check_rotation(self, doc, loc, rotation, config) -> None:
        known = ', '.join(sorted(config.parties))
        eras = [((), rotation.rotate, rotation.first)] + [(("changes", k), c.rotate or [], c.first) for k, c in enumerate(rotation.changes)]
        for where, order, first in eras:
            for j, party in enumerate(order):
                if party not in config.parties:
                    self.report(doc, loc + where + ("rotate", j), f"unknown party '{party}'; known: {known}")
            if first is not None and first not in config.parties:
                self.report(doc, loc + where + ("first",), f"unknown party '{first}'; known: {known}")
        for k, change in enumerate(rotation.changes):
            order = change.rotate or rotation.rotate
            if change.rotate is None and change.first is not None and change.first not in order:
                self.report(doc, loc + ("changes", k, "first"), f"first host '{change.first}' is not in rotate ({', '.join(order)})")

    def check_event_rule(self, doc, i, rule, config, workflows) -> None:
        loc = ("events", i)
        allowed = {"event": EVENT_ATTRS}
        if self.emitted is None:
            self.emitted = set().union(*(emits_of(w) for w in workflows.values()))
        emitted = self.emitted
        if rule.on not in emitted | self.broken_emits and not self.workflows_unread:  # a broken workflow file may emit it
            self.report(doc, loc + ("on",), f"no workflow emits '{rule.on}'; emitted events: {', '.join(sorted(emitted)) or 'none'}")
        if rule.when:
            self.compile(doc, loc + ("when",), rule.when, allowed)
        if rule.start:
            target = self.find_workflow(doc, loc + ("start", "workflow"), rule.start.workflow, workflows)
            if target is None:
                return
            self.check_values(doc, loc + ("start", "with"), rule.start.with_, target, config, allowed)
            self.check_required(doc, loc + ("start", "workflow"), target, set(rule.start.with_))
        else:
            target = self.find_workflow(doc, loc + ("fire", "workflow"), rule.fire.workflow, workflows)
            if target is None:
                return
            fires = [t for t in target.transitions if t.trigger == rule.fire.trigger]
            if not fires:
                self.report(doc, loc + ("fire", "trigger"), f"workflow '{target.id}' has no trigger '{rule.fire.trigger}'")
            elif not any(SYSTEM in t.by for t in fires):
                self.report(doc, loc + ("fire", "trigger"), f"trigger '{rule.fire.trigger}' of '{target.id}' does not list 'system' in 'by'")
            self.compile(doc, loc + ("fire", "instance"), rule.fire.instance.lstrip("=").strip(), allowed)


def _emits_in(data: Any) -> set[str]:
    """The event names written as `emit: name` anywhere in a file's data."""
    if isinstance(data, list):
        return set().union(*map(_emits_in, data))
    if isinstance(data, dict):
        found = {data["emit"]} if isinstance(data.get("emit"), str) else set()
        return found.union(*map(_emits_in, data.values()))
    return set()


def _display(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(_cwd()))
    except ValueError:
        return str(path)


def _cwd() -> Path:
    """The resolved working directory, once per directory (a 1,000-file check asks 1,000 times)."""
    here = os.getcwd()
    if _CWD[0] != here:
        _CWD[:] = [here, Path(here).resolve()]
    return _CWD[1]


_CWD: list = [None, None]


def _found(value: Any) -> str:
    """What the file holds, as an administrator would describe it."""
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value) if value else "an empty text"
    return str(value)


def _name(loc: tuple) -> str:
    """The key an error is about: 'title', or "item 2 of 'months'"."""
    if not loc:
        return "this file"
    if isinstance(loc[-1], int):
        parent = next((p for p in reversed(loc) if isinstance(p, str)), None)
        return f"item {loc[-1] + 1} of '{parent}'" if parent else f"item {loc[-1] + 1}"
    return f"'{loc[-1]}'"


EXPECTED: dict[str, str] = {
    "dict_type": "a mapping of key: value pairs",
    "model_type": "a mapping of key: value pairs",
    "model_attributes_type": "a mapping of key: value pairs",
    "list_type": "a list",
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "date_type": "a date as YYYY-MM-DD",
    "date_parsing": "a date as YYYY-MM-DD",
    "date_from_datetime_parsing": "a date as YYYY-MM-DD",
    "date_from_datetime_inexact": "a date as YYYY-MM-DD",
}
"""What a value of the wrong type should have been, by pydantic error type."""


def _expected(error: dict) -> str | None:
    if error["type"] == "literal_error":
        return error["ctx"]["expected"]
    return EXPECTED.get(error["type"])


ERROR_TEXT: dict[str, Callable[[dict], str]] = {
    "missing": lambda e: f"missing required key '{e['loc'][-1]}'",
    "string_pattern_mismatch": lambda e: (
        f"{e['input']!r} is not a valid id: use lowercase letters, digits and _, starting with a letter"
        if "[a-z0-9_]*$" in e["ctx"]["pattern"]
        else f"{e['input']!r} does not match the pattern {e['ctx']['pattern']}"
    ),
    "string_too_short": lambda e: f"{_name(e['real'])} must not be empty",
    "too_short": lambda e: (
        f"{_name(e['real'])} must not be empty" if e["ctx"]["min_length"] == 1
        else f"{_name(e['real'])} needs at least {e['ctx']['min_length']} items"
    ),
    "less_than_equal": lambda e: f"{_name(e['real'])} must be at most {e['ctx']['le']}, found {_found(e['input'])}",
    "less_than": lambda e: f"{_name(e['real'])} must be less than {e['ctx']['lt']}, found {_found(e['input'])}",
    "greater_than_equal": lambda e: f"{_name(e['real'])} must be at least {e['ctx']['ge']}, found {_found(e['input'])}",
    "greater_than": lambda e: f"{_name(e['real'])} must be more than {e['ctx']['gt']}, found {_found(e['input'])}",
}
"""Messages for pydantic error types whose own text does not suit an administrator.

Each function gets the pydantic error dict plus `real`: its loc reduced to the keys and
indexes present in the file (see `_real_loc`)."""


def _real_loc(data: Any, loc: tuple) -> tuple:
    """The part of a pydantic loc that names keys and indexes present in the data.

    Union members add tags such as 'str' or "literal['all']" to a loc, and a missing key is
    not in the data: such parts are dropped.
    """
    real: tuple = ()
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            continue
        real += (part,)
    return real


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The policy model that validates the mapping at pydantic `loc` (union tags included), if known."""
    current: Any = model
    parts = list(loc)
    while True:
        while typing.get_origin(current) is typing.Annotated:
            current = typing.get_args(current)[0]
        if typing.get_origin(current) in (Union, types.UnionType):
            members = [m for m in typing.get_args(current) if m is not type(None)]
            tagged = [m for m in members if parts and any(getattr(x, "tag", None) == parts[0] for x in getattr(m, "__metadata__", ()))]
            if tagged:
                current = tagged[0]
                parts.pop(0)
            elif len(members) == 1:
                current = members[0]
            else:
                return None
            continue
        if not parts:
            return current if isinstance(current, type) and issubclass(current, BaseModel) else None
        part = parts.pop(0)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = next((f for n, f in current.model_fields.items() if (f.alias or n) == part), None)
            if field is None:
                return None
            current = field.annotation
        elif typing.get_origin(current) is list and isinstance(part, int):
            current = typing.get_args(current)[0]
        elif typing.get_origin(current) is dict:
            current = typing.get_args(current)[1]
        else:
            return None


def _unknown_key(error: dict, model: type[BaseModel] | None) -> str:
    """'unknown key', with the likely intended key or the keys allowed at that place."""
    key = error["loc"][-1]
    where = _model_at(model, tuple(error["loc"][:-1])) if model is not None else None
    if where is None:
        return f"unknown key '{key}'"
    allowed = sorted(f.alias or n for n, f in where.model_fields.items())
    close = difflib.get_close_matches(str(key), allowed, n=1)
    if close:
        return f"unknown key '{key}' (did you mean '{close[0]}'?)"
    return f"unknown key '{key}'; allowed here: {', '.join(allowed)}"


def _union_type_error(error: dict) -> bool:
    """A wrong-type error raised by one member of a union (its loc ends in a member tag)."""
    return len(error["loc"]) > len(error["real"]) and error["type"] != "missing" and _expected(error) is not None


def _explained_by_typo(error: dict, errors: list[dict]) -> bool:
    """A missing key next to a misspelling of it (`tittle` for `title`): the unknown key says it all."""
    if error["type"] != "missing":
        return False
    parent, key = tuple(error["loc"][:-1]), str(error["loc"][-1])
    return any(
        e["type"] == "extra_forbidden" and tuple(e["loc"][:-1]) == parent
        and difflib.get_close_matches(str(e["loc"][-1]), [key], n=1)
        for e in errors
    )


def describe_errors(errors: Iterable[Mapping[str, Any]], data: Any, model: type[BaseModel]) -> list[tuple[tuple, str]]:
    """The pydantic errors of one file as (loc, message) pairs, one per mistake.

    A value that fits no member of a union (`from: {a: 1}` for `str | list[str]`) gives one
    error per member: they become one message listing what is expected. When the value has the
    outer type of a member (a list whose second item is a number), only that member's errors,
    which lie deeper, are kept.
    """
    listed = [{**e, "real": _real_loc(data, tuple(e["loc"]))} for e in errors]
    kept = [e for e in listed if not _explained_by_typo(e, listed)]
    deeper = {error["real"][:n] for error in kept for n in range(len(error["real"]))}
    groups: dict[tuple, list[dict]] = {}
    for error in kept:
        if not (_union_type_error(error) and error["real"] in deeper):
            groups.setdefault(error["real"], []).append(error)
    out: list[tuple[tuple, str]] = []
    for real, group in groups.items():
        members = [e for e in group if _union_type_error(e)]
        if len(members) > 1:
            expected = " or ".join(dict.fromkeys(x for x in map(_expected, members) if x is not None))  # never None here
            out.append((real, f"{_name(real)} must be {expected}, found {_found(members[0]['input'])}"))
            group = [e for e in group if e not in members]
        # An unknown key is reported at the key itself, not at its value.
        out.extend((tuple(e["loc"]) + (("__key__",) if e["type"] == "extra_forbidden" else ()), describe_error(e, model))
                   for e in group)
    return out


def describe_error(error: dict, model: type[BaseModel] | None = None) -> str:
    """One pydantic error as a short sentence for an administrator.

    `model` (the file's root model) lets an unknown key name the keys allowed in its place.
    """
    if "real" not in error:
        error = {**error, "real": tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith(("function-", "literal["))))}
    if error["type"] == "extra_forbidden":
        return _unknown_key(error, model)
    special = ERROR_TEXT.get(error["type"])
    if special:
        return special(error)
    expected = _expected(error)
    if expected:
        return f"{_name(error['real'])} must be {expected}, found {_found(error.get('input'))}"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    if error["type"] in ("value_error", "action_kind"):
        return message
    return f"{_name(error['real'])}: {message} (found {_found(error.get('input'))})"
