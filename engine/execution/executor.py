"""The executor: applies inbox events in batches, each batch in one database transaction.

For each event of a batch: take the instance as the batch sees it (engine.store.batch: stored,
or as an earlier event of the same batch left it), check the trigger, the actor's role, the
guard and the fields, record a consent or move the state, and gather the history, timer,
outbox and inbox rows it writes. An accepted event's rows join the batch, a refused one's are
dropped and replaced by its inbox outcome and a history row saying why. The batch then writes
each table once and commits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from loguru import logger

from engine import clock
from engine.exceptions import ExpressionError, UserError
from engine.execution import intake
from engine.execution.outcomes import Outcome, Refusal, provenance, refuse
from engine.logs import event_logger
from engine.policy.expr import Expression, parse
from engine.policy.loader import Policy
from engine.policy.spec import EmitAction, NotifyAction, SetAction, StartAction, WorkflowSpec, is_expression
from engine.policy.versions import workflow_version
from engine.rules import actors, consent, decision
from engine.rules.fields import coerce_all, defaults
from engine.rules.machines import MachineCache
from engine.rules.reasons import Reason
from engine.scheduling import timers
from engine.store import Tx, audit, consents, inbox, reads
from engine.store.batch import Batch, EventWrites, store_failure
from engine.store.database import SqlStore

CHUNK = 100  # pending events read at once when a submitter applies everything up to its own event


class _Rejected(Exception):
    """The store rejected a whole batch's writes (not the store failing): apply it again carefully."""


@dataclass
class _Change:
    """Everything an accepted event writes, gathered before any write happens."""

    kind: str
    to_state: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    actions: list[tuple[str, dict]] = field(default_factory=list)
    text: str = ""
    data: dict[str, Any] = field(default_factory=dict)


