"""The check cache: validated workflow files kept by content hash, so `coopflow check` re-reads
only what changed (as mypy does).

An entry is one pickled file per workflow file, named by the SHA-256 of the file's bytes, its
name in the policy, and a fingerprint of the engine code that parses and checks (so an upgrade
never reuses an old verdict). It holds the validated `WorkflowSpec` (pickled, unpickled only when needed: `CachedSpec`), what
other files' checks need of it (its interface and emitted events), and the context (config
file, the other workflows' ids, fields and starters, the code) under which the file last passed
every check without a problem. A file found with the same bytes is not parsed again; if its
context is also unchanged its checks are skipped. Files with problems are never cached, so
every problem is reported on every run, at its position: a cached file's `Document` is parsed
lazily (`LazyDocument`) only if a problem has to be placed in it.

Where: `$COOPFLOW_CHECK_CACHE` (a folder, or `off`), else `$XDG_CACHE_HOME/coopflow/check`,
else `~/.cache/coopflow/check`; one sub-folder per policy folder. An unreadable or corrupt
entry is ignored and rewritten; a cache folder that cannot be written only costs speed.
Only `coopflow check` uses the cache: the daemon and every other command load the full way.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from engine.exceptions import PolicyProblem
from engine.policy.spec import ConfigSpec, EmitAction, WorkflowSpec
from engine.policy.yamlsource import Document, load_document

CACHE_ENV = "COOPFLOW_CHECK_CACHE"
_FORMAT = b"coopflow-check-cache-1"


def _code_fingerprint() -> bytes:
    """A hash of the sources that parse and check policy files (engine/policy, engine/rules)."""
    digest = hashlib.sha256(_FORMAT)
    engine = Path(__file__).resolve().parent.parent
    for folder in ("policy", "rules"):
        for source in sorted((engine / folder).rglob("*.py")):  # sub-packages too (spec/, checks/, expr/)
            digest.update(source.relative_to(engine).as_posix().encode() + b"\0" + source.read_bytes())
    return digest.digest()


def cache_folder(config_path: Path) -> Path | None:
    """The cache folder for the policy at `config_path`, or None when caching is off."""
    chosen = os.environ.get(CACHE_ENV, "").strip()
    if chosen.lower() in ("off", "0", "no", "false"):
        return None
    if chosen:
        base = Path(chosen)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "coopflow" / "check"
    policy = hashlib.sha256(str(config_path.resolve().parent).encode()).hexdigest()[:16]
    return base / policy


class LazyDocument:
    """A cached file's stand-in for `Document`: parsed only when a problem must be placed in it."""

    def __init__(self, path: Path, file: str):
        self.path, self.file = path, file

    @cached_property
    def _doc(self) -> Document:
        return load_document(self.path, self.file)

    @property
    def data(self) -> Any:
        return self._doc.data

    def where(self, loc: tuple) -> tuple[int, int]:
        return self._doc.where(loc)

    def problem(self, loc: tuple, message: str) -> PolicyProblem:
        return self._doc.problem(loc, message)


def interface(spec: WorkflowSpec | CachedSpec) -> str:
    """What other files' checks see of a workflow: its id, fields, starters and initial state."""
    if isinstance(spec, CachedSpec):
        return spec.interface
    return repr((spec.id, spec.fields, spec.started_by, spec.initial))


def emits_of(spec: WorkflowSpec | CachedSpec) -> set[str]:
    """The events a workflow emits (event rules are checked against them)."""
    if isinstance(spec, CachedSpec):
        return spec.emits
    return {a.emit for t in spec.transitions for a in t.then if isinstance(a, EmitAction)}


