"""The daemon: wires config → store → policy → scheduler → executor, and handles signals.

One daemon per store holds the leader lease and is the single writer: it applies inbox events,
runs after-commit actions, fires schedule occurrences and deadline timers (APScheduler date
jobs planned from the store), and hot-reloads the policy. Others wait as standbys and take
over when the lease expires.
"""

from __future__ import annotations

import signal
import threading
import time
from datetime import datetime
from types import FrameType
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler
from loguru import logger

from engine import clock, logs, settings
from engine.exceptions import PolicyError
from engine.execution import outbox
from engine.execution.executor import Executor, Outcome
from engine.execution.runtime import BATCH, Runtime
from engine.notify import deliveries, digest
from engine.policy.loader import load_policy, resolve_config_path
from engine.scheduling import alarms, schedules, timers
from engine.scheduling.watcher import PolicyWatcher
from engine.store import anchors, lease
from engine.store.database import SqlStore, StoreError, StoreRefused, resolve_url, safe_url, wait_for

if TYPE_CHECKING:
    from engine.server.app import ServerThread

RENEW_FRACTION = settings.RENEW_FRACTION   # renew the lease every TTL/3 (COOPFLOW_LEASE_TTL)
SWEEP_EVERY = settings.SWEEP_EVERY         # seconds between safety sweeps for anything due
RELOAD_EVERY = settings.RELOAD_EVERY       # seconds between checks of the policy files