class Executor:
    """Applies inbox events against the store under the current policy."""

    def __init__(self, store: SqlStore, policy: Policy):
        self.store = store
        self.policy = policy
        self.machines = MachineCache()
        self._specs: dict[str, WorkflowSpec] = {}
        self._versions: dict[int, tuple[WorkflowSpec, str, dict]] = {}  # id(spec) -> (spec, version, stored form)
        self._stored_versions: set[str] = set()  # versions this store is known to hold (committed)
        self._consent_triggers: dict[str, frozenset[str]] = {}  # version -> triggers that record consents
        self._expressions: dict[str, Expression] = {}
        self._actors: dict[str, actors.Actor] = {}  # actor text -> parsed, checked against `_actors_of`
        self._actors_of: object = None
        self.listeners: list[Callable[[Outcome], None]] = []

    # ---- submitting

    def submit_start(self, workflow: str, actor: str, values: dict | None = None, key: str | None = None,
                     extra: dict | None = None, apply: bool = False) -> inbox.Submission:
        """Queue the start of a new instance; its id is known at once.

        With `apply`, the same transaction also applies it (after any older pending event):
        one commit instead of two, for a caller that is itself the executor (no daemon running).
        """
        return self._submit(apply, inbox.START, instance=inbox.new_instance_id(workflow), workflow=workflow,
                            actor=actor, values=values, key=key, extra=extra)

    def submit_fire(self, instance: str, trigger: str, actor: str, values: dict | None = None, key: str | None = None,
                    withdraw: bool = False, extra: dict | None = None, apply: bool = False) -> inbox.Submission:
        """Queue a trigger (or the withdrawal of a consent) for an instance; `apply` as for submit_start."""
        return self._submit(apply, inbox.WITHDRAW if withdraw else inbox.FIRE, instance=instance,
                            trigger=trigger, actor=actor, values=values, key=key, extra=extra)

    def _submit(self, apply: bool, kind: str, key: str | None = None, **fields) -> inbox.Submission:
        """Check the request at the door (IntakeError: nothing queued), then queue it under the
        operator's key in its own namespace (KeyReused when that key holds a different request)."""
        intake.check_request(instance=fields["instance"], workflow=fields.get("workflow"), trigger=fields.get("trigger"),
                             actor=fields["actor"], values=fields.get("values"), key=key)
        if key is not None:
            key = intake.user_key(key)
        submitted: list[inbox.Submission] = []

        def submit(conn: Tx) -> int | None:
            submitted[:] = [inbox.submit(conn, kind, key=key, same_request=key is not None, **fields)]
            return submitted[0].inbox_id if apply and submitted[0].new else None

        self._tell(self._transaction(None, submit))
        return submitted[0]

    def _tell(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            for listener in self.listeners:
                listener(outcome)

    # ---- applying

    def drain(self, limit: int | None = None, batch: int = 1) -> int:
        """Apply pending events in order until none is left (or `limit`); returns how many."""
        done = 0
        while limit is None or done < limit:
            applied = len(self.apply_batch(batch if limit is None else min(batch, limit - done)))
            if not applied:
                break
            done += applied
        return done

    def apply_next(self) -> Outcome | None:
        """Apply the oldest pending event in its own transaction; None when the inbox is empty."""
        outcomes = self.apply_batch(1)
        return outcomes[0] if outcomes else None

    def apply_batch(self, limit: int = 100) -> list[Outcome]:
        """Apply up to `limit` pending events, in order, in ONE transaction (group commit).

        Each event stays all-or-nothing: its writes join the batch only when it is applied. A
        crash before the commit undoes the whole batch and loses nothing: its events are all
        still pending. An unexpected error while applying one event refuses that event as an
        internal error (recorded and logged) instead of blocking the inbox; store errors propagate.
        """
        outcomes = self._transaction(limit)
        self._tell(outcomes)
        return outcomes

    def _transaction(self, limit: int | None, submit: Callable[[Tx], int | None] | None = None) -> list[Outcome]:
        """One transaction: `submit` (which returns the inbox id to apply up to, or None to apply
        nothing), else up to `limit` pending events. Batch writes the store rejects (text it
        refuses: a bug, data from an older coopflow) make the same transaction run again with
        each event written in its own savepoint, so that only the offending event is refused."""
        for careful in (False, True):
            try:
                with self.store.transaction() as conn:
                    upto = submit(conn) if submit is not None else None
                    if submit is not None and upto is None:
                        return []
                    batch = Batch(conn, careful)
                    outcomes = self._apply_pending(batch, limit, upto)
                    try:
                        batch.flush()
                    except Exception as exc:
                        if store_failure(exc):
                            raise
                        raise _Rejected(f"{type(exc).__name__}: {exc}") from exc
            except _Rejected as exc:
                logger.warning("the store rejected the writes of a batch ({}); applying its events one at a time", exc)
                continue
            self._stored_versions |= batch.versions
            return outcomes
        raise AssertionError("a careful batch writes at each event")  # pragma: no cover

    def _apply_pending(self, batch: Batch, limit: int | None, upto: int | None) -> list[Outcome]:
        """Apply pending events in id order: up to `limit`, or every one up to inbox id `upto`."""
        outcomes: list[Outcome] = []
        after = 0
        more = True
        while more and (limit is None or len(outcomes) < limit):
            asked = CHUNK if limit is None else limit - len(outcomes)
            rows, more = inbox.next_pending_batch(batch.conn, asked, upto, after)
            if not rows:
                break
            batch.load(r["instance"] for r in rows)
            outcomes.extend(self._apply_guarded(batch, row) for row in rows)
            after = rows[-1]["id"]
            more = more and after != upto
        return outcomes

    def wait(self, inbox_id: int, timeout: float = 30.0, poll: float = 0.05) -> tuple[str, str | None]:
        """Wait for another process (the daemon) to apply an event; returns (status, outcome)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.store.reading() as conn:
                status, text = inbox.status(conn, inbox_id)
            if status != inbox.PENDING or time.monotonic() > deadline:
                return status, text
            time.sleep(poll)

    def _apply_guarded(self, batch: Batch, row) -> Outcome:
        """Apply one event: a refusal or an internal error keeps nothing of what it wrote.

        Its rows join the batch only when it is applied; consents (written at once) are written
        inside a savepoint of the event's own. An event that fails for any reason but the
        store's (a bug, text a store rejects) is refused and dead-lettered, never left to block
        the inbox; a store error propagates and the event stays pending, to be retried.
        """
        now = clock.now()
        conn = batch.conn
        instance_row = batch.view.get(row["instance"])
        savepoint = None
        try:
            if self._writes_consents(conn, row, instance_row):
                savepoint = conn.begin_nested()
            writes = EventWrites()
            outcome = self._apply(conn, writes, row, instance_row, now)
            batch.accept(writes)
        except (Refusal, UserError) as exc:  # never InfrastructureError: a store fault is retried, not refused
            if savepoint is not None:
                savepoint.rollback()
            return refuse(batch, row, instance_row, str(exc), now, getattr(exc, "code", Reason.REFUSED))
        except Exception as exc:  # a bug or data a store rejects, not the store being down: refuse it, keep the inbox moving
            if savepoint is not None:
                savepoint.rollback()
            if store_failure(exc):
                raise
            logger.opt(exception=exc).error("internal error applying inbox #{}", row["id"])
            return refuse(batch, row, instance_row, f"internal error: {type(exc).__name__}: {exc}", now, Reason.INTERNAL_ERROR)
        if savepoint is not None:
            savepoint.commit()
        return outcome

    def _writes_consents(self, conn, row, instance_row) -> bool:
        """Whether the event may write consents (which are written at once, not batched)."""
        if row["kind"] == inbox.WITHDRAW:
            return True
        if row["kind"] != inbox.FIRE or instance_row is None:
            return False
        version = instance_row["version"]
        if version not in self._consent_triggers:
            spec = self._spec(conn, version)
            self._consent_triggers[version] = frozenset(t.trigger for t in spec.transitions if t.approvals)
        return row["trigger"] in self._consent_triggers[version]

    def _apply(self, conn: Tx, writes: EventWrites, row, instance_row, now: datetime) -> Outcome:
        """Decide (raising Refusal) and then gather everything the event changes."""
        actor = self._actor(row["actor"])
        if row["kind"] == inbox.START:
            spec, version, current = self._start_target(writes, row, instance_row)
        else:
            spec, version, current = self._existing(conn, row, instance_row)
        change = self._decide(conn, row, actor, spec, current, now)
        return self._commit(conn, writes, row, actor, spec, version, current, change, now)

    def _start_target(self, writes: EventWrites, row, instance_row):
        if instance_row is not None:
            raise Refusal(f"instance '{row['instance']}' already exists")
        spec = self.policy.workflows.get(row["workflow"])
        if spec is None:
            raise Refusal(f"unknown workflow '{row['workflow']}'; workflows: {', '.join(sorted(self.policy.workflows))}")
        version = self._remember_version(writes, spec)
        current = {"id": row["instance"], "state": None, "fields": defaults(spec.fields), "seq": 0}
        return spec, version, current

    def _existing(self, conn, row, instance_row):
        if instance_row is None:
            raise Refusal(f"unknown instance '{row['instance']}'")
        spec = self._spec(conn, instance_row["version"])
        return spec, instance_row["version"], dict(instance_row)

    def _decide(self, conn, row, actor, spec: WorkflowSpec, current: dict, now: datetime) -> _Change:
        """Choose the transition (engine.rules.decision, on the instance as stored), then do its bookkeeping."""
        given = row["payload"].get("set", {})
        try:
            values = coerce_all(given, spec.fields, self.policy.config)
        except ValueError as exc:
            raise Refusal(str(exc), Reason.INVALID_VALUE) from None
        situation = self._situation(current, spec, actor, now)
        if row["kind"] == inbox.START:
            decided = decision.decide_start(situation, values)
            if decided.refusal:
                raise Refusal(decided.refusal, decided.code or Reason.REFUSED)  # a refusal has its code
            return _Change("start", to_state=spec.initial, fields=decided.fields, text=f"started in {spec.initial}", data={"set": values})
        decided = decision.decide(situation, row["trigger"], values)
        chosen = decided.chosen
        if chosen is None:  # every candidate refused (each with its reason and code)
            raise Refusal(decided.refusal or f"trigger '{row['trigger']}' may not fire", decided.code or Reason.REFUSED)
        t, fields = chosen.transition, decided.fields
        if row["kind"] == inbox.WITHDRAW:
            return self._withdraw(conn, row, actor, t)
        if t.approvals:
            pending = self._consent(conn, row, actor, t, spec, fields, now)
            if pending is not None:
                return pending
        return self._transition(chosen.index, t, spec, fields, values, decision.context(situation, fields, values))

    def _transition(self, i, t, spec, fields, values, context) -> _Change:
        actions: list[tuple[str, dict]] = []
        for action in t.then:
            if isinstance(action, SetAction):
                evaluated = self._values(action.set, context)
                try:
                    fields.update(coerce_all(evaluated, spec.fields, self.policy.config))
                except ValueError as exc:  # a refusal, not an exception that would block the inbox
                    raise Refusal(f"'{t.trigger}' could not set its fields: {exc}") from None
                context["fields"] = fields
            elif isinstance(action, EmitAction):
                actions.append(("emit", {"name": action.emit, "data": self._values(action.data, context)}))
            elif isinstance(action, StartAction):
                actions.append(("start", {"workflow": action.start, "values": self._values(action.with_, context)}))
            elif isinstance(action, NotifyAction):
                people = [r for p in action.notify for r in actors.recipients(p, self.policy.config, fields)]
                message = self._values({"m": action.message}, context)["m"]
                actions.append(("notify", {"recipients": people, "message": message}))
        return _Change("fire", to_state=t.dest, fields=fields, actions=actions,
                       data={"set": values, "transition": i}, text="")

    def _consent(self, conn, row, actor, t, spec, fields, now) -> _Change | None:
        """Record the actor's party's consent; None when the quorum is now met."""
        approvals = t.approvals
        try:
            parties, quorum = consent.needed(approvals, fields, self.policy.config)
        except ValueError as exc:
            raise Refusal(f"'{t.trigger}': {exc}") from None
        if actor.party not in parties:
            raise Refusal(f"party '{actor.party}' is not among those whose consent '{t.trigger}' needs ({', '.join(parties)})")
        instance = row["instance"]
        existing = consents.parties(conn, instance, t.trigger, now)
        expires = timers.duration_end(approvals.expires, now, self.policy.calendar) if approvals.expires else None
        if actor.party not in existing:
            consents.record(conn, instance, t.trigger, actor.party, str(actor), now, expires)
        agreed = sorted(set(existing) | {actor.party})
        agreed = [p for p in agreed if p in parties]
        if len(agreed) >= quorum:
            consents.clear(conn, instance, t.trigger)
            return None
        waiting = [p for p in parties if p not in agreed]
        again = " (already counted)" if actor.party in existing else ""
        return _Change("consent", text=f"consent recorded for {actor.party}{again}: {len(agreed)} of {quorum}, waiting for {', '.join(waiting)}",
                       data={"consents": agreed, "quorum": quorum, "expires_at": expires.isoformat() if expires else None})

    def _withdraw(self, conn, row, actor, t) -> _Change:
        if not t.approvals:
            raise Refusal(f"'{t.trigger}' needs no consent, so there is none to withdraw")
        if not consents.withdraw(conn, row["instance"], t.trigger, actor.party):
            raise Refusal(f"party '{actor.party}' has no consent to '{t.trigger}' to withdraw")
        return _Change("withdraw", text=f"consent of {actor.party} to '{t.trigger}' withdrawn")

    # ---- writing

    def _commit(self, conn, writes: EventWrites, row, actor, spec, version, current, change: _Change, now) -> Outcome:
        instance_id, trigger, who, origin = row["instance"], row["trigger"], str(actor), provenance(row)
        from_state = current["state"]
        outcome = Outcome(inbox.APPLIED, "", instance_id, kind=change.kind, workflow=spec.id, trigger=trigger,
                          actor=who, from_state=from_state, provenance=origin, fields=change.fields or current["fields"])
        if change.to_state is not None:
            to_state = change.to_state if change.kind == "start" else self.machines.move(
                version, spec, from_state, trigger, change.data["transition"])
            seq = outcome_seq = current["seq"] + 1
            values = {"state": to_state, "fields": change.fields, "seq": seq, "updated_at": now, "state_entered_at": now,
                      "final": int(spec.states[to_state].final)}
            if change.kind == "start":
                writes.start({"id": instance_id, "workflow": spec.id, "version": version, "created_at": now, **values})
            else:
                writes.move(instance_id, values)
                writes.disarm(instance_id)
            deadline = spec.states[to_state].deadline
            nominal = timers.armed_from(row["payload"], now) if deadline or change.actions else now
            if deadline:
                timer = timers.Timer(f"{instance_id}:{seq}", instance_id, spec.id, to_state, deadline.fire,
                                     timers.deadline_due(deadline, nominal, change.fields, self.policy.calendar))
                writes.arm(timers.row(timer))
                writes.remind(timers.reminder_rows(timer, timers.reminder_times(deadline, now, timer.due_at, self.policy)))
                outcome.armed.append(timer)
            for kind, payload in change.actions:
                writes.outbox({"instance": instance_id, "kind": kind, "payload": {**payload, "source": {
                    "workflow": spec.id, "instance": instance_id, "state": to_state, "from": from_state,
                    "trigger": trigger, "actor": who, "fields": change.fields, "nominal_at": nominal.isoformat()}},
                    "status": "pending", "attempts": 0, "next_at": now, "created_at": now})
            outcome.text = change.text or f"{from_state} -> {to_state}"
        else:
            to_state = from_state
            outcome.text = change.text
        outcome.to_state = to_state
        timer_id = row["payload"].get("timer")
        if timer_id:
            writes.fired(timer_id)
        approvals = change.kind in ("consent", "withdraw") or (
            change.kind == "fire" and spec.transitions[change.data["transition"]].approvals is not None)
        data = {**change.data, **origin, "audit": audit.state_record(
            conn, instance_id, trigger, change.kind, outcome_seq if change.to_state is not None else None,
            change.fields, version, outcome.armed, approvals)}
        writes.history(instance=instance_id, inbox_id=row["id"], at=now, kind=change.kind, workflow=spec.id,
                       trigger=trigger, from_state=from_state, to_state=to_state, actor=who,
                       outcome=inbox.APPLIED, reason=change.text or None, data=data)
        writes.mark(row["id"], inbox.APPLIED, f"applied: {outcome.text}", now)
        event_logger(instance=instance_id, workflow=spec.id, trigger=trigger, actor=who, outcome=inbox.APPLIED,
                     **{"from": from_state, "to": to_state}).info("applied {}: {}", row["kind"], outcome.text)
        return outcome

    # ---- helpers

    def _situation(self, current, spec, actor, now) -> decision.Situation:
        return decision.Situation(spec, current["id"], current["state"], current["fields"], actor,
                                  now.astimezone(self.policy.tz), self.policy.expressions, self._expressions,
                                  config=self.policy.config)

    def _actor(self, text: str) -> actors.Actor:
        """An event's actor, parsed and checked against config.yaml once per text (a bad one raises each time)."""
        config = self.policy.config
        if self._actors_of is not config:  # a reloaded policy: check them again
            self._actors, self._actors_of = {}, config
        found = self._actors.get(text)
        if found is None:
            found = self._actors[text] = actors.parse_actor(text, config)
        return found

    def _evaluate(self, source: str, context: dict, what: str) -> Any:
        compiled = self.policy.expressions.get(source) or self._expressions.get(source)
        try:
            if compiled is None:  # from a pinned older version of a workflow: compile once
                compiled = self._expressions[source] = parse(source, {k: None for k in context})
            return compiled.evaluate(context)
        except ExpressionError as exc:
            raise Refusal(f"{what} {source!r} could not be evaluated: {exc}") from None

    def _values(self, values: dict[str, Any], context: dict) -> dict[str, Any]:
        return {k: self._evaluate(v[1:].strip(), context, "value") if is_expression(v) else v for k, v in values.items()}

    def _remember_version(self, writes: EventWrites, spec: WorkflowSpec) -> str:
        """The version a new instance is pinned to, hashed once per spec; stored with the start
        (in the same transaction) unless this store is known to hold it already."""
        known = self._versions.get(id(spec))
        if known is None or known[0] is not spec:
            stored = spec.to_stored()
            known = self._versions[id(spec)] = (spec, workflow_version(spec), stored)
        version = known[1]
        if version not in self._stored_versions:  # another executor may pin it meanwhile: insert-or-ignore
            writes.version(version, spec.id, known[2], clock.now())
        self._specs.setdefault(version, spec)
        return version

    def _spec(self, conn, version: str) -> WorkflowSpec:
        spec = self._specs.get(version)
        if spec is None:
            stored = reads.stored_spec(conn, version)
            if stored is None:
                raise LookupError(f"workflow version {version} is not in the store")
            spec = self._specs[version] = WorkflowSpec.from_stored(stored)
        return spec
