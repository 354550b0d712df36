"""State diagrams of a workflow, drawn from its spec as Mermaid or Graphviz DOT text.

Both formats show the same content:

* a title: the workflow title and its clause;
* every state with its (Vietnamese) title, its clause and its deadline, e.g.
  ``⏱ 5 working days → overdue``; the initial state is entered from a start point and
  every final state leads to an end point (Mermaid ``[*]``);
* every transition, labelled with its trigger, its guard (shortened), the roles that may
  fire it (``by``) and the approvals it needs. ``from: "*"`` is drawn as one edge from
  every non-final state, as the engine reads it; sources that are not declared states
  are left out (`engine.policy.loader` reports them).

The result is a ``str``; write it as UTF-8. Vietnamese text is kept as is, never
transliterated or escaped to ASCII.

Escaping. Mermaid's ``stateDiagram-v2`` grammar has no escape character: a transition
label or a one-line note ends at the first ``:`` or ``;``, a state title at the first
``"``, and a line mentioning ``direction TB`` (and the like) is taken as a direction
statement. User text therefore has ``# " : ; % < >`` replaced by Mermaid entity codes
(``#58;`` for ``:``), which Mermaid turns back into the characters when it renders. A few
state ids that Mermaid would read as keywords (``default…``, ``state…``, ``note…``,
``class…``, ids containing ``direction``) are drawn under a prefixed alias such as
``s_defaulted``; the state's title is unchanged. DOT quotes every id and label and escapes
``\\`` and ``"``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from engine.policy.spec import Approvals, Deadline, TransitionSpec, WorkflowSpec
from engine.rules import consent, duties
from engine.rules.machines import rules_for

__all__ = ["FORMATS", "GUARD_WIDTH", "dot", "mermaid"]

GUARD_WIDTH = 40
"""Guards longer than this many characters are cut and end with "…"."""


# --------------------------------------------------------------------------- shared text


def _flat(text: str) -> str:
    """Collapse every run of whitespace (newlines included) to one space."""
    return " ".join(text.split())


def _short(text: str, width: int = GUARD_WIDTH) -> str:
    """One line of at most `width` characters, ending with "…" when cut."""
    text = _flat(text)
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def _title(spec: WorkflowSpec) -> str:
    return f"{_flat(spec.title)} ({_flat(spec.clause)})"


def _deadline(deadline: Deadline) -> str:
    """E.g. '⏱ 5 working days → overdue' or '⏱ due_at (else 3 days) → expire'."""
    span = deadline.describe()
    when = f"{deadline.at} (else {span})" if deadline.at else span
    text = f"⏱ {when} → {deadline.fire}"
    return f"{text} ({_flat(deadline.clause)})" if deadline.clause else text


def _approvals(approvals: Approvals) -> str:
    """E.g. 'approval: all parties', 'approval: quorum 2 of a, b, c, within 5 days'."""
    parties = consent.describe(approvals)
    text = f"quorum {approvals.quorum} of {parties}" if approvals.quorum else parties
    if approvals.expires is not None:
        text += f", within {approvals.expires.describe()}"
    return f"approval: {text}"


def _transition_lines(t: TransitionSpec) -> list[str]:
    """The label of a transition, one item per line: trigger [guard], by, approvals."""
    head = f"{t.trigger} [{_short(t.when)}]" if t.when else t.trigger
    lines = [head, "by: " + ", ".join(t.by)]
    if t.approvals is not None:
        lines.append(_approvals(t.approvals))
    return lines


def _state_lines(spec: WorkflowSpec, sid: str) -> list[str]:
    """Extra lines drawn on a state: its clause and its deadline."""
    state = spec.states[sid]
    lines = [f"§ {_flat(state.clause)}"] if state.clause else []
    if state.deadline is not None:
        lines.append(_deadline(state.deadline))
    return lines


def _edges(spec: WorkflowSpec) -> Iterator[tuple[str, str, TransitionSpec]]:
    """(source, dest, transition) for every edge of the workflow's machine (engine.rules.machines),
    in the policy's order; "*" means every non-final state."""
    for source, t in rules_for(spec).edges():
        yield source, t.dest, t


# --------------------------------------------------------------------------- Mermaid

