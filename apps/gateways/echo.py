"""A tiny upstream for proofs and probes: answers 200 with a JSON echo of what it received.
``AnsweringHandler`` and ``serving`` also run the tool stand-ins of tests and the demo."""

import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class AnsweringHandler(BaseHTTPRequestHandler):
    """Answers every method with 200 and ``answer()``'s body (nothing for HEAD), after reading the body."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes; with Nagle on, the body waits for the proxy's delayed
    # ACK (~40 ms) on every request of a reused upstream connection.
    disable_nagle_algorithm = True
    content_type = "application/json"

    def answer(self, headers: dict[str, str]) -> bytes:
        """The body for this request; ``headers`` are the request's, names lower-cased."""
        return json.dumps({"method": self.command, "path": self.path, "headers": headers}).encode()

    def _respond(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = self.answer({k.lower(): v for k, v in self.headers.items()})
        self.send_response(200)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _respond

    def log_message(self, format, *args):
        pass  # thousands of proof requests would drown real logs


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # Proxies close idle upstream connections by resetting them; that is not an error here.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler], address: tuple[str, int] = ("127.0.0.1", 0)) -> Iterator[str]:
    """Serve ``handler`` on ``address`` (default: a free 127.0.0.1 port) in a thread; yields
    ``http://127.0.0.1:<port>``."""
    server = _QuietServer(address, handler)
    # shutdown() waits for the serving loop's next poll: 0.5 s by default, a quarter of a deploy's budget
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="policyhub-echo", daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def echo_upstream() -> Iterator[str]:
    """The echo on a free 127.0.0.1 port (a context manager); yields ``http://127.0.0.1:<port>``."""
    return serving(AnsweringHandler)
