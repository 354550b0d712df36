"""One HTTP/1.1 exchange on a fresh connection, on the standard library's sockets (and ssl for https).

Why not http.client: importing it loads the `email` package (its header parser) and `ssl` even for
plain http — ~45 ms of a remote command's CPU on the project machine (bench/README.md §9), a
third of what the command may take. What the client needs is small: one request with
`Connection: close`, then the status, the headers and the body, framed by `Content-Length`,
`Transfer-Encoding: chunked` or the end of the connection. Anything else the server sends back
is `BadAnswer`; a connection refused, reset, timed out or a TLS failure is the OSError it is.
"""

from __future__ import annotations

from typing import BinaryIO

LINE = 65_536  # the longest status or header line read (a longer one is a bad answer)


class BadAnswer(Exception):
    """What came back is not an HTTP/1.x answer this client reads."""


def _text(name: str, value: str) -> bytes:
    if "\r" in value or "\n" in value:
        raise ValueError(f"the {name} header may not hold a line break")
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"the {name} header must be Latin-1 text (HTTP headers are)") from None


def exchange(scheme: str, host: str, port: int | None, method: str, target: str, headers: dict[str, str],
             body: bytes | None, timeout: float) -> tuple[int, dict[str, str], bytes]:
    """`method` `target` on host:port → (status, headers with lower-case names, body).

    ValueError for a request that cannot be sent as given (a control character in the target, a
    header value with a line break or beyond Latin-1)."""
    import socket

    if not host:
        raise ValueError("no host")
    if any(c <= " " or c == "\x7f" for c in target):
        raise ValueError(f"{target!r} has a space or control character")
    https = scheme == "https"
    port = port or (443 if https else 80)
    authority = f"[{host}]" if ":" in host else host
    if port != (443 if https else 80):
        authority += f":{port}"
    lines = [f"{method} {target} HTTP/1.1".encode("ascii"), b"Host: " + _text("Host", authority), b"Connection: close"]
    lines += [name.encode("ascii") + b": " + _text(name, value) for name, value in headers.items()]
    if body is not None:
        lines.append(b"Content-Length: %d" % len(body))
    request = b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")
    with socket.create_connection((host, port), timeout=timeout) as raw:
        conn: socket.socket = raw
        if https:
            import ssl

            conn = ssl.create_default_context().wrap_socket(raw, server_hostname=host)
        with conn, conn.makefile("rb") as reader:
            conn.sendall(request)
            return read_answer(reader, method)


def read_answer(reader: BinaryIO, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one answer (1xx interim answers skipped)."""
    while True:
        status_line = reader.readline(LINE + 1)
        parts = status_line.split(None, 2)
        if len(status_line) > LINE or len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise BadAnswer(f"not an HTTP/1.x answer: {status_line[:60]!r}" if status_line else "no answer (connection closed)")
        status, headers = int(parts[1]), _headers(reader)
        if status >= 200:
            break
    if method == "HEAD" or status in (204, 304):
        return status, headers, b""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return status, headers, _chunked(reader)
    if "content-length" in headers:
        length = headers["content-length"]
        if not length.isdigit():
            raise BadAnswer(f"Content-Length {length[:40]!r} is no length")
        return status, headers, _exactly(reader, int(length))
    return status, headers, reader.read()


def _headers(reader: BinaryIO) -> dict[str, str]:
    headers: dict[str, str] = {}
    while True:
        line = reader.readline(LINE + 1)
        if len(line) > LINE:
            raise BadAnswer("a header line too long")
        if line in (b"\r\n", b"\n", b""):
            return headers
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep or not name.strip():
            raise BadAnswer(f"not a header line: {line[:60]!r}")
        headers[name.strip().lower()] = value.strip()


def _exactly(reader: BinaryIO, size: int) -> bytes:
    data = reader.read(size)
    if len(data) < size:
        raise BadAnswer(f"the answer was cut short ({len(data)} of {size} bytes)")
    return data


def _chunked(reader: BinaryIO) -> bytes:
    chunks: list[bytes] = []
    while True:
        line = reader.readline(LINE + 1)
        size = line.split(b";", 1)[0].strip()
        try:
            length = int(size, 16)
        except ValueError:
            raise BadAnswer(f"not a chunk size: {line[:40]!r}") from None
        if length < 0:
            raise BadAnswer(f"not a chunk size: {line[:40]!r}")
        if length == 0:
            _headers(reader)  # trailers, if any, are read and dropped
            return b"".join(chunks)
        chunks.append(_exactly(reader, length))
        if reader.readline(LINE + 1) not in (b"\r\n", b"\n"):
            raise BadAnswer("a chunk without its line end")
