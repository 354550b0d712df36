"""A policy, its store and an executor wired together: what the CLI, daemon and simulator share."""

from __future__ import annotations

import os
from dataclasses import dataclass

from engine import settings
from engine.execution import outbox
from engine.execution.executor import Executor, Outcome
from engine.policy.loader import Policy, load_policy
from engine.store import anchors, lease
from engine.store.database import SqlStore, resolve_url

BATCH = settings.BATCH  # events applied per transaction when several are pending (group commit)


@dataclass
class Runtime:
    policy: Policy
    store: SqlStore
    executor: Executor

    def settle(self, limit: int = 100_000) -> list[Outcome]:
        """Apply pending events and run their after-commit actions until nothing is left."""
        outcomes: list[Outcome] = []
        while len(outcomes) < limit:
            batch = self.executor.apply_batch(BATCH)
            outcomes.extend(batch)
            if len(batch) < BATCH and outbox.dispatch_due(self.store, self.policy) == 0:
                break
        return outcomes

    def daemon_running(self) -> str | None:
        """The holder of the daemon lease (host:pid) when a daemon runs on this store."""
        held = lease.current_holder(self.store)
        return held[0] if held else None

    def set_policy(self, policy: Policy) -> None:
        self.policy = policy
        self.executor.policy = policy


def open_runtime(config_path: str | os.PathLike | None = None, policy: Policy | None = None,
                 create: bool = False) -> Runtime:
    """Load the policy (unless given) and open its store (migrated). The store must exist unless
    `create` (`coopflow init`): a typo in `store:` is refused instead of starting an empty store."""
    policy = policy or load_policy(config_path)
    store = anchors.open_store(resolve_url(policy.config.store, policy.root), policy.config.audit, policy.root,
                               create=create)  # keyed history; a wiped store is refused
    return Runtime(policy, store, Executor(store, policy))
