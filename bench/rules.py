"""µs per decision of engine.rules on the shipped workflows, beside bare Python and bare `transitions`.

    .venv/bin/python bench/rules.py [--rounds 7] [--profile]

Measured in the same run, each as the median (min–max) of `--rounds` rounds of about 0.2 s:

* a bare Python function call with two arguments (the floor of any decision);
* bare `transitions` 0.9: `may_trigger` on a two-state machine whose one transition has one
  condition, and a trigger that moves the model there and back (two triggers, halved);
* the decision before this change (today's main: plain Python loops, `transitions` unused),
  loaded from git, on the same cases;
* `decision.decide` (the machine's conditions decide), on a mix of shipped cases: allowed,
  refused for role, guard, missing field, wrong state, a consent; then `get_triggers` for one
  actor on one state (every trigger leaving it decided), and `Rules.move` (the executor's replay);
  then each case alone, before and after.

Aim: ≤ 10 µs per decision. Nothing is written anywhere; the shipped policy is read in place.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, environment, median, profile  # noqa: E402
from transitions import Machine  # noqa: E402

from engine.policy.loader import load_policy  # noqa: E402
from engine.rules import decision  # noqa: E402
from engine.rules.actors import parse_actor  # noqa: E402
from engine.rules.machines import rules_for  # noqa: E402

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


def per_call(fn, rounds: int, batch: int = 2000) -> tuple[float, float, float]:
    """(median, min, max) µs per call of fn() over `rounds` rounds of ~0.2 s."""
    results = []
    for _ in range(rounds):
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < 0.2:
            for _ in range(batch):
                fn()
            n += batch
        results.append((time.perf_counter() - start) / n * 1e6)
    return median(results), min(results), max(results)


def old_decision():
    """engine/rules/decision.py as on main before this change, loaded from git."""
    source = subprocess.run(["git", "show", "ff76736:engine/rules/decision.py"], cwd=REPO, capture_output=True,
                            text=True, check=True).stdout
    spec = importlib.util.spec_from_loader("old_decision", loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_decision"] = module  # dataclasses look their module up
    exec(compile(source, "old_decision.py", "exec"), module.__dict__)
    return module


def bare_machine():
    class Model:
        state = "a"

    model = Model()
    machine = Machine(model=model, states=["a", "b"], initial="a", auto_transitions=False, send_event=True,
                      transitions=[{"trigger": "go", "source": "a", "dest": "b", "conditions": [lambda e: True]},
                                   {"trigger": "back", "source": "b", "dest": "a"}])
    return machine, model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    print(environment())
    policy = load_policy(REPO / "config.yaml")
    old = old_decision()

    def situations(module):
        out = []
        for wid, state, actor, fields, trigger, values in CASES:
            spec = policy.workflows[wid]
            stored = {**{n: f.default for n, f in spec.fields.items()}, **fields}
            extra = {"config": policy.config} if module is decision else {}
            s = module.Situation(spec, f"{wid}-00000000", state, stored, parse_actor(actor, policy.config), NOW,
                                 policy.expressions, {}, **extra)
            out.append((s, trigger, values))
        return out

    new_cases, old_cases = situations(decision), situations(old)
    for (s, trigger, values), (o, _, _) in zip(new_cases, old_cases, strict=False):  # the same answers before and after
        assert decision.decide(s, trigger, values).refusal == old.decide(o, trigger, values).refusal, (s.spec.id, trigger)

    def bare(a, b):
        return None

    machine, model = bare_machine()

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
    in_progress = decision.Situation(ie, "information_exchange-00000000", "in_progress",
                                     {**{n: f.default for n, f in ie.fields.items()}, **REQUEST},
                                     parse_actor("police.leader", policy.config), NOW, policy.expressions, {},
                                     config=policy.config)
    rules = rules_for(ie)
    answer = next(i for i, t in enumerate(ie.transitions) if t.trigger == "answer")
    rows = [
        ("bare Python function call", per_call(lambda: bare(1, 2), args.rounds), 1),
        ("bare transitions: may_trigger, one condition", per_call(lambda: model.may_trigger("go"), args.rounds), 1),
        ("bare transitions: one trigger (go + back, halved)", per_call(bare_trigger, args.rounds, 500), 2),
        (f"decision before (main, no transitions), {k} cases", per_call(each(old, old_cases), args.rounds, 200), k),
        (f"decision.decide (transitions conditions), {k} cases", per_call(each(decision, new_cases), args.rounds, 200), k),
        ("decision.get_triggers: in_progress, 5 triggers", per_call(lambda: decision.get_triggers(in_progress),
                                                                   args.rounds, 200), 1),
        ("Rules.move: the executor's replay of a choice", per_call(lambda: rules.move("in_progress", "answer", answer),
                                                                 args.rounds, 500), 1),
    ]
    print(f"{'what':55} {'µs per call':>24}")
    for name, (mid, lo, hi), divide in rows:
        print(f"{name:55} {mid / divide:8.2f} ({lo / divide:.2f}–{hi / divide:.2f})")
    print(f"{'per case':55} {'before':>10} {'decide':>10}")
    for (s, trigger, values), (o, _, _) in zip(new_cases, old_cases, strict=False):
        before = per_call(lambda o=o, t=trigger, v=values: old.decide(o, t, v), max(3, args.rounds // 2))[0]
        now = per_call(lambda s=s, t=trigger, v=values: decision.decide(s, t, v), max(3, args.rounds // 2))[0]
        code = decision.decide(s, trigger, values).code
        print(f"{s.spec.id + ' ' + str(s.state) + ' ' + trigger + ' (' + str(code or 'allowed') + ')':55} "
              f"{before:10.2f} {now:10.2f}")
    per_decision = rows[4][1][0] / k
    print(f"aim ≤ 10 µs per decision: {'met' if per_decision <= 10 else 'MISSED'} ({per_decision:.2f} µs)")
    if args.profile or per_decision > 10:
        _, report = profile(lambda: [each(decision, new_cases)() for _ in range(3000)], top=20)
        print(report)


if __name__ == "__main__":
    main()
