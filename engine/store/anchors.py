"""The history's secret key and its anchors: what keeps the audit honest outside the database.

* The key file (JSON, mode 0600) holds the HMAC key of the history chain, the store id it
  belongs to, and `keyed_from`, the first history row it keys (rows written before the store
  got a key stay plain sha256). It is generated on first use. Someone with database access but
  not this file cannot recompute a chain that verifies.
* The anchor file gets one JSON line {"at", "store_id", "seq", "hash"} from the daemon every
  `audit.anchor_every` seconds (when the head moved) and when it stops; the same anchor goes to
  the log (the `anchor` key of the JSON log line). `coopflow audit verify` checks every anchor
  of the store against the chain, so a cut tail with a forged head, or a wiped history, shows.
* A store that the key file or the anchors know, found missing or empty, is refused on open
  (StoreWiped) instead of being silently created again.

Defaults: beside a SQLite store file (<db>.audit-key, <db>.anchors), otherwise beside
config.yaml (coopflow.audit-key, coopflow.anchors); `audit:` in config.yaml overrides them.
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from loguru import logger
from sqlalchemy import select, text

from engine.policy.spec import AuditSpec
from engine.store import history
from engine.store.database import SqlStore, StoreError, StoreRefused, meta

KEY_FORMAT = "coopflow-audit-key/1"
STORE_ID_KEY = "store_id"
KEYED_FROM_KEY = "history_keyed_from"


class StoreWiped(StoreRefused):
    """A store that existed (its key file or anchors say so) is missing, empty or replaced:
    the daemon stops with this message instead of waiting for the store to come back."""


@dataclass(frozen=True)
class AuditPaths:
    key_file: Path
    anchor_file: Path
    every: float


@dataclass(frozen=True)
class KeyFile:
    store_id: str
    keyed_from: int
    key: bytes

    @property
    def keying(self) -> history.Keying:
        return history.Keying(self.key, self.keyed_from)


@dataclass(frozen=True)
class Anchor:
    at: str
    store_id: str
    seq: int
    hash: str
    source: str  # file:line, for messages

    def as_json(self) -> dict:
        return {"at": self.at, "store_id": self.store_id, "seq": self.seq, "hash": self.hash}


@dataclass
class AuditContext:
    """What `attach` found: attached to the SqlStore as `store.audit`."""

    paths: AuditPaths
    store_id: str
    keying: history.Keying
    last_anchor: tuple[int, str] | None = None


def paths_for(url: str, spec: AuditSpec, root: Path) -> AuditPaths:
    """The key and anchor files of a store (config's `audit:` section, else the defaults)."""
    base = _sqlite_file(url)
    default_dir, stem = (base.parent, base.name) if base else (Path(root), "coopflow")

    def resolve(configured: str | None, suffix: str) -> Path:
        if configured:
            path = Path(configured).expanduser()
            return path if path.is_absolute() else (Path(root) / path).resolve()
        return (default_dir / f"{stem}.{suffix}" if base else default_dir / f"{stem}.{suffix}").resolve()

    return AuditPaths(resolve(spec.key_file, "audit-key"), resolve(spec.anchor_file, "anchors"), spec.anchor_every)


def _sqlite_file(url: str) -> Path | None:
    prefix = "sqlite:///"
    if url.startswith(prefix) and url != "sqlite:///:memory:":
        return Path(url[len(prefix):].split("?", 1)[0])
    return None


# --------------------------------------------------------------------------- the key file


def read_key_file(path: str | os.PathLike) -> KeyFile:
    """Read (and cache, until the file changes) a key file; StoreError when unreadable or malformed."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise StoreError(f"cannot read the audit key file {path}: {exc.strerror}") from None
    return _read_key_file(str(path), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=16)
def _read_key_file(path: str, _mtime: int, _size: int) -> KeyFile:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("format") != KEY_FORMAT:
            raise ValueError(f"not a {KEY_FORMAT} file")
        found = KeyFile(str(data["store_id"]), int(data["keyed_from"]), bytes.fromhex(data["key"]))
        if len(found.key) < 16:
            raise ValueError("key shorter than 16 bytes")
    except OSError as exc:
        raise StoreError(f"cannot read the audit key file {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StoreError(f"the audit key file {path} is malformed: {exc}") from None
    if os.name == "posix" and os.stat(path).st_mode & 0o077:
        logger.warning("audit key file {} is readable by others: chmod 600 it", path)
    return found


def _create_key_file(path: Path, store_id: str, keyed_from: int) -> KeyFile | None:
    """Write a new key file (0600, never over an existing one); None when it already exists."""
    found = KeyFile(store_id, keyed_from, secrets.token_bytes(32))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"format": KEY_FORMAT, "store_id": store_id, "keyed_from": keyed_from, "key": found.key.hex()}, f)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    return found


# --------------------------------------------------------------------------- anchors


def read_anchors(*paths: str | os.PathLike) -> list[Anchor]:
    """Anchors from anchor files or JSON log files (lines with an `anchor` key); missing files give none."""
    found: list[Anchor] = []
    for path in paths:
        try:
            lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise StoreError(f"cannot read anchors from {path}: {exc.strerror}") from None
        for number, line in enumerate(lines, 1):
            try:
                obj = json.loads(line)
                obj = obj.get("anchor", obj) if isinstance(obj, dict) else None
                if not isinstance(obj, dict):  # not an anchor (a str: a log sink that wrote the bound dict as its str())
                    continue
                found.append(Anchor(str(obj["at"]), str(obj["store_id"]), int(obj["seq"]), str(obj["hash"]),
                                    f"{path}:{number}"))
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # not an anchor line (other log lines, a torn last line)
    return found


def write_anchor(store: SqlStore) -> Anchor | None:
    """Append the store's current head to its anchor file and the log; None when unchanged or empty."""
    context: AuditContext | None = getattr(store, "audit", None)
    if context is None:
        return None
    value = store.meta_value(history.HEAD_KEY)
    seq, digest = history.head_of(value)
    if seq == 0 or context.last_anchor == (seq, digest):
        return None
    anchor = Anchor(datetime.now(UTC).isoformat(), context.store_id, seq, digest, str(context.paths.anchor_file))
    path = context.paths.anchor_file
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(anchor.as_json()) + "\n")
        f.flush()
        os.fsync(f.fileno())
    context.last_anchor = (seq, digest)
    logger.bind(anchor=anchor.as_json()).info("audit anchor: history row {} {} of store {}", seq, digest[:12], context.store_id)
    return anchor