class CachedSpec:
    """A cached WorkflowSpec: id, interface and emitted events at hand, the spec itself unpickled
    (and, with `config`, its defaults typed) only when something asks for more."""

    def __init__(self, entry: dict[str, Any], config: ConfigSpec | None = None):
        self.entry, self.config = entry, config
        self.id, self.interface, self.emits = entry["id"], entry["interface"], entry["emits"]
        self.started_by, self.initial = entry["started_by"], entry["initial"]

    @cached_property
    def fields(self) -> dict:
        """The fields (defaults typed with `config`), without unpickling the whole spec."""
        raw = pickle.loads(self.entry["fields"])
        if self.config is None:
            return raw
        from engine.rules.fields import typed_defaults

        return typed_defaults(raw, self.config)[0]

    def typed(self, config: ConfigSpec) -> CachedSpec:
        """The same entry, its defaults typed on first use (for a file that passed unchanged)."""
        return CachedSpec(self.entry, config)

    @cached_property
    def spec(self) -> WorkflowSpec:
        spec = pickle.loads(self.entry["spec"])
        return spec if self.config is None else spec.model_copy(update={"fields": self.fields})

    def __getattr__(self, name: str) -> Any:  # only for what is not set above
        return getattr(self.spec, name)

    def __eq__(self, other: object) -> bool:
        return self.spec == (other.spec if isinstance(other, CachedSpec) else other)

    # Unhashable: a class defining __eq__ without __hash__ gets __hash__ = None from Python itself.


class CheckCache:
    """The entries of one policy folder; `hits` counts files not parsed again in this run."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.code = _code_fingerprint()
        self.hits = 0
        self._keys: dict[str, str] = {}  # display name -> entry key of this run
        self._entries: dict[str, dict[str, Any]] = {}

    @classmethod
    def for_policy(cls, config_path: Path) -> CheckCache | None:
        folder = cache_folder(config_path)
        return cls(folder) if folder is not None else None

    def _key(self, file: str, content: bytes) -> str:
        return hashlib.sha256(self.code + file.encode() + b"\0" + content).hexdigest()

    def lookup(self, file: str, content: bytes) -> CachedSpec | None:
        """The validated spec cached for these bytes, or None (then the file is parsed)."""
        key = self._keys[file] = self._key(file, content)
        try:
            with open(self.folder / f"{key}.pickle", "rb") as handle:
                entry = pickle.load(handle)
            found = CachedSpec(entry)
            if not (isinstance(entry["spec"], bytes) and isinstance(entry["fields"], bytes) and isinstance(found.emits, set)):
                return None
        except (OSError, pickle.PickleError, EOFError, KeyError, TypeError, AttributeError, ValueError, ImportError):
            return None
        self._entries[key] = entry
        self.hits += 1
        return found

    def context(self, config_bytes: bytes, workflows: Mapping[str, WorkflowSpec | CachedSpec]) -> str:
        """What a workflow's checks depend on beyond its own file: the config, the code, and
        the other workflows' ids, fields and starters (start actions and rules check these)."""
        digest = hashlib.sha256(self.code + config_bytes)
        for wid in sorted(workflows):
            digest.update(interface(workflows[wid]).encode() + b"\0")
        return digest.hexdigest()

    def passed(self, file: str, context: str) -> bool:
        """Did this file pass every check, with these bytes, under this context?"""
        entry = self._entries.get(self._keys.get(file, ""))
        return entry is not None and entry.get("passed") == context

    def save(self, files: Iterable[tuple[str, WorkflowSpec | CachedSpec]], context: str) -> None:
        """Record every file as passed under `context` (call only when the whole check passed)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return
        for file, spec in files:
            key = self._keys.get(file)
            if key is None or self._entries.get(key, {}).get("passed") == context:
                continue
            entry = {**spec.entry, "passed": context} if isinstance(spec, CachedSpec) else {
                "id": spec.id, "interface": interface(spec), "emits": emits_of(spec), "passed": context,
                "fields": pickle.dumps(spec.fields, protocol=pickle.HIGHEST_PROTOCOL),
                "started_by": spec.started_by, "initial": spec.initial,
                "spec": pickle.dumps(spec, protocol=pickle.HIGHEST_PROTOCOL)}
            try:
                with tempfile.NamedTemporaryFile("wb", dir=self.folder, delete=False, suffix=".tmp") as handle:
                    pickle.dump(entry, handle, protocol=pickle.HIGHEST_PROTOCOL)
                os.replace(handle.name, self.folder / f"{key}.pickle")
            except OSError:
                return
