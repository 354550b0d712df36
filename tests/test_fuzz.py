"""A seeded fuzzer: mutated policies through `coopflow check`, mutated events files through `simulate --events`.

Every case must end as a user would want: exit 0, 1 or 2, no traceback, no "internal error", within
5 s. The seed is fixed (set COOPFLOW_FUZZ_SEED to explore others); a failure names the case so it
can be replayed. Both CLIs run in this process (tests/conftest.py `coopflow_cli`).
"""

from __future__ import annotations

import copy
import os
import random
import time
from typing import Any

import yaml
from conftest import REPO_ROOT, copy_shipped_policy

SEED = int(os.environ.get("COOPFLOW_FUZZ_SEED", "20270101"))
CASES = 200
ODD_STRINGS = ["", " ", "[/]", "[bold red]x", "\x1b[2J", "\u202e", "a\nb", "'", '"', "{", "=", "=fields.", "${x}",
               "0", "-1", "true", "null", "~", "2027-02-30", "Đây là chữ Việt", "x" * 5000, "\\", "*", "&a", "!!binary"]
ODD_VALUES: list[Any] = [None, True, 0, -1, 10**40, 1.5, float("inf"), [], {}, ["x"], {"x": 1}, *ODD_STRINGS]
POLICY_FILES = ["config.yaml", *(f"workflows/{p.name}" for p in sorted((REPO_ROOT / "workflows").glob("*.yaml"))),
                *(f"rules/{p.name}" for p in sorted((REPO_ROOT / "rules").glob("*.yaml")))]


def _paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of nested dicts and lists."""
    found = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, prefix + (key,))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found += _paths(value, prefix + (i,))
    return found


def _mutate_data(rng: random.Random, data: Any) -> Any:
    """Delete a key or list item, or replace a node by an odd value."""
    data = copy.deepcopy(data)
    path = rng.choice(_paths(data)[1:] or [()])
    if not path:
        return rng.choice(ODD_VALUES)
    parent = data
    for step in path[:-1]:
        parent = parent[step]
    if rng.random() < 0.4:
        del parent[path[-1]]
    else:
        parent[path[-1]] = rng.choice(ODD_VALUES)
    return data


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def _mutate_text(rng: random.Random, text: str) -> bytes:
    """Byte- and text-level damage that a YAML dump cannot produce."""
    raw = text.encode("utf-8")
    at = rng.randrange(len(raw) + 1)
    kind = rng.choice(["bytes", "tab", "truncate", "bomb", "anchor", "tag", "huge", "bom", "nul"])
    insert = {
        "bytes": bytes(rng.randrange(256) for _ in range(rng.randint(1, 8))),
        "tab": b"\n\t",
        "truncate": b"",
        "bomb": b"\nx: &a [1, 1, 1, 1, 1, 1, 1, 1]\ny: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nz: [*b, *b, *b, *b, *b, *b, *b, *b]\n",
        "anchor": b"\n" + rng.choice([b"k: &s v\nk2: *s\n", b"k: *nowhere\n", b"<<: {a: 1}\n"]),
        "tag": b" " + rng.choice([b"!!python/object:os.system", b"!!binary AAAA", b"!custom", b"!!set"]) + b" ",
        "huge": b" " + b"9" * rng.choice([20, 400, 5000]) + b" ",
        "bom": b"\xef\xbb\xbf",
        "nul": b"\x00",
    }[kind]
    if kind == "truncate":
        return raw[:at]
    if kind == "huge" and rng.random() < 0.5:
        return raw * 2000  # well over the size limit
    return raw[:at] + insert + raw[at:]


def _run(coopflow_cli, label: str, *args) -> None:
    started = time.monotonic()
    code, out, err = coopflow_cli(*args)
    took = time.monotonic() - started
    text = out + err
    assert code in (0, 1, 2), f"{label}: exit {code}\n{text[-2000:]}"
    assert "Traceback" not in text and "internal error" not in text, f"{label}:\n{text[-2000:]}"
    assert took < 5, f"{label}: took {took:.1f} s"


def test_mutated_policies_through_check(coopflow_cli, tmp_path):
    rng = random.Random(SEED)
    originals = {rel: (REPO_ROOT / rel).read_text(encoding="utf-8") for rel in POLICY_FILES}
    parsed = {rel: yaml.safe_load(text) for rel, text in originals.items()}
    base = copy_shipped_policy(tmp_path / "policy").parent
    for case in range(CASES):
        rel = rng.choice(POLICY_FILES)
        if rng.random() < 0.6:
            content = _dump(_mutate_data(rng, parsed[rel])).encode("utf-8")
        else:
            content = _mutate_text(rng, originals[rel])
        target = base / rel
        target.write_bytes(content)
        try:
            _run(coopflow_cli, f"seed {SEED} case {case} ({rel})", "check", "-c", base / "config.yaml")
        finally:
            target.write_text(originals[rel], encoding="utf-8")


EVENTS = [
    {"at": "2027-03-01T09:00:00+07:00", "as": "dic.focal_point", "start": "information_exchange", "ref": "r",
     "set": {"requester": "dic", "recipient": "police", "subject": "Danh sách thuê bao"}},
    {"at": "2027-03-01T10:30:00+07:00", "as": "dic.focal_point", "fire": "send", "instance": "r",
     "set": {"dispatch_no": "125/STTTT"}},
    {"at": "2027-03-02", "as": "police.focal_point", "fire": "acknowledge", "instance": "r"},
    {"at": "2027-03-02T15:00:00", "as": "police.leader", "start": "emergency_review", "ref": "m",
     "set": {"issue": "Sự cố", "proposed_by": "police"}},
    {"at": "2027-03-03", "as": "dic.leader", "fire": "agree", "instance": "m", "withdraw": False},
]


def test_mutated_events_files_through_simulate(coopflow_cli, tmp_path, monkeypatch):
    from loguru import logger

    monkeypatch.setattr(logger, "remove", lambda *a, **k: None)  # simulate silences loguru: keep the test's sinks
    rng = random.Random(SEED + 1)
    config = copy_shipped_policy(tmp_path / "policy")
    config.write_text(config.read_text(encoding="utf-8").replace(
        "store: sqlite:///coopflow.db", f"store: sqlite:///{tmp_path / 'never.db'}"), encoding="utf-8")
    original = _dump(EVENTS)
    events = tmp_path / "events.yaml"
    for case in range(CASES):
        if rng.random() < 0.65:
            content = _dump(_mutate_data(rng, EVENTS)).encode("utf-8")
        else:
            content = _mutate_text(rng, original)
        events.write_bytes(content)
        _run(coopflow_cli, f"seed {SEED + 1} case {case}", "simulate", "--from", "2027-03-01", "--to", "2027-03-04",
             "--events", events, "-c", config)
    assert not (tmp_path / "never.db").exists()
