"""The service layer: what a deployment can be asked to do, whoever asks (CLI, HTTP API, tests).

`Deployment.open(config)` loads the policy and opens its store. Commands (`start`, `fire`,
`withdraw`) check the request at the door, queue it in the durable inbox and return a typed
`Result` once it is applied: by the running daemon when there is one, otherwise by this process
in the same transaction. Reads return plain data; rendering is the caller's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from engine import clock, logs
from engine.exceptions import UserError
from engine.execution import intake
from engine.execution.runtime import Runtime, open_runtime
from engine.policy.loader import Policy, load_policy
from engine.rules.actors import parse_actor
from engine.service_accounts import AccountCommands, BadLifetime
from engine.store import inbox, reads, worklist

__all__ = ["BadFilter", "BadLifetime", "Deployment", "NotFound", "Result"]


class NotFound(UserError):
    """An instance, workflow or record that does not exist (or that the caller may not know of)."""


class BadFilter(UserError):
    """A list filter naming no workflow or state of the policy (a typo, answered with the closest names)."""


@dataclass(frozen=True)
class Result:
    """What became of one request: applied, refused (with the reason) or still pending."""

    status: str
    text: str
    instance: str
    inbox_id: int
    new: bool = True
    warning: str | None = None  # something the person should know although the request went through
    code: str | None = None  # a refusal's stable code (engine.rules.reasons.Reason), from its history row

    @property
    def applied(self) -> bool:
        return self.status == inbox.APPLIED

    @property
    def pending(self) -> bool:
        return self.status == inbox.PENDING


class Deployment(AccountCommands):
    """One agreement's policy and store, and everything that can be done with them
    (the account and token commands are in engine/service_accounts.py)."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    @classmethod
    def open(cls, config_path: str | os.PathLike | None = None, policy: Policy | None = None,
             log_to_files: bool = True, create: bool = False) -> Deployment:
        """Load the policy (unless given) and open its store (`create`: make it when missing, as `init` does);
        events are logged to the file sinks."""
        policy = policy or load_policy(config_path)
        if log_to_files:
            logs.configure(policy.config.logging, policy.root, console=False)
        return cls(open_runtime(policy=policy, create=create))

    @property
    def policy(self) -> Policy:
        return self.runtime.policy

    def close(self) -> None:
        self.runtime.store.dispose()

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- commands

    def start(self, workflow: str, actor: str, values: dict[str, Any] | None = None, key: str | None = None,
              wait: float = 30.0, provenance: dict[str, Any] | None = None) -> Result:
        """Start an instance of `workflow` as `actor`; the id is in the result even when refused."""
        if workflow not in self.policy.workflows:
            raise NotFound(f"unknown workflow '{workflow}'; workflows: {', '.join(sorted(self.policy.workflows))}")
        intake.check_request(actor=actor)  # bad bytes are named as such before the actor is parsed
        parse_actor(actor, self.policy.config)
        daemon = self.runtime.daemon_running()
        sub = self.runtime.executor.submit_start(workflow, actor, values or {}, key, extra=provenance, apply=not daemon)
        return self._outcome(sub, wait, daemon)

    def fire(self, instance: str, trigger: str, actor: str, values: dict[str, Any] | None = None,
             key: str | None = None, wait: float = 30.0, provenance: dict[str, Any] | None = None) -> Result:
        """Fire `trigger` (or give the actor's party's consent, when it needs approvals).

        `provenance` (who asked: person, role, auth method, client) goes into the inbox row's
        payload, and from there into the history row's data."""
        return self._fire(instance, trigger, actor, values, key, wait, withdraw=False, provenance=provenance)

    consent = fire  # consenting is firing a transition that needs approvals

    def withdraw(self, instance: str, trigger: str, actor: str, key: str | None = None, wait: float = 30.0,
                 provenance: dict[str, Any] | None = None) -> Result:
        """Withdraw the actor's party's consent to `trigger`."""
        return self._fire(instance, trigger, actor, None, key, wait, withdraw=True, provenance=provenance)

    def _fire(self, instance, trigger, actor, values, key, wait, withdraw: bool, provenance=None) -> Result:
        intake.check_request(instance=instance, trigger=trigger, actor=actor)
        parse_actor(actor, self.policy.config)
        daemon = self.runtime.daemon_running()
        sub = self.runtime.executor.submit_fire(instance, trigger, actor, values or {}, key, withdraw=withdraw,
                                                extra=provenance, apply=not daemon)
        return self._outcome(sub, wait, daemon)

    def _outcome(self, sub: inbox.Submission, wait: float, daemon: str | None) -> Result:
        """Wait for the daemon to apply the event, or settle what it set off here; read its outcome."""
        if daemon:
            status, text = self.runtime.executor.wait(sub.inbox_id, timeout=wait)
        else:
            self.runtime.settle()  # after-commit actions, rules, and anything left pending
            with self.runtime.store.reading() as conn:
                status, text = inbox.status(conn, sub.inbox_id)
        if status == inbox.PENDING:
            text = f"pending: queued as inbox #{sub.inbox_id}; the daemon has not applied it within {wait:g} s"
        return Result(status, text or "", sub.instance, sub.inbox_id, sub.new, None if daemon else self._daemon_elsewhere(),
                      self._refusal_code(status, sub))

    def _daemon_elsewhere(self) -> str | None:
        """A warning when no daemon runs on this store but the daemon answering on config `http:` holds
        another one (`store:` edited under a running deployment): its events would never reach that daemon."""
        http = self.policy.config.http
        if not http.enabled or not http.port:
            return None
        host = "127.0.0.1" if http.host in ("0.0.0.0", "::", "") else http.host
        import httpx  # here, not at the top: a read never asks, and httpx loads rich and ssl

        try:
            theirs = httpx.get(f"http://{host}:{http.port}/readyz", timeout=0.5).json().get("store")
        except Exception:  # nothing answers (the usual case) or not a coopflow daemon
            return None
        audit = getattr(self.runtime.store, "audit", None)
        mine = audit.store_id if audit else None
        if not theirs or theirs == mine:
            return None
        return (f"the daemon answering on {host}:{http.port} runs on another store (id {theirs}) than this command "
                f"(store {self.runtime.store.url}, id {mine}, where no daemon runs): the event was applied here and "
                "that daemon will not see it; restart the daemon to switch stores, or correct `store:`")

    def _refusal_code(self, status: str, sub: inbox.Submission) -> str | None:
        """The code the executor recorded with a refusal (history data `code`); None otherwise."""
        if status != inbox.REFUSED:
            return None
        with self.runtime.store.reading() as conn:
            rows = reads.instance_history(conn, sub.instance)
        return next(((r["data"] or {}).get("code") for r in rows if r["inbox_id"] == sub.inbox_id), None)

    # ---- reads

    def instance(self, instance_id: str) -> dict[str, Any]:
        """One instance: state, fields, deadline, consents."""
        with self.runtime.store.reading() as conn:
            row = reads.instance(conn, instance_id)
        if row is None:
            raise NotFound(f"unknown instance '{instance_id}'")
        return row

    def awaiting_consent(self, row: dict[str, Any]) -> dict[str, list[str]]:
        """Trigger -> the parties whose consent the instance still needs (engine.rules.consent.awaiting)."""
        from engine.rules import consent

        spec = self.policy.workflows.get(row["workflow"])
        agreed = [(c["trigger"], c["party"]) for c in row.get("consents", [])]
        return consent.awaiting(spec, row["state"], row["fields"], self.policy.config, agreed) if spec else {}

    def state_title(self, workflow: str, state: str) -> str:
        """The state's title in the current policy (its id when unknown or untitled)."""
        spec = self.policy.workflows.get(workflow)
        st = spec.states.get(state) if spec else None
        return st.title if st and st.title else state

    def check_filters(self, workflow: str | None, state: str | None) -> None:
        """BadFilter when `workflow` or `state` names nothing in the policy, with the closest names."""
        import difflib

        def refuse(kind: str, name: str, known: list[str], of: str = "") -> None:
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else f"; {kind}s: {', '.join(known)}"
            raise BadFilter(f"unknown {kind} '{name}'{of}{hint}")

        workflows = self.policy.workflows
        if workflow and workflow not in workflows:
            refuse("workflow", workflow, sorted(workflows))
        if state:
            specs = [workflows[workflow]] if workflow else list(workflows.values())
            known = sorted({s for spec in specs for s in spec.states})
            if state not in known:
                refuse("state", state, known, f" in {workflow}" if workflow else "")

    def instances(self, workflow: str | None = None, state: str | None = None, limit: int | None = None,
                  offset: int = 0) -> list[dict[str, Any]]:
        """Instances (filtered), newest first; `limit` of them after `offset` when given."""
        self.check_filters(workflow, state)
        with self.runtime.store.reading() as conn:
            return reads.instance_list(conn, workflow, state, limit, offset)

    def instance_count(self, workflow: str | None = None, state: str | None = None) -> int:
        """How many instances `instances` gives without a limit."""
        with self.runtime.store.reading() as conn:
            return reads.instance_count(conn, workflow, state)

    def triggers(self, instance_id: str) -> list[str]:
        """The triggers leaving the instance's current state, in its workflow version (for completion)."""
        from engine.views.overview import Specs

        row = self.instance(instance_id)
        with self.runtime.store.reading() as conn:
            spec = Specs(conn, self.policy).get(row["workflow"], row.get("version"))
        return [t.trigger for t in spec.transitions if spec.leaves(t, row["state"])] if spec else []

    def history(self, instance_id: str) -> list[dict[str, Any]]:
        with self.runtime.store.reading() as conn:
            rows = reads.instance_history(conn, instance_id)
        if not rows:
            raise NotFound(f"no history for instance '{instance_id}'")
        return rows

    def overview(self, limit: int = 20, page: int = 1) -> dict[str, Any]:
        from engine.views import overview

        return overview.build_overview(self.runtime.store, self.policy, limit=limit, page=page)

    def upcoming(self, days: int, limit: int | None = None, offset: int = 0) -> list[dict[str, Any]]:
        from engine.views import overview

        return overview.build_upcoming(self.runtime.store, self.policy, days, limit=limit, offset=offset)

    def upcoming_page(self, days: int, limit: int | None = None, offset: int = 0,
                      visibility: reads.Visibility | None = None) -> dict[str, Any]:
        """`items` (one page of `upcoming`) and `total`, how many in all (of what `visibility` allows)."""
        from engine.views import overview

        return overview.upcoming_page(self.runtime.store, self.policy, days, limit=limit, offset=offset,
                                      visibility=visibility)

    def report(self, period) -> dict[str, Any]:
        """The figures of the review report for `period` (e.g. 2027H1, or a period already parsed by engine.views.report);
        a period not begun yet, or over before the agreement took effect, is refused (PeriodRefused)."""
        from engine.views import report

        chosen = report.of_policy(self.policy, period=period) if isinstance(period, str) else period
        return report.build(self.runtime.store, self.policy, chosen)

    # ---- reads for one reader (the HTTP API): what their parties may see, what they may do

    def visibility(self, principal) -> reads.Visibility:
        """Administrators see everything; others the instances their parties take part in."""
        # A workflow with steps that need the parties' consent (an emergency meeting) involves every
        # party whatever its party fields say: it is filtered like one without party fields.
        party_fields = {wid: () if any(t.approvals for t in spec.transitions)
                        else tuple(n for n, f in spec.fields.items() if f.type == "party")
                        for wid, spec in self.policy.workflows.items()}
        parties = None if principal.is_admin else frozenset(g.split(".", 1)[0] for g in principal.roles)
        return reads.Visibility(parties, party_fields)

    def visible_instance(self, principal, instance_id: str) -> dict[str, Any]:
        """One instance the principal may read (NotFound otherwise: refused reads look like unknown ones)."""
        row = self.instance(instance_id)
        if not self.visibility(principal).allows(row):
            raise NotFound(f"unknown instance '{instance_id}'")
        return row

    def instance_page(self, principal, workflow: str | None = None, state: str | None = None, limit: int = 50,
                      cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        self.check_filters(workflow, state)
        with self.runtime.store.reading() as conn:
            return reads.instance_page(conn, self.visibility(principal), workflow, state, limit, cursor)

    def visible_count(self, principal, workflow: str | None = None, state: str | None = None) -> int:
        """How many instances `instance_page` gives the principal over all its pages."""
        if principal.is_admin:
            return self.instance_count(workflow, state)
        visibility = self.visibility(principal)
        with self.runtime.store.reading() as conn:  # visibility reads the fields: counted as the pages filter them
            return sum(visibility.allows(row) for row in reads.instance_list(conn, workflow, state))

    def upcoming_for(self, principal, days: int, limit: int | None = None, offset: int = 0) -> dict[str, Any]:
        """`upcoming_page` as the principal may see it: deadlines and meetings of visible instances only,
        filtered in SQL before the page is cut (so `total` and the pages hold the same items)."""
        return self.upcoming_page(days, limit, offset, None if principal.is_admin else self.visibility(principal))

    def history_page(self, principal, instance_id: str, limit: int = 100, after: int | None = None) -> list[dict[str, Any]]:
        self.visible_instance(principal, instance_id)
        with self.runtime.store.reading() as conn:
            return reads.history_page(conn, instance_id, limit, after)

    def actions(self, row: dict[str, Any], actor: str, spec=None) -> list[dict[str, Any]]:
        """Each trigger leaving the instance's state, decided for `actor` (rules.decision.options);
        `spec`: the instance's workflow version when the caller has read it already."""
        from engine.rules import decision
        from engine.views.overview import Specs

        if spec is None:
            with self.runtime.store.reading() as conn:
                spec = Specs(conn, self.policy).get(row["workflow"], row.get("version"))
        if spec is None or row["state"] not in spec.states:
            return []
        situation = decision.Situation(spec, row["id"], row["state"], row["fields"] or {},
                                       parse_actor(actor, self.policy.config), clock.now().astimezone(self.policy.tz),
                                       self.policy.expressions, {})
        out = []
        for trigger, decided in decision.options(situation).items():
            # Open to the actor when a candidate may fire, or lacks only fields the event itself may send.
            chosen = decided.chosen or next((c for c in decided.candidates if _needs_only_its_fields(c)), None)
            first = chosen or (decided.candidates[0] if decided.candidates else None)
            t = first.transition if first else None
            out.append({"trigger": trigger, "title": t.title if t else None, "to": t.dest if t else None,
                        "allowed": chosen is not None, "reason": None if chosen else decided.refusal,
                        "needs_approval": bool(t and t.approvals),
                        "accepts": list(t.accepts) if t else [], "require": list(t.require) if t else []})
        return out

    def worklist(self, principal, owed: bool, limit: int, after: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the open instances the principal may see on which one of their roles is named
        for an owed step (`owed`; engine.rules.duties.named_steps) or none (not `owed`), soonest
        deadline first, read in SQL (engine.store.worklist); and the cursor to the next page."""
        from engine.rules import duties
        from engine.views.overview import Specs

        actors = [parse_actor(role, self.policy.config) for role in principal.roles]
        with self.runtime.store.reading() as conn:
            specs = Specs(conn, self.policy)
            named = [worklist.Duty(workflow, version, tuple(sorted(states)), field, (party,) if party else ())
                     for workflow, version in worklist.pinned_versions(conn)
                     if (spec := specs.get(workflow, version)) is not None
                     for (field, party), states in duties.named_steps(spec, actors).items()]
            return worklist.page(conn, self.visibility(principal), named, owed, limit, after)

    def tasks(self, principal) -> list[dict[str, Any]]:
        """What the principal owes now: of the worklist's owed instances, those where one of their
        roles may fire a trigger now (its condition met), soonest deadline first."""
        out: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            rows, after = self.worklist(principal, True, 500, after)
            for row in rows:
                for role in principal.roles:
                    can = [a["trigger"] for a in self.actions(row, f"{role}:{principal.person}") if a["allowed"]]
                    if can:
                        out.append({"instance": row["id"], "workflow": row["workflow"], "state": row["state"],
                                    "role": role, "triggers": can,
                                    "due_at": row["deadline"]["due_at"] if row["deadline"] else None})
            if after is None:
                return out

    def audit(self, extra_anchors: tuple[str, ...] = ()):
        """`coopflow audit verify`: the chain, the anchors (also those files) and the replay (engine.store.audit.Report)."""
        from engine.store import audit

        return audit.verify(self.runtime.store, extra_anchors)

    # ---- the administrator's local commands

    def queued(self, statuses: tuple[str, ...], instance: str | None = None, workflow: str | None = None,
               limit: int = 50) -> list[dict[str, Any]]:
        """Inbox rows in these statuses, newest first (`coopflow inbox`)."""
        with self.runtime.store.reading() as conn:
            return inbox.rows(conn, statuses, instance=instance, workflow=workflow, limit=limit)

    def cancel_queued(self, inbox_id: int, by: str) -> dict[str, Any]:
        """Cancel a pending inbox row: it is never applied; history records `by` (`coopflow inbox cancel`)."""
        with self.runtime.store.transaction() as conn:
            return inbox.cancel(conn, inbox_id, by)


def _needs_only_its_fields(candidate) -> bool:
    """A candidate refused only because required fields it accepts were not sent (no values in a preview)."""
    from engine.rules.reasons import Reason

    return candidate.code == Reason.MISSING_FIELD and all(n in candidate.transition.accepts for n in candidate.missing)
