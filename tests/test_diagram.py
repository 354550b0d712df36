"""Tests for engine.views.diagram: Mermaid and DOT state diagrams drawn from a workflow spec."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from engine.policy.loader import load_policy
from engine.policy.spec import WorkflowSpec
from engine.views.diagram import FORMATS, GUARD_WIDTH, dot, mermaid
from tests.conftest import REPO_ROOT, copy_shipped_policy

WORKFLOW = {
    "id": "incident",
    "title": 'Xử lý "sự cố": phối hợp',
    "clause": "Điều 5",
    "started_by": ["police.officer"],
    "initial": "reported",
    "states": {
        "reported": {
            "title": "Đã tiếp nhận",
            "deadline": {"working_days": 5, "fire": "overdue", "clause": "Điều 5.2"},
        },
        "review": {"title": "Đang xem xét", "clause": "Điều 6"},
        "escalated": {"title": "Chuyển cấp trên: chờ; xử lý"},
        "closed": {"title": "Đã đóng", "final": True},
    },
    "transitions": [
        {
            "trigger": "accept",
            "from": "reported",
            "to": "review",
            "by": ["police.officer"],
            "when": 'fields.n >= 3 and fields.kind == "a:b"',
        },
        {"trigger": "overdue", "from": "reported", "to": "escalated", "by": ["system"]},
        {
            "trigger": "close",
            "from": ["review", "escalated"],
            "to": "closed",
            "by": ["police.chief", "fire.chief"],
            "approvals": {"parties": "all"},
        },
        {
            "trigger": "cancel",
            "from": "*",
            "to": "closed",
            "by": ["police.chief"],
            "approvals": {"parties": ["police", "fire", "health"], "quorum": 2, "expires": {"days": 3}},
        },
    ],
}

NAMED_ENTITIES = {"quot": '"', "lt": "<", "gt": ">"}
MERMAID_ID = r"(\[\*\]|[a-z][a-z0-9_]*)"
MERMAID_KEYWORD = re.compile(r"(?i)^(default|state|note|class|scale|hide|acc)")
DOT_ATOM = r'(?:"(?:[^"\\\n]|\\.)*"|[A-Za-z_][A-Za-z0-9_]*|-?\d+(?:\.\d+)?)'
DOT_ATTRS = rf"\[{DOT_ATOM}={DOT_ATOM}(?:, {DOT_ATOM}={DOT_ATOM})*\]"
DOT_STATEMENT = re.compile(rf"    (?:(?:graph|node|edge) {DOT_ATTRS}|{DOT_ATOM}(?: -> {DOT_ATOM})?(?: {DOT_ATTRS})?);")


def make(**changes: object) -> WorkflowSpec:
    """The fixture workflow, with top-level keys replaced by `changes`."""
    return WorkflowSpec.model_validate({**WORKFLOW, **changes})


def decode_mermaid(text: str) -> str:
    """Turn Mermaid entity codes (#58;, #quot;) back into characters, as Mermaid does."""
    return re.sub(r"#(\w+);", lambda m: chr(int(m[1])) if m[1].isdigit() else NAMED_ENTITIES[m[1]], text)


def dot_strings(text: str) -> list[str]:
    """Every quoted string of a DOT text, unescaped the way Graphviz reads labels."""
    found = re.findall(r'"((?:[^"\\\n]|\\.)*)"', text)
    return [re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], s) for s in found]


def check_mermaid(text: str) -> None:
    """Assert that every line of `text` is one of the statement forms the writer may produce."""
    lines = text.splitlines()
    assert lines[0] == "---" and lines[2] == "---" and lines[3] == "stateDiagram-v2"
    assert isinstance(yaml.safe_load(lines[1])["title"], str)
    in_note = False
    for line in lines[4:]:
        assert "%%" not in line and not re.search(r"(?i)direction\s", line), line
        if in_note:
            if line == "    end note":
                in_note = False
            else:
                assert line.startswith("        ") and not re.search(r"(?i)end\s+note", line), line
            continue
        if m := re.fullmatch(r'    state "([^"]*)" as ([a-z][a-z0-9_]*)', line):
            assert not MERMAID_KEYWORD.match(m[2]), line
            continue
        if m := re.fullmatch(r"    note right of ([a-z][a-z0-9_]*)", line):
            in_note = True
            continue
        m = re.fullmatch(rf"    {MERMAID_ID} --> {MERMAID_ID}(?: : (.+))?", line)
        assert m, line
        assert not any(MERMAID_KEYWORD.match(i) for i in (m[1], m[2])), line
        if m[3] is not None:
            bare = re.sub(r"#\w+;", "", m[3])
            assert not set(bare) & set(':;#"%'), line
    assert not in_note


