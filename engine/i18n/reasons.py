"""The engine's outcome and refusal texts put into the reader's language (console and CLI)."""

from __future__ import annotations

import re

# The engine words its refusals in English (engine.rules.decision, engine.execution.executor,
# engine.rules.fields); the console and the CLI say them in the reader's language. Order matters: first match.
_N_ = lambda text: text  # noqa: E731 - marks msgids for extraction without translating them here
REASONS: list[tuple[re.Pattern, str]] = [(re.compile(p, re.S), m) for p, m in [
    (r"^(?P<actor>\S+) may not fire '(?P<trigger>[^']+)' \(allowed: (?P<allowed>.*)\)$",
     _N_("%(actor)s may not take the step '%(trigger)s' (open to: %(allowed)s)")),
    (r"^trigger '(?P<trigger>[^']+)' is not allowed from state '(?P<state>[^']+)' \(allowed: (?P<allowed>.*)\)$",
     _N_("the step '%(trigger)s' cannot be taken in the state '%(state)s' (possible now: %(allowed)s)")),
    (r"^'(?P<trigger>[^']+)' needs the field\(s\) (?P<fields>.*)$",
     _N_("the step '%(trigger)s' needs: %(fields)s")),
    (r"^missing required field\(s\): (?P<fields>.*)$", _N_("required field(s) missing: %(fields)s")),
    (r"^guard not met: (?P<guard>.*)$", _N_("the condition of this step is not met: %(guard)s")),
    (r"^instance is closed: state '(?P<state>[^']+)' is final$",
     _N_("the file is closed: '%(state)s' is a final state")),
    (r"^(?P<actor>\S+) may not start '(?P<workflow>[^']+)' \(allowed: (?P<allowed>.*)\)$",
     _N_("%(actor)s may not start '%(workflow)s' (open to: %(allowed)s)")),
    (r"^field '(?P<field>[^']+)' expects (?P<expected>.*?), got (?P<got>.*)$",
     _N_("the field '%(field)s' has a wrong value %(got)s")),
    (r"^unknown field '(?P<field>[^']+)'.*$", _N_("unknown field '%(field)s'")),
    (r"^'(?P<trigger>[^']+)' does not accept the field\(s\) (?P<fields>[^(]*) \(.*$",
     _N_("the step '%(trigger)s' does not take: %(fields)s")),
    (r"^party '(?P<party>[^']+)' is not among those whose consent '(?P<trigger>[^']+)' needs \((?P<parties>.*)\)$",
     _N_("the consent of '%(party)s' is not asked for '%(trigger)s' (asked of: %(parties)s)")),
    (r"^party '(?P<party>[^']+)' has no consent to '(?P<trigger>[^']+)' to withdraw$",
     _N_("'%(party)s' has given no consent to '%(trigger)s' that could be withdrawn")),
    (r"^'(?P<trigger>[^']+)' needs no consent, so there is none to withdraw$",
     _N_("'%(trigger)s' needs no consent, so there is none to withdraw")),
    (r"^consent recorded for (?P<party>\S+?)(?P<again> again)?: (?P<agreed>\d+) of (?P<quorum>\d+), waiting for (?P<waiting>.*)$",
     _N_("consent of %(party)s recorded: %(agreed)s of %(quorum)s, waiting for %(waiting)s")),
    (r"^consent of (?P<party>\S+) to '(?P<trigger>[^']+)' withdrawn$",
     _N_("the consent of %(party)s to '%(trigger)s' is withdrawn")),
    (r"^unknown instance '(?P<instance>[^']+)'$", _N_("there is no file '%(instance)s'")),
    (r"^no history for instance '(?P<instance>[^']+)'$", _N_("there is no history of the file '%(instance)s'")),
    (r"^unknown workflow '(?P<workflow>[^']+)'; workflows: (?P<known>.*)$",
     _N_("unknown workflow '%(workflow)s'; workflows: %(known)s")),
    (r"^unknown workflow '(?P<workflow>[^']+)'; did you mean (?P<close>.*)\?$",
     _N_("unknown workflow '%(workflow)s'; did you mean %(close)s?")),
    (r"^unknown state '(?P<state>[^']+)' in (?P<workflow>\S+); did you mean (?P<close>.*)\?$",
     _N_("unknown state '%(state)s' in %(workflow)s; did you mean %(close)s?")),
    (r"^unknown state '(?P<state>[^']+)' in (?P<workflow>\S+); states: (?P<known>.*)$",
     _N_("unknown state '%(state)s' in %(workflow)s; states: %(known)s")),
    (r"^unknown state '(?P<state>[^']+)'; did you mean (?P<close>.*)\?$",
     _N_("unknown state '%(state)s'; did you mean %(close)s?")),
    (r"^unknown state '(?P<state>[^']+)'; states: (?P<known>.*)$", _N_("unknown state '%(state)s'; states: %(known)s")),
    (r"^started in (?P<state>\S+)$", _N_("started in the state '%(state)s'")),
    (r"^(?P<from>\S+) -> (?P<to>\S+)$", _N_("%(from)s -> %(to)s")),
    (r"^pending: .*$", _N_("queued: the daemon has not applied it yet; reload the page in a moment")),
]]


def reason(text: str | None, gettext) -> str:
    """An engine outcome or refusal reason in the reader's language (the English text when unknown)."""
    if not text:
        return ""
    text = text.strip()
    for prefix in ("refused: ", "applied: "):
        text = text.removeprefix(prefix)
    for pattern, msgid in REASONS:
        m = pattern.match(text)
        if m:
            return gettext(msgid) % {k: (v or "") for k, v in m.groupdict().items()}
    return text
