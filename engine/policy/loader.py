"""Load a policy (config.yaml, workflows/, rules/), validate it whole, and give it a content hash.

`load_policy` reports every mistake it finds at once, each at `file:line:col`, by raising
PolicyError. A Policy is immutable: a reload builds a new one. Reading and validating each file
is here; the checks that span files are engine.policy.checks, pydantic's errors become sentences
in engine.policy.validation_errors, workflow versions are engine.policy.versions.
"""

from __future__ import annotations

import hashlib
import os
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ValidationError

from engine import settings
from engine.exceptions import PolicyError, PolicyProblem
from engine.notify import checks as notify_checks
from engine.policy import expr
from engine.policy.cache import CachedSpec, CheckCache, LazyDocument
from engine.policy.checks.config import ConfigChecks
from engine.policy.checks.rules import RuleChecks
from engine.policy.checks.workflows import WorkflowChecks
from engine.policy.spec import ConfigSpec, RulesFile, ScheduleSpec, WorkflowSpec
from engine.policy.validation_errors import describe_errors, describe_value
from engine.policy.versions import workflow_version
from engine.policy.yamlsource import Document, DocumentLike, load_document
from engine.rules.fields import typed_defaults
from engine.rules.workcalendar import WorkCalendar

DEFAULT_CONFIG = "config.yaml"


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
    warnings: tuple[PolicyProblem, ...] = ()  # at file:line:col, not errors: `coopflow check` shows them

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

    @property
    def report_templates(self) -> Path | None:
        """The review report's templates folder, or None for a policy without one (the default
        folder missing and `paths.report_templates` not given: md and docx reports still work)."""
        folder = self.folder("report_templates")
        return folder if folder.is_dir() or "report_templates" in self.config.paths.model_fields_set else None


def resolve_config_path(given: str | os.PathLike | None) -> Path:
    """CLI flag > COOPFLOW_CONFIG > ./config.yaml."""
    return Path(given or settings.config_path() or DEFAULT_CONFIG)


# --------------------------------------------------------------------------- loading


def load_policy(config_path: str | os.PathLike | None = None, cache: bool = False) -> Policy:
    """Load and validate everything; raise PolicyError listing every problem found.

    `cache` (for `coopflow check`): reuse workflow files validated before (engine.policy.cache);
    the Policy's `expressions` then lack those files' expressions (compiled on first use)."""
    path = resolve_config_path(config_path)
    return _Loader(path, CheckCache.for_policy(path) if cache else None).run()


class _Loader(ConfigChecks, WorkflowChecks, RuleChecks):
    """Reads and validates each file, then runs the checks that span files; one instance per load."""

    def __init__(self, config_path: Path, cache: CheckCache | None = None):
        super().__init__()
        self.config_path = config_path
        self.cache = cache
        self.cached: dict[str, CachedSpec] = {}  # display name -> spec found in the cache
        self.hasher = hashlib.sha256()
        self.unread: list[Path] = []

    def read(self, path: Path, display: str, name: str, cached: bool = False) -> Document | LazyDocument | None:
        """`name` is the file's path relative to the policy folder, which the digest hashes: it does
        not depend on the working directory or on how the config path was given."""
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
            self.report(doc, (), f"expected a mapping of keys at the top of the file, found {describe_value(doc.data)}")
            return None
        try:
            return model.model_validate(doc.data)
        except ValidationError as exc:
            for loc, message in describe_errors(exc.errors(include_url=False), doc.data, model):
                self.report(doc, loc, message)
            return None

    # ---- the run

    def run(self) -> Policy:
        display_root = self.config_path.parent
        if not self.config_path.is_file():
            raise PolicyError([PolicyProblem(str(self.config_path), 1, 1, "config file not found")])
        config_doc = self.read(self.config_path, str(self.config_path), self.config_path.name)
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
                if calendar is not None:
                    self.check_dates(doc, i, sched, calendar)
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
            warnings=tuple(sorted(self.warnings)),
        )

    def folder_docs(self, folder: Path, config_doc: DocumentLike, loc: tuple, cached: bool = False) -> Iterator[DocumentLike]:
        if not folder.is_dir():
            self.report(config_doc, loc, f"folder '{folder}' does not exist")
            return
        # The folder is resolved once, not each of its files (a 1,000-file policy asks 1,000 times).
        shown = _display(folder)
        hashed = Path(os.path.relpath(folder, self.config_path.parent)).as_posix()
        with os.scandir(folder) as entries:
            names = sorted(e.name for e in entries if os.path.splitext(e.name)[1] in (".yaml", ".yml") and e.is_file())
        for file in names:
            path = folder / file
            doc = self.read(path, _inside(shown, file), _inside(hashed, file), cached)
            if doc is not None:
                yield doc
            else:
                self.unloaded.add(path.stem)
                self.unread.append(path)


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


def _inside(folder: str, file: str) -> str:
    """`file` in `folder` as written by `_display` or relpath (".": the folder itself)."""
    return file if folder == "." else f"{folder}/{file}"


def _cwd() -> Path:
    """The resolved working directory, once per directory."""
    here = os.getcwd()
    if _CWD[0] != here:
        _CWD[:] = [here, Path(here).resolve()]
    return _CWD[1]


_CWD: list = [None, None]
