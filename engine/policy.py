"""Load a policy (config.yaml, workflows/, rules/), validate it whole, and give it a content hash.

`load_policy` reports every mistake it finds at once, each at `file:line:col`, by raising
PolicyError. A Policy is immutable: a reload builds a new one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ValidationError

from engine import actors, expr
from engine.exceptions import ExpressionError, PolicyError, PolicyProblem
from engine.fields import coerce
from engine.spec import (
    ANY_STATE,
    SYSTEM,
    WEEKDAYS,
    ConfigSpec,
    EmitAction,
    NotifyAction,
    RulesFile,
    ScheduleSpec,
    SetAction,
    StartAction,
    WorkflowSpec,
)
from engine.workcalendar import WorkCalendar
from engine.yamlsource import Document, load_document

CONFIG_ENV = "COOPFLOW_CONFIG"
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
    return Path(given or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


# --------------------------------------------------------------------------- loading


def load_policy(config_path: str | os.PathLike | None = None) -> Policy:
    """Load and validate everything; raise PolicyError listing every problem found."""
    checker = _Checker(resolve_config_path(config_path))
    return checker.run()


class _Checker:
    """Collects problems while loading; one instance per load."""

    def __init__(self, config_path: Path):
        self.config_path = config_path
        self.problems: list[PolicyProblem] = []
        self.hasher = hashlib.sha256()
        self.expressions: dict[str, expr.Expression] = {}

    # ---- plumbing

    def report(self, doc: Document, loc: tuple, message: str) -> None:
        self.problems.append(doc.problem(loc, message))

    def read(self, path: Path, display: str) -> Document | None:
        try:
            doc = load_document(path, display)
        except PolicyError as exc:
            self.problems.extend(exc.problems)
            return None
        self.hasher.update(display.encode() + b"\0" + path.read_bytes() + b"\0")
        return doc

    def validate(self, doc: Document, model: type[BaseModel]) -> Any:
        if not isinstance(doc.data, dict):
            found = type(doc.data).__name__ if doc.data is not None else "nothing"
            self.report(doc, (), f"expected a mapping of keys at the top of the file, found {found}")
            return None
        try:
            return model.model_validate(doc.data)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                self.report(doc, tuple(error["loc"]), describe_error(error))
            return None

    def compile(self, doc: Document, loc: tuple, source: str, allowed: Mapping) -> None:
        try:
            self.expressions[source] = expr.parse(source, allowed)
        except ExpressionError as exc:
            line, col = doc.where(loc)
            self.problems.append(
                PolicyProblem(doc.file, line, col, f"in expression {source!r}: {exc} (at column {exc.col + 1})")
            )

    def compile_value(self, doc: Document, loc: tuple, value: Any, allowed: Mapping) -> None:
        if is_expression(value):
            self.compile(doc, loc, value[1:].strip(), allowed)

    # ---- the run

    def run(self) -> Policy:
        display_root = self.config_path.parent
        if not self.config_path.is_file():
            raise PolicyError([PolicyProblem(str(self.config_path), 1, 1, "config file not found")])
        config_doc = self.read(self.config_path, str(self.config_path))
        config = self.validate(config_doc, ConfigSpec) if config_doc else None
        calendar = self.check_config(config_doc, config) if config else None
        if config is None or calendar is None:
            raise PolicyError(self.problems)
        workflows: dict[str, WorkflowSpec] = {}
        docs: dict[str, Document] = {}
        for doc in self.folder_docs(display_root / config.paths.workflows, config_doc, ("paths", "workflows")):
            spec = self.validate(doc, WorkflowSpec)
            if spec is None:
                continue
            if spec.id in workflows:
                self.report(doc, ("id",), f"workflow id '{spec.id}' is already defined in {docs[spec.id].file}")
                continue
            workflows[spec.id], docs[spec.id] = spec, doc
        for wid, spec in workflows.items():
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
                    rule_ids[item.id] = doc.file
            for i, sched in enumerate(rules.schedules):
                self.check_schedule(doc, i, sched, config, workflows)
                schedules[sched.id] = sched
            for i, rule in enumerate(rules.events):
                self.check_event_rule(doc, i, rule, config, workflows)
                event_rules.append(rule)
        if self.problems:
            raise PolicyError(self.problems)
        return Policy(
            config_path=self.config_path,
            config=config,
            workflows=workflows,
            schedules=schedules,
            event_rules=tuple(event_rules),
            digest=self.hasher.hexdigest(),
            sources={wid: d.file for wid, d in docs.items()},
            calendar=calendar,
            expressions=self.expressions,
        )

    def folder_docs(self, folder: Path, config_doc: Document, loc: tuple) -> Iterator[Document]:
        if not folder.is_dir():
            self.report(config_doc, loc, f"folder '{folder}' does not exist")
            return
        for path in sorted(folder.iterdir()):
            if path.suffix in (".yaml", ".yml") and path.is_file():
                doc = self.read(path, _display(path))
                if doc is not None:
                    yield doc

    # ---- config

    def check_config(self, doc: Document, config: ConfigSpec) -> WorkCalendar | None:
        try:
            ZoneInfo(config.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            self.report(doc, ("timezone",), f"unknown time zone '{config.timezone}' (use an IANA name such as Asia/Ho_Chi_Minh)")
            return None
        for year, overrides in config.calendar.overrides.items():
            for key in ("off", "work"):
                for i, day in enumerate(getattr(overrides, key)):
                    if day.year != year:
                        self.report(doc, ("calendar", "overrides", year, key, i), f"{day} is not in {year}")
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
        except ValueError as exc:
            self.report(doc, ("calendar", "holidays"), str(exc))
            return None

    # ---- workflows

    def check_workflow(
        self, doc: Document, spec: WorkflowSpec, config: ConfigSpec, workflows: Mapping[str, WorkflowSpec]
    ) -> None:
        states = spec.states
        party_fields = {n for n, f in spec.fields.items() if f.type == "party"}
        allowed = {
            "fields": frozenset(spec.fields),
            "actor": ACTOR_ATTRS,
            "instance": INSTANCE_ATTRS,
            "now": frozenset(),
        }
        if spec.initial not in states:
            self.report(doc, ("initial",), f"initial state '{spec.initial}' is not declared; states: {', '.join(states)}")
        for i, pattern in enumerate(spec.started_by):
            self.check_pattern(doc, ("started_by", i), pattern, config, party_fields)
        for name, fspec in spec.fields.items():
            if fspec.default is not None:
                self.check_literal(doc, ("fields", name, "default"), name, fspec.default, spec, config)
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
            for src in self.expand_sources(spec, t.sources):
                outgoing[src].add(t.dest)
            for j, pattern in enumerate(t.by):
                self.check_pattern(doc, here + ("by", j), pattern, config, party_fields)
            for j, name in enumerate(t.require):
                if name not in spec.fields:
                    self.report(doc, here + ("require", j), f"unknown field '{name}'; fields: {', '.join(spec.fields) or 'none'}")
            if t.when:
                self.compile(doc, here + ("when",), t.when, allowed)
            if t.approvals:
                self.check_approvals(doc, here + ("approvals",), t, config)
            for j, action in enumerate(t.then):
                self.check_action(doc, here + ("then", j), action, spec, config, workflows, allowed)
        self.check_duplicate_triggers(doc, spec)
        for sid, state in states.items():
            if state.deadline:
                self.check_deadline(doc, sid, spec)
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

    @staticmethod
    def expand_sources(spec: WorkflowSpec, sources: list[str]) -> list[str]:
        if ANY_STATE in sources:
            return [s for s, st in spec.states.items() if not st.final]
        return [s for s in sources if s in spec.states]

    def check_duplicate_triggers(self, doc: Document, spec: WorkflowSpec) -> None:
        seen: dict[tuple[str, str], int] = {}
        for i, t in enumerate(spec.transitions):
            for src in self.expand_sources(spec, t.sources):
                key = (t.trigger, src)
                if key in seen and not (t.when and spec.transitions[seen[key]].when):
                    self.report(
                        doc, ("transitions", i, "trigger"),
                        f"trigger '{t.trigger}' from '{src}' is already defined by transition {seen[key] + 1}; "
                        "give both a 'when' guard to choose between them",
                    )
                seen.setdefault(key, i)

    def check_deadline(self, doc: Document, sid: str, spec: WorkflowSpec) -> None:
        deadline = spec.states[sid].deadline
        loc = ("states", sid, "deadline")
        fires = [t for t in spec.transitions if t.trigger == deadline.fire and sid in self.expand_sources(spec, t.sources)]
        if not fires:
            self.report(doc, loc + ("fire",), f"deadline fires '{deadline.fire}' but no transition with that trigger leaves '{sid}'")
        elif not any(SYSTEM in t.by for t in fires):
            self.report(doc, loc + ("fire",), f"deadline fires '{deadline.fire}' but that transition does not list 'system' in 'by'")
        if deadline.at is not None:
            fspec = spec.fields.get(deadline.at)
            if fspec is None or fspec.type != "datetime":
                self.report(doc, loc + ("at",), f"'at' must name a datetime field of this workflow, not '{deadline.at}'")

    def check_pattern(self, doc: Document, loc: tuple, pattern: str, config: ConfigSpec, party_fields: set[str]) -> None:
        problem = actors.pattern_problem(pattern, config, party_fields)
        if problem:
            self.report(doc, loc, problem)

    def check_approvals(self, doc: Document, loc: tuple, t, config: ConfigSpec) -> None:
        approvals = t.approvals
        parties = list(config.parties) if approvals.parties == "all" else approvals.parties
        if approvals.parties != "all":
            for j, party in enumerate(approvals.parties):
                if party not in config.parties:
                    self.report(doc, loc + ("parties", j), f"unknown party '{party}'; known: {', '.join(sorted(config.parties))}")
        if approvals.quorum is not None and approvals.quorum > len(parties):
            self.report(doc, loc + ("quorum",), f"quorum {approvals.quorum} is more than the {len(parties)} parties that may consent")
        if SYSTEM in t.by:
            self.report(doc, loc, "a transition fired by 'system' cannot need approvals")

    def check_literal(self, doc: Document, loc: tuple, name: str, value: Any, spec: WorkflowSpec, config: ConfigSpec) -> None:
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

    def check_values(self, doc, loc, values, target: WorkflowSpec, config, allowed, extra: set[str] = frozenset()) -> None:
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
            target = workflows.get(action.start)
            if target is None:
                self.report(doc, loc + ("start",), f"unknown workflow '{action.start}'; workflows: {', '.join(sorted(workflows))}")
                return
            self.check_values(doc, loc + ("with",), action.with_, target, config, allowed)
            self.check_required(doc, loc + ("start",), target, set(action.with_))
        elif isinstance(action, NotifyAction):
            party_fields = {n for n, f in spec.fields.items() if f.type == "party"}
            for j, pattern in enumerate(action.notify):
                self.check_pattern(doc, loc + ("notify", j), pattern, config, party_fields)
            self.compile_value(doc, loc + ("message",), action.message, allowed)

    def check_required(self, doc, loc, target: WorkflowSpec, given: set[str]) -> None:
        """A workflow the engine starts (action, schedule, rule) must allow `system` and get its required fields."""
        if SYSTEM not in target.started_by:
            self.report(doc, loc, f"workflow '{target.id}' is started here by the engine, so its started_by must list 'system'")
        missing = [n for n, f in target.fields.items() if f.required and f.default is None and n not in given]
        if missing:
            self.report(doc, loc, f"workflow '{target.id}' needs the required field(s) {', '.join(missing)}")

    # ---- rules

    def check_schedule(self, doc, i, sched: ScheduleSpec, config, workflows) -> None:
        loc = ("schedules", i)
        target = workflows.get(sched.start)
        if target is None:
            self.report(doc, loc + ("start",), f"unknown workflow '{sched.start}'; workflows: {', '.join(sorted(workflows))}")
            return
        if sched.actor != SYSTEM:
            try:
                actors.parse_actor(sched.actor, config)
            except Exception as exc:  # CoopflowError: user text
                self.report(doc, loc + ("as",), str(exc))
        given = set(sched.with_)
        if sched.host:
            for j, party in enumerate(sched.host.rotate):
                if party not in config.parties:
                    self.report(doc, loc + ("host", "rotate", j), f"unknown party '{party}'; known: {', '.join(sorted(config.parties))}")
            hfield = target.fields.get(sched.host.field)
            if hfield is None or hfield.type != "party":
                self.report(doc, loc + ("host", "field"), f"workflow '{target.id}' has no party field '{sched.host.field}' to hold the host")
            given.add(sched.host.field)
        self.check_values(doc, loc + ("with",), sched.with_, target, config, {"occurrence": OCCURRENCE_ATTRS})
        self.check_required(doc, loc + ("start",), target, given)

    def check_event_rule(self, doc, i, rule, config, workflows) -> None:
        loc = ("events", i)
        allowed = {"event": EVENT_ATTRS}
        if rule.when:
            self.compile(doc, loc + ("when",), rule.when, allowed)
        if rule.start:
            target = workflows.get(rule.start.workflow)
            if target is None:
                self.report(doc, loc + ("start", "workflow"), f"unknown workflow '{rule.start.workflow}'; workflows: {', '.join(sorted(workflows))}")
                return
            self.check_values(doc, loc + ("start", "with"), rule.start.with_, target, config, allowed)
            self.check_required(doc, loc + ("start", "workflow"), target, set(rule.start.with_))
        else:
            target = workflows.get(rule.fire.workflow)
            if target is None:
                self.report(doc, loc + ("fire", "workflow"), f"unknown workflow '{rule.fire.workflow}'; workflows: {', '.join(sorted(workflows))}")
                return
            fires = [t for t in target.transitions if t.trigger == rule.fire.trigger]
            if not fires:
                self.report(doc, loc + ("fire", "trigger"), f"workflow '{target.id}' has no trigger '{rule.fire.trigger}'")
            elif not any(SYSTEM in t.by for t in fires):
                self.report(doc, loc + ("fire", "trigger"), f"trigger '{rule.fire.trigger}' of '{target.id}' does not list 'system' in 'by'")
            self.compile(doc, loc + ("fire", "instance"), rule.fire.instance.lstrip("=").strip(), allowed)


def _display(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


ERROR_TEXT: dict[str, Callable[[dict], str]] = {
    "extra_forbidden": lambda e: f"unknown key '{e['loc'][-1]}'",
    "missing": lambda e: f"missing required key '{e['loc'][-1]}'",
    "string_pattern_mismatch": lambda e: (
        f"{e['input']!r} is not a valid id: use lowercase letters, digits and _, starting with a letter"
        if "[a-z0-9_]*$" in e["ctx"]["pattern"]
        else f"{e['input']!r} does not match the pattern {e['ctx']['pattern']}"
    ),
}


def describe_error(error: dict) -> str:
    """One pydantic error as a short sentence for an administrator."""
    special = ERROR_TEXT.get(error["type"])
    if special:
        return special(error)
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    where = ".".join(str(p) for p in error["loc"] if not str(p).startswith(("function-", "literal[")))
    found = error.get("input")
    shown = "" if isinstance(found, (dict, list)) or error["type"] == "value_error" else f" (found {found!r})"
    return f"{where}: {message}{shown}" if where else f"{message}{shown}"