def check_dot(text: str) -> None:
    """Assert that `text` is structurally sound DOT: closed strings, balanced braces and brackets."""
    assert text.startswith('digraph "') and text.endswith("}\n")
    depth = {"{": 0, "[": 0}
    closing = {"}": "{", "]": "["}
    in_string = False
    i = 0
    while i < len(text):
        c = text[i]
        if in_string:
            assert c != "\n", f"newline inside a string near {text[max(0, i - 40):i]!r}"
            if c == "\\":
                i += 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in depth:
            depth[c] += 1
        elif c in closing:
            depth[closing[c]] -= 1
            assert depth[closing[c]] >= 0, f"unbalanced {c!r}"
        i += 1
    assert not in_string and depth == {"{": 0, "[": 0}
    lines = text.splitlines()
    assert re.fullmatch(rf"digraph {DOT_ATOM} {{", lines[0]) and lines[-1] == "}"
    for line in lines[1:-1]:
        assert DOT_STATEMENT.fullmatch(line), line
    if shutil.which("dot"):
        done = subprocess.run(["dot", "-Tsvg"], input=text.encode(), capture_output=True, check=False)
        assert done.returncode == 0, done.stderr.decode()


def mermaid_edges(text: str) -> list[tuple[str, str, str]]:
    """(source, dest, decoded label) of every Mermaid transition line."""
    found = re.findall(rf"^    {MERMAID_ID} --> {MERMAID_ID}(?: : (.*))?$", text, re.M)
    return [(a, b, decode_mermaid(label)) for a, b, label in found]


def dot_edges(text: str) -> list[tuple[str, str, str]]:
    """(source, dest, unescaped label) of every DOT edge line."""
    found = re.findall(r'^    "(\w+)" -> "(\w+)"(?: \[label=("(?:[^"\\]|\\.)*"))?', text, re.M)
    return [(a, b, dot_strings(label)[0] if label else "") for a, b, label in found]


EDGES = {"mermaid": mermaid_edges, "dot": dot_edges}


@pytest.mark.parametrize("fmt", sorted(FORMATS), ids=sorted(FORMATS))
def test_every_state_and_trigger_appears(fmt):
    """Each format names every state id and every trigger of the fixture workflow."""
    text = FORMATS[fmt](make())
    for sid in WORKFLOW["states"]:
        assert re.search(rf"\b{sid}\b", text), sid
    for t in WORKFLOW["transitions"]:
        assert re.search(rf"\b{t['trigger']}\b", text), t["trigger"]


@pytest.mark.parametrize("fmt", sorted(FORMATS), ids=sorted(FORMATS))
def test_vietnamese_titles_are_preserved(fmt):
    """State titles and the workflow title keep their Vietnamese letters, not ASCII escapes."""
    text = FORMATS[fmt](make())
    decoded = decode_mermaid(text) if fmt == "mermaid" else "\n".join(dot_strings(text))
    for state in WORKFLOW["states"].values():
        assert state["title"] in decoded
    assert "Xử lý" in text and "Điều 5" in text
    text.encode("utf-8")


@pytest.mark.parametrize("fmt", sorted(FORMATS), ids=sorted(FORMATS))
def test_any_source_expands_to_every_non_final_state(fmt):
    """A `from: "*"` transition is drawn from each non-final state and never from a final one."""
    edges = EDGES[fmt](FORMATS[fmt](make()))
    cancels = sorted(src for src, _, label in edges if label.startswith("cancel"))
    assert cancels == ["escalated", "reported", "review"]


@pytest.mark.parametrize("fmt", sorted(FORMATS), ids=sorted(FORMATS))
def test_labels_show_trigger_guard_roles_and_approvals(fmt):
    """Transition labels carry the trigger, the guard, the `by` roles and the approvals."""
    labels = {label.split("\n")[0].split("<br/>")[0].split(" ")[0]: label for _, _, label in EDGES[fmt](FORMATS[fmt](make()))}
    assert 'accept [fields.n >= 3 and fields.kind == "a:b"]' in labels["accept"]
    assert "by: police.officer" in labels["accept"]
    assert "by: police.chief, fire.chief" in labels["close"]
    assert "approval: all parties" in labels["close"]
    assert "approval: quorum 2 of police, fire, health, within 3 days" in labels["cancel"]
    assert "by: system" in labels["overdue"]


@pytest.mark.parametrize("fmt", sorted(FORMATS), ids=sorted(FORMATS))
def test_deadline_and_state_clause_are_shown(fmt):
    """A state's deadline reads like '⏱ 5 working days → overdue' and its clause is shown."""
    text = FORMATS[fmt](make())
    assert "⏱ 5 working days → overdue (Điều 5.2)" in text
    assert "§ Điều 6" in text


def test_deadline_at_field_names_the_field_and_fallback():
    """A deadline taken from a field shows the field name and the fallback duration."""
    states = {**WORKFLOW["states"], "reported": {"title": "Đã tiếp nhận", "deadline": {"hours": 4, "fire": "overdue", "at": "due_at"}}}
    assert "⏱ due_at (else 4 hours) → overdue" in mermaid(make(states=states))


@pytest.mark.parametrize("fmt", sorted(FORMATS), ids=sorted(FORMATS))
def test_long_guard_is_shortened(fmt):
    """A guard longer than GUARD_WIDTH is cut and ends with an ellipsis."""
    transitions = [{**WORKFLOW["transitions"][0], "when": "fields.severity >= 3 and " * 10 + "true"}, *WORKFLOW["transitions"][1:]]
    edges = EDGES[fmt](FORMATS[fmt](make(transitions=transitions)))
    [label] = [label for _, _, label in edges if label.startswith("accept")]
    guard = re.search(r"\[(.*?)\]", label)[1]
    assert len(guard) == GUARD_WIDTH and guard.endswith("…")


