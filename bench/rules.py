"""µs per decision of engine.rules on the shipped workflows, before and after, beside bare Python and bare `transitions`.

    .venv/bin/python bench/rules.py [--rounds 7] [--before 514496f] [--profile]

Measured in the same run, each as the median (min–max) CPU µs per call (the process's CPU time, not
the wall clock, which on a shared machine counts the waits for a core too) over `--rounds` rounds
of about 0.2 s; the rules of `--before` (a commit; by default main before the last change to
engine/rules) and the rules of this tree are measured in turn within each round, so both see
the same load:

* a bare Python function call with two arguments (the floor of any decision);
* bare `transitions` 0.9: `may_trigger` on a two-state machine whose one transition has one
  condition; one `Condition.check` of that condition (what a decision pays per condition); and a
  trigger that moves the model there and back (two triggers, halved);
* `decision.decide` on a mix of shipped cases: allowed, refused for role, guard, missing field,
  wrong state, a consent; then `get_triggers` for one actor on one state (every trigger leaving it
  decided), `Rules.move` (the executor's replay) and `situation.context` (what the executor's
  actions see after a decision, every root built); then each case alone.

The engine/rules package of `--before` is read from git into a temporary directory and imported
under another name (`before_rules`); the policy is loaded once, by this tree, and given to both.
Before measuring, the script checks that both give the same refusal, code and candidates on every
case and on every trigger of every shipped state for every role.

Aim: ≤ 10 µs per decision. Nothing is written but the temporary copy; the shipped policy is read in place.
"""

from __future__ import annotations

import argparse
import importlib
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, environment, median, profile  # noqa: E402
from transitions import EventData, Machine  # noqa: E402

from engine.policy.loader import load_policy  # noqa: E402
from engine.rules import decision, machines  # noqa: E402
from engine.rules.actors import parse_actor  # noqa: E402

BEFORE = "514496f"  # main before the conditions were folded (two or three per transition) and the replay by the transition's state change
NOW = datetime.fromisoformat("2027-03-01T09:00:00+07:00")
REQUEST = {"requester": "dic", "recipient": "police", "subject": "Xin thông tin thuê bao"}
# (workflow, state, actor, stored fields, trigger, values sent): allowed and refused cases
CASES = [
    ("information_exchange", "drafted", "dic.focal_point", REQUEST, "send", {"dispatch_no": "125/STTTT"}),  # guard + require
    ("information_exchange", "sent", "police.focal_point", REQUEST, "acknowledge", {}),                  # allowed
    ("information_exchange", "sent", "dic.staff", REQUEST, "acknowledge", {}),                           # not_your_role
    ("information_exchange", "in_progress", "police.focal_point", REQUEST, "answer", {}),                # missing_field
    ("information_exchange", "sent", "police.focal_point", REQUEST, "answer", {"answer": "x"}),          # wrong_state
    ("information_exchange", "drafted", "dic.focal_point", {**REQUEST, "classification": "toi_mat"}, "send",
     {"dispatch_no": "1"}),                                                                               # guard_false
    ("emergency_review", "proposed", "dic.leader", {"issue": "Sự cố"}, "agree", {}),                     # a consent
    ("periodic_review", "scheduled", "police.focal_point", {"host": "police", "period": "2027H1"}, "request_reports", {}),
]


