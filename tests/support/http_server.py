"""A local HTTP server on 127.0.0.1 that misbehaves on request, for download tests.

No test touches the internet: a ThreadingHTTPServer bound to 127.0.0.1 on an
ephemeral port serves in-memory bytes, with switches to misbehave in the ways
real hosts do (drop the connection mid-body, ignore Range, stall, 404, or any
scripted answer), and records every request so tests can prove what was (or
was not) fetched.

Use it from a test module with ``from support.http_server import server_fixture``
(the fixture is registered under the name ``server``).
"""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

__all__ = ["LocalServer", "Responder", "ServerState", "server_fixture"]

# A scripted answer: gets the request handler and the requested file's bytes
# (None when the server has no such file) and writes the whole response itself.
Responder = Callable[[BaseHTTPRequestHandler, bytes | None], None]


@dataclass
class ServerState:
    """What the fake host serves and how it should misbehave; shared with handlers."""

    files: dict[str, bytes] = field(default_factory=dict)
    drop_next: int = 0  # drop this many responses mid-body
    stall_next: int = 0  # sleep past the client's timeout on this many requests
    stall_seconds: float = 0.0
    ignore_range: bool = False
    always_404: bool = False
    # The next requests are answered by these, in order, instead of the normal answer.
    script: list[Responder] = field(default_factory=list)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def hits(self) -> int:
        with self.lock:
            return len(self.requests)

    def ranges(self) -> list[str | None]:
        with self.lock:
            return [r for _, r in self.requests]


@dataclass
class LocalServer:
    """Handle returned by the fixture: base URL plus the mutable state."""

    base_url: str
    state: ServerState

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"


class _QuietServer(ThreadingHTTPServer):
    """Ignores clients that hang up (the point of several tests); reports anything else."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


def _make_handler(state: ServerState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        """GET with single-range support, plus the failure modes in ``state``."""

        timeout = 5  # a stuck client cannot pin a handler thread forever

        def log_message(self, format: str, *args: object) -> None:
            """Keep pytest output clean."""

        def do_GET(self) -> None:
            range_header = self.headers.get("Range")
            with state.lock:
                state.requests.append((self.path, range_header))
                scripted = state.script.pop(0) if state.script else None
                stall = state.stall_next > 0
                state.stall_next -= stall
                drop = state.drop_next > 0
                state.drop_next -= drop
            body = state.files.get(self.path.lstrip("/"))
            if scripted is not None:
                scripted(self, body)
                return
            if stall:
                state.stopping.wait(state.stall_seconds)  # cut short by teardown
            if state.always_404 or body is None:
                self.send_error(404, "Not Found")
                return
            start = 0
            if range_header and not state.ignore_range:
                start = int(range_header.removeprefix("bytes=").split("-")[0])
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            chunk = body[start:]
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(chunk)))
            self.end_headers()
            if drop:
                # Promise the whole body, send part of it, then hang up.
                self.wfile.write(chunk[: len(chunk) // 3])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self.wfile.write(chunk)

    return Handler


@pytest.fixture(name="server")
def server_fixture() -> Iterator[LocalServer]:
    """A bounded local HTTP server on 127.0.0.1, stopped in teardown."""
    state = ServerState()
    httpd = _QuietServer(("127.0.0.1", 0), _make_handler(state))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    host, port = httpd.server_address[:2]
    try:
        yield LocalServer(f"http://{host}:{port}", state)
    finally:
        state.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=2)