# --------------------------------------------------------------------------- opening a store


def open_store(url: str, spec: AuditSpec, root: Path, **kwargs) -> SqlStore:
    """Open (and migrate) a store and attach its key; refuse one that was wiped (StoreWiped)."""
    paths = paths_for(url, spec, root)
    db_file = _sqlite_file(url)
    if db_file is not None and not db_file.exists():
        known = _known_store(paths)
        if known:
            raise StoreWiped(f"store {db_file} is missing, but {known}: restore it from a backup "
                             f"(to start a new store on purpose, move {paths.key_file} and {paths.anchor_file} away)")
    store = SqlStore(url, **kwargs)
    try:
        attach(store, paths)
    except BaseException:
        store.dispose()
        raise
    return store


def _known_store(paths: AuditPaths) -> str | None:
    """What says a store existed here: the key file or an anchor (None when nothing does)."""
    anchors = read_anchors(paths.anchor_file)
    if anchors:
        last = anchors[-1]
        return f"the anchors ({last.source}) recorded its history up to row {last.seq} at {last.at}"
    if paths.key_file.exists():
        try:
            keyed = read_key_file(paths.key_file)
        except StoreError:
            return f"its key file {paths.key_file} exists"
        if keyed.keyed_from > 1:
            return f"its key file {paths.key_file} was made when it had {keyed.keyed_from - 1} history rows"
    return None


def attach(store: SqlStore, paths: AuditPaths) -> AuditContext:
    """Find or make the store's key (in one transaction, serialised with history appends) and use it."""
    with store.explained_errors(), store.transaction() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": history.ADVISORY_LOCK_ID})
        stored = dict(conn.execute(select(meta.c.key, meta.c.value).where(
            meta.c.key.in_([STORE_ID_KEY, history.HEAD_KEY]))).all())
        store_id = stored.get(STORE_ID_KEY)
        head_seq = history.head_of(stored.get(history.HEAD_KEY))[0]
        anchors = read_anchors(paths.anchor_file)
        keyed = read_key_file(paths.key_file) if paths.key_file.exists() else None
        if keyed is None and store_id is None:
            if head_seq == 0 and anchors:
                last = anchors[-1]
                raise StoreWiped(f"store {store.url} is empty, but the anchors ({last.source}) recorded its history up to "
                                 f"row {last.seq} at {last.at}: restore it from a backup (to start a new store on purpose, "
                                 f"move {paths.anchor_file} away)")
            keyed = _create_key_file(paths.key_file, uuid.uuid4().hex, head_seq + 1) or read_key_file(paths.key_file)
        if keyed is None:
            raise StoreError(f"the history of store {store.url} is keyed (store id {store_id}) but its key file "
                             f"{paths.key_file} is missing: restore it from the backup, or name it in config.yaml audit.key_file")
        mine = [a for a in anchors if a.store_id == keyed.store_id]
        if store_id is None:
            recorded = max((a.seq for a in mine), default=0)
            if keyed.keyed_from != head_seq + 1 or recorded > head_seq:  # else: a fresh store (or a crash right after keying)
                raise StoreWiped(f"store {store.url} is not the store of key file {paths.key_file} (store id {keyed.store_id}, "
                                 f"keyed from history row {keyed.keyed_from}"
                                 + (f", anchored up to row {recorded}" if recorded else "")
                                 + "): it was wiped or replaced; restore it from a backup")
            conn.execute(meta.insert(), [{"key": STORE_ID_KEY, "value": keyed.store_id},
                                         {"key": history.KEY_FILE_KEY, "value": str(paths.key_file)},
                                         {"key": KEYED_FROM_KEY, "value": str(keyed.keyed_from)}])
            if head_seq:
                logger.warning("store {} had {} history rows without a key: its chain is keyed from row {} on",
                               store.url, head_seq, keyed.keyed_from)
        elif store_id != keyed.store_id:
            raise StoreWiped(f"store {store.url} has store id {store_id}, but key file {paths.key_file} belongs to "
                             f"store {keyed.store_id}: the store was replaced, or audit.key_file names another store's key")
        elif head_seq == 0 and mine:
            raise StoreWiped(f"store {store.url} has no history, but the anchors ({mine[-1].source}) recorded it up to "
                             f"row {mine[-1].seq} at {mine[-1].at}: its history was wiped; restore it from a backup")
    context = AuditContext(paths, keyed.store_id, keyed.keying)
    history.use_key(store.engine, keyed.keying)
    store.audit = context
    return context