def test_mermaid_start_and_final_points():
    """Mermaid enters the initial state from [*] and leads every final state to [*]."""
    edges = mermaid_edges(mermaid(make()))
    assert ("[*]", "reported", "") in edges
    assert ("closed", "[*]", "") in edges
    assert sum(1 for _, dest, _ in edges if dest == "[*]") == 1


def test_mermaid_is_well_formed():
    """Every Mermaid line is a known statement, with no raw ':' or ';' inside a label."""
    text = mermaid(make())
    check_mermaid(text)
    assert 'state "Đã tiếp nhận" as reported' in text


def test_mermaid_escapes_quote_and_colon_in_titles():
    """A title with a quote and a colon survives: YAML front matter for the diagram, entities for states."""
    text = mermaid(make(title='Quy trình "A": bước 1 \\ 2'))
    check_mermaid(text)
    assert yaml.safe_load(text.split("---")[1])["title"] == 'Quy trình "A": bước 1 \\ 2 (Điều 5)'
    states = {**WORKFLOW["states"], "review": {"title": 'Chờ "duyệt": 3/5 %% <b>'}}
    text = mermaid(make(states=states))
    check_mermaid(text)
    line = next(line for line in text.splitlines() if line.endswith(" as review"))
    assert line == '    state "Chờ #quot;duyệt#quot;#58; 3/5 #37;#37; #lt;b#gt;" as review'
    assert decode_mermaid(line) == '    state "Chờ "duyệt": 3/5 %% <b>" as review'


def test_mermaid_breaks_words_its_lexer_acts_on():
    """Text mentioning 'direction LR' or 'end note' cannot end a note or set the layout."""
    states = {**WORKFLOW["states"], "review": {"title": "Direction LR", "clause": "the end note"}}
    text = mermaid(make(states=states))
    check_mermaid(text)
    assert "Direction LR" in decode_mermaid(text) and "the end note" in decode_mermaid(text)


@pytest.mark.parametrize(
    ("sid", "alias"),
    [("defaulted", "s_defaulted"), ("state_b", "s_state_b"), ("notes", "s_notes"), ("redirection", "redir_ection")],
    ids=["default", "state", "note", "direction"],
)
def test_mermaid_aliases_keyword_state_ids(sid, alias):
    """A state id that Mermaid would lex as a keyword is drawn under a safe alias."""
    states = {**WORKFLOW["states"], sid: {"title": "Vi phạm"}}
    transitions = [*WORKFLOW["transitions"], {"trigger": "breach", "from": "review", "to": sid, "by": ["system"]}]
    text = mermaid(make(states=states, transitions=transitions))
    check_mermaid(text)
    assert f'state "Vi phạm" as {alias}' in text
    assert f"review --> {alias} : breach" in text


def test_dot_is_well_formed():
    """DOT output has closed strings and balanced braces (and renders when Graphviz is installed)."""
    text = dot(make())
    check_dot(text)
    assert '"_start" -> "reported";' in text
    assert '"closed" -> "_end";' in text
    assert '"closed" [label="Đã đóng\\n(closed)", peripheries=2];' in text


def test_dot_escapes_quotes_and_backslashes():
    """Quotes and backslashes in titles are escaped in DOT and read back unchanged."""
    states = {**WORKFLOW["states"], "review": {"title": 'Chờ "duyệt": a\\b\\'}}
    text = dot(make(title='Quy trình "A": bước 1', states=states))
    check_dot(text)
    strings = dot_strings(text)
    assert 'Quy trình "A": bước 1\n(Điều 5)' in strings
    assert 'Chờ "duyệt": a\\b\\\n(review)' in strings


def test_dot_system_transitions_are_dashed():
    """Transitions only the system may fire (deadlines) are drawn dashed."""
    text = dot(make())
    [line] = [line for line in text.splitlines() if '"reported" -> "escalated"' in line]
    assert line.endswith(", style=dashed];")


def test_formats_registry():
    """FORMATS maps each format name to its writer."""
    assert FORMATS == {"mermaid": mermaid, "dot": dot}


def test_shipped_workflows_draw_cleanly(tmp_path):
    """Every shipped workflows/*.yaml loads with the shipped policy (an invalid one fails this test,
    it is not skipped) and draws as well-formed Mermaid and DOT."""
    policy = load_policy(copy_shipped_policy(tmp_path / "policy"))
    shipped = sorted(path.stem for path in (REPO_ROOT / "workflows").glob("*.yaml"))
    assert shipped, "no shipped workflow found"
    assert sorted(policy.workflows) == shipped
    for spec in policy.workflows.values():
        check_mermaid(mermaid(spec))
        check_dot(dot(spec))
        for sid in spec.states:
            assert f'"{sid}"' in dot(spec)
