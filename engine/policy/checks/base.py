"""What every check shares: the problems found so far, expressions compiled once per scope,
references to other workflows, role patterns and the values given to a workflow's fields."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from engine.exceptions import ExpressionError, PolicyProblem
from engine.policy import expr
from engine.policy.cache import CachedSpec
from engine.policy.spec import SYSTEM, ConfigSpec, WorkflowSpec, is_expression
from engine.policy.yamlsource import DocumentLike
from engine.rules import actors
from engine.rules.fields import coerce


class Checker:
    """Collects problems (and warnings) while a policy loads; one instance per load."""

    def __init__(self) -> None:
        self.problems: list[PolicyProblem] = []
        self.warnings: list[PolicyProblem] = []  # not errors: the policy loads, `coopflow check` shows them
        self.expressions: dict[str, expr.Expression] = {}
        self.compiled: dict[tuple, expr.Expression | ExpressionError] = {}
        self.emitted: set[str] | None = None  # events some workflow emits, gathered once
        # Ids of workflows whose file could not be loaded or validated (their own problems are
        # reported already): references to them are not reported again as unknown workflows.
        self.unloaded: set[str] = set()
        # Events named by `emit` in workflow files that did not validate, and whether some workflow
        # file could not be read at all (then it may emit anything).
        self.broken_emits: set[str] = set()
        self.workflows_unread = False

    def report(self, doc: DocumentLike, loc: tuple, message: str) -> None:
        self.problems.append(doc.problem(loc, message))

    def warn(self, doc: DocumentLike, loc: tuple, message: str) -> None:
        self.warnings.append(doc.problem(loc, message))

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

    def find_workflow(self, doc: DocumentLike, loc: tuple, wid: str,
                      workflows: Mapping[str, WorkflowSpec | CachedSpec]) -> WorkflowSpec | CachedSpec | None:
        """The workflow `wid`, or None after reporting it unknown (unless its own file is broken)."""
        target = workflows.get(wid)
        if target is None and wid not in self.unloaded:
            self.report(doc, loc, f"unknown workflow '{wid}'; workflows: {', '.join(sorted(workflows)) or 'none'}")
        return target

    def check_pattern(self, doc: DocumentLike, loc: tuple, pattern: str, config: ConfigSpec, party_fields: set[str]) -> None:
        problem = actors.pattern_problem(pattern, config, party_fields)
        if problem:
            self.report(doc, loc, problem)

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

    def check_required(self, doc, loc, target: WorkflowSpec | CachedSpec, given: set[str], actor: str = SYSTEM) -> None:
        """A workflow the engine starts (action, schedule, rule) must allow its actor and get its required fields."""
        if actor == SYSTEM and SYSTEM not in target.started_by:
            self.report(doc, loc, f"workflow '{target.id}' is started here by the engine, so its started_by must list 'system'")
        missing = [n for n, f in target.fields.items() if f.required and f.default is None and n not in given]
        if missing:
            self.report(doc, loc, f"workflow '{target.id}' needs the required field(s) {', '.join(missing)}")
