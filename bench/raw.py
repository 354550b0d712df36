"""The raw database beside the executor: bare commits, and the executor's own rows written by hand.

* `RawCommit`: a bare transaction updating one row and inserting one (stdlib sqlite3, WAL,
  synchronous=FULL, or psycopg on one connection): the database's commit rate.
* `RawRows`: the rows the executor writes for the benchmark's workload (an `information_exchange`
  request: start, send, acknowledge, answer), with the same columns, JSON and HMAC-sha256 chain,
  written without SQLAlchemy and without any decision: per transaction the inbox rows are read
  once, then each table is written with ONE executemany (history, inbox outcomes, instances,
  timers and their reminders armed and disarmed, outbox) and the chain head once. `batch=1` is one event per commit
  (its inbox row submitted in the same transaction, like `submit_*(apply=True)`); `batch=100`
  submits 100 events in one transaction and applies them in the next (like `drain(batch=100)`;
  the apply transaction is the measured part).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta

from common import Runner

KEY = b"k" * 32
SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (id INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL, kind TEXT NOT NULL, instance TEXT NOT NULL,
  workflow TEXT, trigger TEXT, actor TEXT NOT NULL, payload {json} NOT NULL, status TEXT NOT NULL, outcome TEXT,
  submitted_at {ts} NOT NULL, applied_at {ts});
CREATE INDEX IF NOT EXISTS ix_inbox_pending ON inbox (status, id);
CREATE TABLE IF NOT EXISTS instances (id TEXT PRIMARY KEY, workflow TEXT NOT NULL, version TEXT NOT NULL, state TEXT NOT NULL,
  fields {json} NOT NULL, final INTEGER NOT NULL, seq INTEGER NOT NULL, created_at {ts} NOT NULL, updated_at {ts} NOT NULL,
  state_entered_at {ts} NOT NULL);
CREATE TABLE IF NOT EXISTS history (seq INTEGER PRIMARY KEY, instance TEXT NOT NULL, inbox_id BIGINT, at {ts} NOT NULL,
  kind TEXT NOT NULL, workflow TEXT, trigger TEXT, from_state TEXT, to_state TEXT, actor TEXT, outcome TEXT NOT NULL,
  reason TEXT, data {json} NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS timers (id TEXT PRIMARY KEY, instance TEXT NOT NULL, workflow TEXT NOT NULL, state TEXT NOT NULL,
  trigger TEXT NOT NULL, due_at {ts} NOT NULL, status TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ix_timers_instance ON timers (instance, status);
CREATE TABLE IF NOT EXISTS reminders (id TEXT PRIMARY KEY, timer TEXT NOT NULL, instance TEXT NOT NULL, workflow TEXT NOT NULL,
  state TEXT NOT NULL, due_at {ts} NOT NULL, deadline_at {ts} NOT NULL, status TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ix_reminders_instance ON reminders (instance, status);
CREATE TABLE IF NOT EXISTS outbox (id {serial} PRIMARY KEY, instance TEXT NOT NULL, kind TEXT NOT NULL, payload {json} NOT NULL,
  status TEXT NOT NULL, attempts INTEGER NOT NULL, next_at {ts} NOT NULL, created_at {ts} NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# (trigger, state after, actor, values, timer armed in the new state, outbox actions)
STEPS = [
    (None, "drafted", "dic.focal_point", {"requester": "dic", "recipient": "police", "subject": "Yêu cầu", "dispatch_no": "1/STTTT"}, False, ()),
    ("send", "sent", "dic.focal_point", {}, True, ("notify",)),
    ("acknowledge", "in_progress", "police.focal_point", {}, True, ()),
    ("answer", "answered", "police.focal_point", {"answer": "Công văn trả lời"}, False, ("notify", "emit")),
]


def _sql(statement: str, pg: bool) -> str:
    return statement.replace("?", "%s").replace("%s /*json*/", "%s::json") if pg else statement.replace(" /*json*/", "")


class RawCommit(Runner):
    """A bare transaction (UPDATE one row + INSERT one), `batch` of them per commit."""

    def __init__(self, conn, pg: bool, batch: int = 1):
        self.conn, self.pg, self.batch = conn, pg, batch
        conn.execute("CREATE TABLE IF NOT EXISTS raw_counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
        conn.execute(f"CREATE TABLE IF NOT EXISTS raw_log (id {'BIGSERIAL' if pg else 'INTEGER'} PRIMARY KEY, at REAL NOT NULL, payload TEXT NOT NULL)")
        conn.execute("INSERT INTO raw_counter VALUES (1, 0) ON CONFLICT DO NOTHING")
        if pg:
            conn.commit()
        self.up, self.ins = "UPDATE raw_counter SET n = n + 1 WHERE id = 1", _sql("INSERT INTO raw_log (at, payload) VALUES (?, ?)", pg)

    def _commit(self) -> None:
        self.conn.commit() if self.pg else self.conn.execute("COMMIT")

    def work(self, budget: float) -> int:
        done, start, conn = 0, time.perf_counter(), self.conn
        while time.perf_counter() - start < budget:
            if not self.pg:
                conn.execute("BEGIN IMMEDIATE")
            for _ in range(self.batch):
                conn.execute(self.up)
                conn.execute(self.ins, (time.time(), '{"k": "v"}'))
            self._commit()
            done += self.batch
        return done

    def close(self) -> None:
        self.conn.close()


class RawRows(RawCommit):
    """The executor's rows for the workload, one executemany per table per transaction (see the module)."""

    def __init__(self, conn, pg: bool, batch: int = 1):
        self.conn, self.pg, self.batch = conn, pg, batch
        schema = SCHEMA.format(json="JSON" if pg else "TEXT", ts="TIMESTAMPTZ" if pg else "TEXT", serial="BIGSERIAL" if pg else "INTEGER")
        for statement in filter(str.strip, schema.split(";")):
            conn.execute(statement.replace("INTEGER PRIMARY KEY, key", "BIGSERIAL PRIMARY KEY, key") if pg else statement)
        if pg:
            conn.commit()
        self.n, self.seq, self.prev = 0, 0, "0" * 64
        q = lambda s: _sql(s, pg)  # noqa: E731
        self.submit = q("INSERT INTO inbox (key, kind, instance, workflow, trigger, actor, payload, status, submitted_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ? /*json*/, 'pending', ?)")
        self.pending = q("SELECT id, kind, instance, trigger, actor, payload FROM inbox WHERE status = 'pending' ORDER BY id LIMIT ?")
        self.writes = [
            ("history", q("INSERT INTO history VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? /*json*/, ?, ?)")),
            ("marks", q("UPDATE inbox SET status = ?, outcome = ?, applied_at = ? WHERE id = ?")),
            ("starts", q("INSERT INTO instances VALUES (?, ?, ?, ?, ? /*json*/, ?, ?, ?, ?, ?)")),
            ("moves", q("UPDATE instances SET state = ?, fields = ? /*json*/, final = ?, seq = ?, updated_at = ?, state_entered_at = ? WHERE id = ?")),
            ("arms", q("INSERT INTO timers VALUES (?, ?, ?, ?, ?, ?, ?)")),
            ("reminders", q("INSERT INTO reminders VALUES (?, ?, ?, ?, ?, ?, ?, ?)")),
            ("disarms", q("UPDATE timers SET status = 'disarmed' WHERE instance = ? AND status = 'armed'")),
            ("reminder_disarms", q("UPDATE reminders SET status = 'disarmed' WHERE instance = ? AND status = 'armed'")),
            ("outbox", q("INSERT INTO outbox (instance, kind, payload, status, attempts, next_at, created_at) VALUES (?, ?, ? /*json*/, 'pending', 0, ?, ?)")),
        ]
        if batch == 1:  # disarm the instance's older timers, then arm the new one
            names = [n for n, _ in self.writes]
            self.writes.insert(names.index("arms"), self.writes.pop(names.index("disarms")))
            self.writes.insert(names.index("arms") + 1, self.writes.pop(names.index("reminder_disarms")))
        # (batch > 1: inserts first; in this workload an instance's last event of a batch leaves nothing armed)
        self.head = q("INSERT INTO meta VALUES ('head', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value")

    def _at(self, value: datetime):
        return value if self.pg else value.replace(tzinfo=None).isoformat(" ")

    def _begin(self) -> None:
        if not self.pg:
            self.conn.execute("BEGIN IMMEDIATE")

    def _submit(self, cur, events: int) -> None:
        rows = []
        for _ in range(events):
            i, step = divmod(self.n, 4)
            trigger, _, actor, values, _, _ = STEPS[step]
            rows.append((f"auto:{self.n}", "fire" if trigger else "start", f"information_exchange-raw{i}", None if trigger else "information_exchange",
                         trigger, actor, json.dumps({"set": values}), self._at(datetime.now(UTC))))
            self.n += 1
        cur.executemany(self.submit, rows)

    def _apply(self, cur, events: int) -> None:
        cur.execute(self.pending, (events,))
        now = datetime.now(UTC)
        at = self._at(now)
        out: dict[str, list] = {name: [] for name, _ in self.writes}
        fields: dict[str, dict] = {}
        for inbox_id, kind, instance, trigger, actor, payload in cur.fetchall():
            payload = payload if isinstance(payload, dict) else json.loads(payload)
            step = next(k for k, s in enumerate(STEPS) if s[0] == trigger)
            _, state, _, _, arms, actions = STEPS[step]
            fields[instance] = {**fields.get(instance, {}), **payload["set"]}
            self.seq += 1
            content = {"seq": self.seq, "instance": instance, "inbox_id": inbox_id, "at": now.isoformat(), "kind": kind,
                       "workflow": "information_exchange", "trigger": trigger, "from_state": STEPS[step - 1][1] if step else None,
                       "to_state": state, "actor": actor, "outcome": "applied", "reason": None,
                       "data": {"set": payload["set"], "audit": {"seq": step + 1, "fields": fields[instance]}}}
            digest = hmac.new(KEY, (self.prev + json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))).encode(),
                              hashlib.sha256).hexdigest()
            out["history"].append((*[content[k] if k != "at" else at for k in list(content)[:12]], json.dumps(content["data"]), self.prev, digest))
            self.prev = digest
            out["marks"].append(("applied", f"applied: {state}", at, inbox_id))
            row = (state, json.dumps(fields[instance]), int(state == "answered"), step + 1, at, at)
            if kind == "start":
                out["starts"].append((instance, "information_exchange", "v1", state, row[1], 0, 1, at, at, at))
            else:
                out["moves"].append((*row, instance))
                out["disarms"].append((instance,))
                out["reminder_disarms"].append((instance,))
            if arms:
                timer = f"{instance}:{step + 1}"
                out["arms"].append((timer, instance, "information_exchange", state, "overdue", self._at(now + timedelta(days=5)), "armed"))
                if state == "in_progress":  # its deadline has a reminder (`remind:` in the shipped workflow)
                    out["reminders"].append((f"{timer}:remind:1", timer, instance, "information_exchange", state,
                                             self._at(now + timedelta(days=4)), self._at(now + timedelta(days=5)), "armed"))
            out["outbox"] += [(instance, action, json.dumps({"source": {"instance": instance, "state": state}}), at, at) for action in actions]
        for name, statement in self.writes:
            if out[name]:
                cur.executemany(statement, out[name])
        cur.execute(self.head, (f"{self.seq}:{self.prev}",))

    def work(self, budget: float) -> int:
        done, start = 0, time.perf_counter()
        cur = self.conn.cursor()
        while time.perf_counter() - start < budget:
            if self.batch == 1:  # submitted and applied in one transaction
                self._begin()
                self._submit(cur, 1)
                self._apply(cur, 1)
                self._commit()
            else:
                self._begin()
                self._submit(cur, self.batch)
                self._commit()
                with self.measured():
                    self._begin()
                    self._apply(cur, self.batch)
                    self._commit()
            done += self.batch
        return done


def sqlite3_conn(path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def psycopg_conn(conninfo: str, schema: str):
    import psycopg

    return psycopg.connect(conninfo, options=f"-csearch_path={schema}")