_MERMAID_ENTITIES = {c: f"#{ord(c)};" for c in "#:;%"} | {'"': "#quot;", "<": "#lt;", ">": "#gt;"}
_MERMAID_TABLE = str.maketrans(_MERMAID_ENTITIES)
# Words the Mermaid lexer acts on wherever they appear; one letter of each becomes an entity.
_MERMAID_WORDS = re.compile(r"(?i)(?<=directio)n|(?<=en)d(?=\s+note)")
_MERMAID_KEYWORDS = re.compile(r"(?i)^(default|state|note|class|scale|hide|acc|direction)")


def _mermaid_text(text: str) -> str:
    """User text made safe anywhere in a Mermaid state diagram (labels, titles, notes)."""
    text = _flat(text).translate(_MERMAID_TABLE)
    return _MERMAID_WORDS.sub(lambda m: f"#{ord(m.group())};", text)


def _mermaid_ids(spec: WorkflowSpec) -> dict[str, str]:
    """Map each state id to the id drawn in Mermaid: itself unless Mermaid reads it as a keyword."""
    aliases: dict[str, str] = {}
    taken = set(spec.states) | {spec.initial}
    for sid in spec.states:
        alias = sid.replace("direction", "dir_ection")
        if _MERMAID_KEYWORDS.match(alias):
            alias = "s_" + alias
        while alias != sid and alias in taken:
            alias += "_"
        taken.add(alias)
        aliases[sid] = alias
    return aliases


def _yaml_quoted(text: str) -> str:
    """A YAML double-quoted scalar (for Mermaid's front matter)."""
    return '"' + _flat(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def mermaid(spec: WorkflowSpec) -> str:
    """The workflow as a Mermaid ``stateDiagram-v2``, titled through front matter."""
    ids = _mermaid_ids(spec)
    out = ["---", f"title: {_yaml_quoted(_title(spec))}", "---", "stateDiagram-v2"]
    for sid, state in spec.states.items():
        title = _mermaid_text(state.title).replace("[[", "[#91;")  # not read as [[fork]] etc.
        out.append(f'    state "{title}" as {ids[sid]}')
    out.append(f"    [*] --> {ids.get(spec.initial, spec.initial)}")
    for source, dest, t in _edges(spec):
        label = "<br/>".join(_mermaid_text(line) for line in _transition_lines(t))
        out.append(f"    {ids[source]} --> {ids.get(dest, dest)} : {label}")
    for sid, state in spec.states.items():
        if state.final:
            out.append(f"    {ids[sid]} --> [*]")
    for sid in spec.states:
        lines = _state_lines(spec, sid)
        if lines:
            out.append(f"    note right of {ids[sid]}")
            out.extend(f"        {_mermaid_text(line)}" for line in lines)
            out.append("    end note")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- DOT


def _dot_quoted(text: str) -> str:
    """A DOT quoted string; each newline in `text` becomes a centred line break."""
    body = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{body}"'


def _dot_label(lines: list[str]) -> str:
    return _dot_quoted("\n".join(_flat(line) for line in lines))


def dot(spec: WorkflowSpec) -> str:
    """The workflow as a Graphviz ``digraph``; render with ``dot -Tsvg``."""
    out = [
        f"digraph {_dot_quoted(spec.id)} {{",
        f"    graph [label={_dot_label([spec.title, f'({spec.clause})'])}, labelloc=t, fontsize=16];",
        "    node [shape=box, style=rounded];",
        "    edge [fontsize=10];",
        '    "_start" [shape=point, width=0.15, label=""];',
    ]
    for sid, state in spec.states.items():
        label = _dot_label([state.title, f"({sid})", *_state_lines(spec, sid)])
        extra = ", peripheries=2" if state.final else ""
        out.append(f"    {_dot_quoted(sid)} [label={label}{extra}];")
    out.append(f'    "_start" -> {_dot_quoted(spec.initial)};')
    for source, dest, t in _edges(spec):
        style = ", style=dashed" if duties.system_only(t) else ""
        out.append(f"    {_dot_quoted(source)} -> {_dot_quoted(dest)} [label={_dot_label(_transition_lines(t))}{style}];")
    finals = [sid for sid, state in spec.states.items() if state.final]
    if finals:
        out.append('    "_end" [shape=doublecircle, width=0.1, label=""];')
        out.extend(f'    {_dot_quoted(sid)} -> "_end";' for sid in finals)
    out.append("}")
    return "\n".join(out) + "\n"


FORMATS: dict[str, Callable[[WorkflowSpec], str]] = {"mermaid": mermaid, "dot": dot}
"""Diagram writers by format name."""
