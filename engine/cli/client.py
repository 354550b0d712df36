"""The CLI as a client of the HTTP API: the saved login, one request, the server's errors.

Only the standard library is loaded here — not httpx (importing it and building its TLS context
costs ~170 ms of CPU on the project machine, more than the whole 150 ms budget of a remote
command), not even http.client (its `email` parser and `ssl` are ~45 ms more: engine/cli/http1.py
does the one exchange a command needs on a socket; bench/cli.py measures all three) — never
SQLAlchemy, pydantic or the policy. The client connects directly: HTTP(S)_PROXY variables are not used.

* `credentials_path()` — `$XDG_CONFIG_HOME/coopflow/credentials` (default `~/.config/...`),
  a JSON file written with mode 0600 in a 0700 folder: server, token, token id, person, time zone.
* `remote(settings, actor)` — the server a command goes to, or None for the local mode
  (the precedence is in engine/cli/main.py's docstring).
* `Remote.call(method, path, ...)` — the JSON answer, or `ClientError`: the server's
  problem+json `detail` as a one-line message, with the CLI's exit code (refused 1, usage 2,
  server unreachable 1 "server unavailable: ...", server bug 3).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ENV_SERVER = "COOPFLOW_SERVER"
ENV_TOKEN = "COOPFLOW_TOKEN"
ENV_CONFIG = "COOPFLOW_CONFIG"
API = "/api/v1"
TIMEOUT = 60.0  # the server waits up to 30 s for the daemon to apply an event


class ClientError(Exception):
    """A message for the user (printed as is, one line) and the exit code that goes with it."""

    def __init__(self, message: str, exit_code: int = 1, problem: dict[str, Any] | None = None):
        super().__init__(message)
        self.exit_code = exit_code
        self.problem = problem or {}

    @property
    def kind(self) -> str:
        """The problem type's last segment (`refused`, `not-found`, ...), or '' when there was none."""
        return str(self.problem.get("type", "")).rsplit("/", 1)[-1]


# ---------------------------------------------------------------- the saved login


def credentials_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "coopflow" / "credentials"


def load_credentials() -> dict[str, Any] | None:
    path = credentials_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ClientError(f"error: cannot read the saved login {path}: {exc} (coopflow logout removes it)") from None
    return data if isinstance(data, dict) and data.get("server") else None


def save_credentials(data: dict[str, Any]) -> Path:
    """Write the login, readable by its owner only (the folder 0700, the file 0600, also when it existed)."""
    path = credentials_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(out.fileno(), 0o600)
        json.dump(data, out, ensure_ascii=False, indent=2)
    return path


def forget_credentials() -> bool:
    try:
        credentials_path().unlink()
    except FileNotFoundError:
        return False
    return True


def normalise_server(url: str) -> str:
    url = url.strip().rstrip("/")
    if url.endswith(API):
        url = url[: -len(API)]
    if not url.startswith(("http://", "https://")):
        raise ClientError(f"error: {url!r} is not a server URL: give http://host:port or https://host", 2)
    return url


# ---------------------------------------------------------------- where a command goes


class Remote:
    """One server and the token the requests carry."""

    def __init__(self, server: str, token: str | None, person: str | None = None, timezone: str | None = None):
        self.server, self.token, self.person, self.timezone = server, token, person, timezone
        self.headers: dict[str, str] = {}  # the last answer's headers, names in lower case

    def call(self, method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None,
             key: str | None = None, auth: bool = True) -> Any:
        """`method` `path` (under /api/v1) → the decoded JSON (None for 204); ClientError otherwise."""
        from urllib.parse import urlencode, urlsplit

        from engine.cli.http1 import BadAnswer, exchange

        headers = {"Accept": "application/json", "User-Agent": "coopflow-cli"}
        if auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if key:
            headers["Idempotency-Key"] = key
        payload = None
        if body is not None:
            payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        query = urlencode({k: v for k, v in (params or {}).items() if v is not None})
        parts = urlsplit(self.server)
        try:
            status, self.headers, raw = exchange(parts.scheme, parts.hostname or "", parts.port, method,
                                                 parts.path + API + path + (f"?{query}" if query else ""), headers,
                                                 payload, TIMEOUT)
        except (OSError, BadAnswer) as exc:  # refused, reset, name unknown, timed out, TLS (a certificate too), not HTTP...
            raise ClientError(f"server unavailable: {self.server}: {_reason(exc)}") from None
        except ValueError as exc:  # a port that is no number, a host with spaces, a key that is no header text...
            raise ClientError(f"error: cannot send this to {self.server!r}: {exc}", 2) from None
        if status == 204:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if 200 <= status < 300 and data is not None:
            return data
        raise _error(self.server, status, data)

    def zone(self):
        """The agreement's time zone (saved at login, else asked of the server)."""
        from zoneinfo import ZoneInfo

        if not self.timezone:
            self.timezone = self.call("GET", "/me").get("timezone") or "UTC"
        return ZoneInfo(self.timezone)


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]


# problem type -> exit code, where the status alone does not tell (refused and unknown things: 1; mistakes: 2)
_EXIT_BY_KIND = {"idempotency-key-reused": 1}


def _error(server: str, status: int, data: Any) -> ClientError:
    """The server's answer as a message and exit code; non-JSON answers (a proxy's page) say so."""
    if not isinstance(data, dict) or "status" not in data:
        if status >= 500:
            return ClientError(f"server unavailable: {server} answered HTTP {status}")
        return ClientError(f"error: {server} answered HTTP {status}, not a coopflow server?", 1)
    detail = str(data.get("detail") or data.get("title") or f"HTTP {status}")
    kind = str(data.get("type", "")).rsplit("/", 1)[-1]
    if status == 401:
        return ClientError(f"error: not logged in: {detail} (coopflow login --server {server})", 1, data)
    if kind == "refused":
        return ClientError(f"refused: {detail}", 1, data)
    if status == 503:
        return ClientError(f"server unavailable: {server}: {detail}", 1, data)
    if status >= 500:
        return ClientError(f"internal error on the server {server}: {detail}", 3, data)
    code = _EXIT_BY_KIND.get(kind, 2 if status in (400, 413, 422) else 1)
    return ClientError(f"error: {detail}", code, data)


def _explicit_local(settings) -> bool:
    return settings.local or bool(settings.config) or bool(os.environ.get(ENV_CONFIG))


def remote(settings, actor: str | None = None) -> Remote | None:
    """The server this command goes to, or None to run it on this machine's store."""
    server = settings.server or (None if settings.local or settings.config else os.environ.get(ENV_SERVER))
    saved = None
    if server is None:
        if _explicit_local(settings):
            return None
        saved = load_credentials()
        if saved is None:
            return None
        server = saved["server"]
    server = normalise_server(server)
    if saved is None:
        found = load_credentials()
        saved = found if found and normalise_server(found["server"]) == server else {}
    token = os.environ.get(ENV_TOKEN) or saved.get("token")
    if not token:
        raise ClientError(f"error: not logged in to {server}: run coopflow login --server {server} "
                          f"(or set {ENV_TOKEN})")
    if actor is not None:
        raise ClientError(f"error: --as is for the administrator's local mode (-c CONFIG or --local, on the server); "
                          f"logged in to {server} you act as yourself: choose among your roles with --role", 2)
    return Remote(server, token, saved.get("person"), None if os.environ.get(ENV_TOKEN) else saved.get("timezone"))
