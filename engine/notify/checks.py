"""What `coopflow check` verifies about notifications (called by the checks in engine.policy.checks)."""

from __future__ import annotations

from engine.rules.actors import pattern_parties


def config_problems(policy_root, config) -> list[tuple[tuple[str | int, ...], str]]:
    """(location in config.yaml, message) for the notifications section."""
    notifications = config.notifications
    if notifications is None:
        return []
    out: list[tuple[tuple[str | int, ...], str]] = []
    for party in notifications.webhooks:
        if party not in config.parties:
            out.append((("notifications", "webhooks", party), f"unknown party '{party}' (declared: {', '.join(config.parties)})"))
    if notifications.webhooks and notifications.webhook.secret is None:
        out.append((("notifications", "webhook"), "webhooks need a signing secret: webhook: {secret: {env: NAME}} or {file: PATH}"))
    people = {f"{p}.{r}": role.people for p, party in config.parties.items() for r, role in party.roles.items()}
    known = set(people) | {person for names in people.values() for person in names}
    for key in notifications.contacts:
        if key not in known:
            out.append((("notifications", "contacts", key),
                        f"'{key}' is neither a person listed under a role nor a party.role"))
    if notifications.digest is not None:
        for j, person in enumerate(notifications.digest.opt_out):
            if person not in known:
                out.append((("notifications", "digest", "opt_out", j),
                            f"'{person}' is neither a person listed under a role nor a party.role"))
    if notifications.contacts and notifications.smtp is None:
        out.append((("notifications",), "contacts have e-mail addresses but no smtp server is configured"))
    from engine.notify import templates  # jinja2 and the message contexts: only for a policy with notifications

    out.extend(templates.problems(policy_root, config))
    return out


def unreachable(pattern: str, config) -> list[str]:
    """The recipients a notify pattern may name that have neither an e-mail address nor a party webhook.

    A `$field.role` pattern may name any party having that role, so every such party counts.
    """
    notifications = config.notifications
    if notifications is None:
        return []
    head, _, role = pattern.rpartition(".")
    parties = [p for p, party in config.parties.items() if role in party.roles] if head.startswith("$") else pattern_parties(pattern, {}, config)
    out: list[str] = []
    for party in parties:
        if party in notifications.webhooks:
            continue
        people = config.parties[party].roles[role].people
        if f"{party}.{role}" in notifications.contacts:
            continue
        out.extend(f"{party}.{role}:{p}" for p in people if p not in notifications.contacts)
        if not people:
            out.append(f"{party}.{role}")
    return out