class Daemon:
    """`coopflow run`: the long-running process.

    Built in two phases: `Daemon` holds what exists before the store is open (the config path and
    the stop/wake events the signal handlers set); `run()` opens the store and builds a `Running`,
    which owns the runtime, the leader lease and the policy watcher, none of them ever None.
    """

    def __init__(self, config_path: str | None = None):
        self.config_path = resolve_config_path(config_path)
        self.stop = threading.Event()
        self.wake = threading.Event()

    # ---- life cycle

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; returns the exit code. Raises PolicyError on an invalid policy."""
        policy = load_policy(self.config_path)
        ttl = lease.ttl_from_env()
        clock.now()  # a bad COOPFLOW_CLOCK_START stops the start here, with a clear message
        logs.configure(policy.config.logging, policy.root)
        logs.bridge_stdlib()
        self._install_signals()
        logger.bind(policy=policy.digest[:12]).info(
            "coopflow daemon starting: policy {} ({} workflows, {} schedules, {} event rules)",
            policy.digest[:12], len(policy.workflows), len(policy.schedules), len(policy.event_rules))
        url = resolve_url(policy.config.store, policy.root)
        try:
            store = wait_for(lambda: anchors.open_store(url, policy.config.audit, policy.root), self.stop)
            if store is not None:
                store.mark_real_clock()
        except StoreRefused as exc:  # waiting would not help: stop for the administrator (exit 1)
            logger.error("{}; stopping", exc)
            return 1
        if store is None:
            return 0
        running = Running(self, Runtime(policy, store, Executor(store, policy)), lease.Lease(store, ttl=ttl),
                          PolicyWatcher(self.config_path, policy))
        sender = deliveries.Sender(running)  # e-mails and webhooks, in their own thread (engine.notify)
        sender.start()
        http = _serve_http(running.runtime)  # the API beside the daemon, sharing its runtime (and hot-reloaded policy)
        try:
            code = running.loop()
        finally:
            self.stop.set()
            if http is not None:
                http.stop()
            sender.join(timeout=30)
            running.stop_scheduler()
            try:
                anchors.write_anchor(store)  # the last head, at stop
            except Exception as exc:  # the store or the anchor file may be gone
                logger.warning("could not write the audit anchor at stop: {}", _short(exc))
            if running.lease.held:
                try:
                    running.lease.release()
                except Exception:  # the store may be gone; the lease then simply expires
                    pass
            logger.info("coopflow daemon stopped")
        return code

    def _install_signals(self) -> None:
        def handler(signum: int, _frame: FrameType | None) -> None:
            logger.info("received {}, finishing the event in hand and stopping", signal.Signals(signum).name)
            self.stop.set()
            self.wake.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


class Running:
    """The daemon once its store is open: the main loop, the scheduler and its job callbacks
    (engine.scheduling.jobs), and what the delivery thread reads (`stop`, `lease`, `runtime`)."""

    def __init__(self, daemon: Daemon, runtime: Runtime, leader_lease: lease.Lease, watcher: PolicyWatcher):
        self.config_path = daemon.config_path
        self.stop = daemon.stop
        self.wake = daemon.wake
        self.runtime = runtime
        self.lease = leader_lease
        self.watcher = watcher
        self.anchor_every = _anchor_every(runtime.store)
        self.scheduler: BackgroundScheduler | None = None  # only while this daemon holds the lease
        self.timers_due = threading.Event()   # set by the timers job and the sweep, cleared by the main loop
        self.alarm: datetime | None = None     # due time of the earliest armed timer the job waits for
        self._said_standby = False
        runtime.executor.listeners.append(self._after_event)

    def loop(self) -> int:
        next_renew = next_sweep = next_reload = next_anchor = 0.0
        backoff = 1.0
        while not self.stop.is_set():
            try:
                now = time.monotonic()
                if now >= next_renew:
                    self._hold_lease()
                    next_renew = now + self.lease.ttl.total_seconds() / RENEW_FRACTION
                if self.lease.held:
                    if now >= next_sweep:
                        self.on_sweep()
                        next_sweep = now + SWEEP_EVERY
                    if now >= next_reload:
                        self._maybe_reload()
                        next_reload = now + RELOAD_EVERY
                    self._work()
                if now >= next_anchor:  # the chain's head, outside the database (engine.store.anchors)
                    anchors.write_anchor(self.runtime.store)
                    next_anchor = now + self.anchor_every
                backoff = 1.0
            except StoreRefused as exc:  # the SQLite file was deleted or replaced: never write a new one
                logger.error("{}; stopping", exc)
                return 1
            except StoreError as exc:  # every driver error reaches here as one (SqlStore.explained_errors)
                logger.warning("store unavailable ({}); retrying in {:.0f} s", _short(exc), backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 30)
                next_renew = 0.0
                continue
            self.wake.wait(0.25)
            self.wake.clear()
        return 0

    def _work(self) -> None:
        """Apply everything pending in batches (group commit), checking for a stop and renewing
        the lease between batches so that a long backlog never lets the lease lapse."""
        renew_every = self.lease.ttl.total_seconds() / RENEW_FRACTION
        renewed = time.monotonic()
        while not self.stop.is_set():
            if time.monotonic() - renewed > renew_every:
                if not self.lease.acquire():
                    logger.warning("leader lease lost while applying a backlog; standing by")
                    self.stop_scheduler()
                    return
                renewed = time.monotonic()
            if self.timers_due.is_set():  # deadlines falling due during a backlog wait one batch at most
                self._fire_due_timers()
            batch = self.runtime.executor.apply_batch(BATCH)
            if len(batch) < BATCH and outbox.dispatch_due(self.runtime.store, self.runtime.policy) == 0:
                return

    def _hold_lease(self) -> None:
        was = self.lease.held
        held = self.lease.acquire()
        if held and not was:
            logger.info("leader lease taken ({}); this daemon runs the scheduler", self.lease.holder)
            deliveries.release_claims(self.runtime.store)  # what the previous leader was sending goes again
            self._start_scheduler()
        elif was and not held:
            logger.warning("leader lease lost; standing by")
            self.stop_scheduler()
        elif not held and not was and not self._said_standby:
            holder = lease.current_holder(self.runtime.store)
            logger.info("standing by: {} holds the leader lease", holder[0] if holder else "another daemon")
            self._said_standby = True

    # ---- scheduler

    def _start_scheduler(self) -> None:
        policy = self.runtime.policy
        self.scheduler = scheduler = BackgroundScheduler(
            timezone=policy.tz, job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1})
        scheduler.start()
        scheduler.add_job(self.on_sweep, "interval", seconds=SWEEP_EVERY, id="sweep", replace_existing=True)
        self.on_sweep()
        self._plan_schedules()
        self._plan_timers()
        self._plan_digest()

    def stop_scheduler(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None

    def _plan_schedules(self) -> None:
        """One date job per schedule at its next occurrence; logs what comes next."""
        scheduler = self.scheduler
        if scheduler is None:  # standing by: no scheduler to plan on
            return
        policy, now = self.runtime.policy, clock.now()
        for job in scheduler.get_jobs():
            if job.id.startswith("schedule:") and job.id[len("schedule:"):] not in policy.schedules:
                job.remove()
        for schedule in policy.schedules.values():
            at = schedules.trigger_for(policy, schedule).get_next_fire_time(None, now)
            if at is None:
                continue
            scheduler.add_job(self.on_schedule, "date", run_date=clock.to_wall(at), args=[schedule.id],
                              id=f"schedule:{schedule.id}", replace_existing=True)
        for schedule, at, host in schedules.upcoming(self.runtime.store, policy, now):
            logger.bind(schedule=schedule.id, workflow=schedule.start, host=host).info(
                "next {}: {} (host {})", schedule.id, at.astimezone(policy.tz).isoformat(), host or "-")

    def _plan_timers(self) -> None:
        """One date job, at the earliest armed deadline: however many timers are armed, the
        scheduler holds one job for them, and the main loop fires every due timer at once."""
        if self.scheduler is None:
            return
        self.alarm = alarm = alarms.soonest(self.runtime.store)
        if alarm is None:
            if self.scheduler.get_job("timers") is not None:
                self.scheduler.remove_job("timers")
            return
        self.scheduler.add_job(self.on_timers, "date", run_date=clock.to_wall(max(alarm, clock.now())),
                               id="timers", replace_existing=True)

    def _plan_digest(self) -> None:
        """One date job at the next daily digest (engine.notify.digest), when the config has one."""
        if self.scheduler is None:
            return
        at = digest.next_at(self.runtime.policy, clock.now())
        if at is None:
            if self.scheduler.get_job("digest") is not None:
                self.scheduler.remove_job("digest")
            return
        self.scheduler.add_job(self.on_digest, "date", run_date=clock.to_wall(at), id="digest", replace_existing=True)

    # ---- job callbacks (APScheduler threads, from its in-memory job store: bound methods, nothing
    # pickled; they only record what fell due and wake the loop)

    def on_schedule(self, schedule_id: str) -> None:
        try:
            schedules.fire_due(self.runtime.store, self.runtime.policy)
        finally:
            self.wake.set()
            if self.scheduler is not None:
                self._plan_schedules()

    def on_digest(self) -> None:
        try:
            digest.send_due(self.runtime.store, self.runtime.policy, clock.now())
        finally:
            self._plan_digest()

    def on_timers(self) -> None:
        self.timers_due.set()
        self.wake.set()

    def on_sweep(self) -> None:
        """Fire whatever is due (catch-up after downtime, or a lost job)."""
        schedules.fire_due(self.runtime.store, self.runtime.policy)
        digest.send_due(self.runtime.store, self.runtime.policy, clock.now())
        self.on_timers()

    def _fire_due_timers(self) -> None:
        """Queue the trigger of every armed timer that is due, in one transaction; plan the next alarm."""
        self.timers_due.clear()
        now = clock.now()
        fired = alarms.fire_deadlines(self.runtime.store, self.runtime.policy, now)
        tz = self.runtime.policy.tz
        for row in fired:
            late = (now - row["due_at"]).total_seconds()
            log = logger.bind(instance=row["instance"], workflow=row["workflow"], trigger=row["trigger"])
            due = row["due_at"].astimezone(tz).isoformat()
            if late > 60:
                log.warning("deadline of {} in state {} (due {}) fires late by {}", row["instance"], row["state"], due, timers.late_text(late))
            else:
                log.info("deadline of {} in state {} (due {}) fires", row["instance"], row["state"], due)
        self._plan_timers()

    def _after_event(self, outcome: Outcome) -> None:
        if any(self.alarm is None or timer.due_at < self.alarm or self._reminds(timer) for timer in outcome.armed):
            self._plan_timers()

    def _reminds(self, timer: timers.Timer) -> bool:
        """Does the timer's deadline have reminders (which come before it, so maybe before the alarm)?"""
        spec = self.runtime.policy.workflows.get(timer.workflow)
        state = spec.states.get(timer.state) if spec else None
        return bool(state and state.deadline and state.deadline.remind)

    # ---- hot reload

    def _maybe_reload(self) -> None:
        old = self.runtime.policy
        if not self.watcher.changed(old):
            return
        try:
            new = load_policy(self.config_path)
        except PolicyError as exc:
            for problem in exc.problems:
                logger.error("policy edit refused: {}", problem)
            logger.error("keeping policy {} ({} problem(s) in the edit)", old.digest[:12], len(exc.problems))
            return
        if new.digest == old.digest:
            return
        url = resolve_url(new.config.store, new.root)
        if url != self.runtime.store.url:  # the store is the daemon's connection, not policy
            logger.warning("store changed in the config ({} -> {}): still using {}; restart the daemon to switch stores",
                           safe_url(self.runtime.store.url), safe_url(url), safe_url(self.runtime.store.url))
        self.runtime.set_policy(new)
        logger.bind(policy=new.digest[:12]).info("policy reloaded: {} (was {}); running instances keep their versions",
                                                 new.digest[:12], old.digest[:12])
        if self.scheduler is not None:
            self._plan_schedules()
            self._plan_digest()


def _anchor_every(store: SqlStore) -> float:
    """Seconds between audit anchors: the store's own `audit` paths, attached by anchors.open_store."""
    audit: anchors.AuditContext | None = getattr(store, "audit", None)
    if audit is None:
        raise RuntimeError(f"store {safe_url(store.url)} was opened without its audit key (anchors.open_store)")
    return audit.paths.every


def _serve_http(runtime: Runtime) -> ServerThread | None:
    """Start the HTTP API thread unless `http.enabled: false` (engine.server.app.ServerThread)."""
    http = runtime.policy.config.http
    if not http.enabled:
        return None
    from engine.server.app import ServerThread
    from engine.service import Deployment

    thread = ServerThread(Deployment(runtime), http.host, http.port)
    thread.start()
    deadline = time.monotonic() + 10
    while not thread.server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    if not thread.server.started:
        logger.warning("HTTP API not serving: could not listen on {}:{}; the daemon runs without it", http.host, http.port)
        thread.stop(timeout=1)
        return None
    logger.info("HTTP API on http://{}:{}/api/v1 (health /healthz, metrics /metrics)", http.host, http.port)
    return thread


def _short(exc: Exception) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.splitlines()[0][:200]