def load_rules(commit: str, into: Path):
    """engine/rules of `commit`, imported as the package `before_rules` (its own imports renamed)."""
    package = into / "before_rules"
    package.mkdir()
    names = subprocess.run(["git", "ls-tree", "--name-only", f"{commit}:engine/rules"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    for name in names:
        if name.endswith(".py"):
            source = subprocess.run(["git", "show", f"{commit}:engine/rules/{name}"], cwd=REPO, capture_output=True,
                                    text=True, check=True).stdout
            (package / name).write_text(re.sub(r"\bengine\.rules\b", "before_rules", source))
    sys.path.insert(0, str(into))
    return importlib.import_module("before_rules.decision"), importlib.import_module("before_rules.machines")


def measure(fns: dict[str, Callable[[], object]], rounds: int, batch: int) -> dict[str, tuple[float, float, float]]:
    """(median, min, max) CPU µs per call of each fn over `rounds` rounds of ~0.2 s each, taken in turn.

    CPU time of this process (`time.process_time`), not wall time: on the shared machine, the wall
    clock also counts the time spent waiting for a core."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            fn = fns[name]
            n, start, cpu = 0, time.perf_counter(), time.process_time()
            while time.perf_counter() - start < 0.2:
                for _ in range(batch):
                    fn()
                n += batch
            samples[name].append((time.process_time() - cpu) / n * 1e6)
    return {name: (median(s), min(s), max(s)) for name, s in samples.items()}


def bare_machine():
    class Model:
        state = "a"

    model = Model()
    machine = Machine(model=model, states=["a", "b"], initial="a", auto_transitions=False, send_event=True,
                      transitions=[{"trigger": "go", "source": "a", "dest": "b", "conditions": [lambda e: True]},
                                   {"trigger": "back", "source": "b", "dest": "a"}])
    return machine, model


def answers(d) -> tuple:
    """What a decision says, for comparing two implementations."""
    return d.refusal, d.code, [(c.index, c.reason, c.code, c.missing, c.awaiting) for c in d.candidates]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--before", default=BEFORE, help="the commit whose engine/rules is measured as 'before'")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    print(environment(), f"; before = {args.before}")
    policy = load_policy(REPO / "config.yaml")
    old, old_machines = load_rules(args.before, Path(tempfile.mkdtemp(prefix="bench-rules-")))

    def at(module, wid, state, actor, fields=None, consents=None):
        spec = policy.workflows[wid]
        stored = {**{n: f.default for n, f in spec.fields.items()}, **(fields or {})}
        return module.Situation(spec, f"{wid}-00000000", state, stored, parse_actor(actor, policy.config), NOW,
                                policy.expressions, {}, consents, policy.config)

    def cases(module):
        return [(at(module, wid, state, actor, fields), trigger, values) for wid, state, actor, fields, trigger, values in CASES]

    new_cases, old_cases = cases(decision), cases(old)
    for (s, trigger, values), (o, _, _) in zip(new_cases, old_cases, strict=True):  # the same answers before and after
        assert answers(decision.decide(s, trigger, values)) == answers(old.decide(o, trigger, values)), (s.spec.id, trigger)
    roles = ["system"] + [f"{p}.{r}" for p, party in policy.config.parties.items() for r in party.roles]
    compared = 0
    for wid, spec in policy.workflows.items():
        fields = {n: ("dic" if f.type == "party" else None) for n, f in spec.fields.items()}
        for state in spec.states:
            for actor in roles:
                new = decision.get_triggers(at(decision, wid, state, actor, fields, {}))
                before = old.get_triggers(at(old, wid, state, actor, fields, {}))
                assert {t: answers(d) for t, d in new.items()} == {t: answers(d) for t, d in before.items()}, (wid, state, actor)
                compared += len(new)
    print(f"same answers before and after: {len(CASES)} cases, {compared} triggers of every shipped state for {len(roles)} roles")

    def bare(a, b):
        return None

    machine, model = bare_machine()
    go = machine.events["go"].transitions["a"][0]
    condition, event_data = go.conditions[0], EventData(machine.get_state("a"), machine.events["go"], machine, model, (), {})

    def bare_trigger():
        model.go()
        model.back()

    def each(module, cases):
        def run():
            for s, trigger, values in cases:
                module.decide(s, trigger, values)
        return run

    k = len(CASES)
    ie = policy.workflows["information_exchange"]
    answer = next(i for i, t in enumerate(ie.transitions) if t.trigger == "answer")
    in_progress = {"before": at(old, "information_exchange", "in_progress", "police.leader", REQUEST),
                   "now": at(decision, "information_exchange", "in_progress", "police.leader", REQUEST)}
    send = {"before": old_cases[0][0], "now": new_cases[0][0]}
    send_values = new_cases[0][2]
    send_fields = {**send["now"].fields, **send_values}
    r = args.rounds
    bare_rows = measure({"bare Python function call": lambda: bare(1, 2),
                         "bare transitions: may_trigger, one condition": lambda: model.may_trigger("go"),
                         "bare transitions: Condition.check, one condition": lambda: condition.check(event_data)}, r, 2000)
    bare_rows.update({name: tuple(x / 2 for x in v) for name, v in measure(
        {"bare transitions: one trigger (go + back, halved)": bare_trigger}, r, 500).items()})
    rows = {
        f"decision.decide, per decision ({k} cases)": (
            measure({"before": each(old, old_cases), "now": each(decision, new_cases)}, r, 200), k),
        "decision.get_triggers: in_progress, 5 triggers": (
            measure({"before": lambda: old.get_triggers(in_progress["before"]),
                     "now": lambda: decision.get_triggers(in_progress["now"])}, r, 200), 1),
        "Rules.move: the executor's replay of a choice": (
            measure({"before": lambda: old_machines.rules_for(ie).move("in_progress", "answer", answer),
                     "now": lambda: machines.rules_for(ie).move("in_progress", "answer", answer)}, r, 500), 1),
        "situation.context: the actions' context of the allowed send": (
            measure({"before": lambda: old.context(send["before"], send_fields, send_values),
                     "now": lambda: decision.context(send["now"], send_fields, send_values)}, r, 1000), 1),
    }
    print(f"{'what':55} {'µs per call':>24}")
    for name, (mid, lo, hi) in bare_rows.items():
        print(f"{name:55} {mid:8.2f} ({lo:.2f}–{hi:.2f})")
    print(f"{'what':55} {'before (µs)':>24} {'now (µs)':>24}")
    for name, (found, divide) in rows.items():
        cells = [f"{found[w][0] / divide:8.2f} ({found[w][1] / divide:.2f}–{found[w][2] / divide:.2f})" for w in ("before", "now")]
        print(f"{name:55} {cells[0]:>24} {cells[1]:>24}")
    print(f"{'per case (median µs)':55} {'before':>10} {'now':>10}")
    for (s, trigger, values), (o, _, _) in zip(new_cases, old_cases, strict=True):
        found = measure({"before": lambda o=o, t=trigger, v=values: old.decide(o, t, v),
                         "now": lambda s=s, t=trigger, v=values: decision.decide(s, t, v)}, max(3, r // 2), 1000)
        code = decision.decide(s, trigger, values).code
        print(f"{s.spec.id + ' ' + str(s.state) + ' ' + trigger + ' (' + str(code or 'allowed') + ')':55} "
              f"{found['before'][0]:10.2f} {found['now'][0]:10.2f}")
    per_decision = rows[f"decision.decide, per decision ({k} cases)"][0]["now"][0] / k
    floor = bare_rows["bare Python function call"][0]
    print(f"aim ≤ 10 µs per decision: {'met' if per_decision <= 10 else 'MISSED'} ({per_decision:.2f} µs, "
          f"{per_decision / floor:.0f} bare calls)")
    if args.profile:
        _, report = profile(lambda: [each(decision, new_cases)() for _ in range(3000)], top=25)
        print(report)


if __name__ == "__main__":
    main()
