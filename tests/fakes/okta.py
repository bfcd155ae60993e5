"""A fake Okta org: a real HTTP/1.1 server on 127.0.0.1 speaking the slice of Okta's Management API
and org authorization server that the connector uses, shaped after recorded Okta payloads
(``okta_payloads/``, provenance in its README).

It serves ``GET /api/v1/users``, ``/api/v1/users/{id}``, ``/api/v1/users/{id}/groups``,
``/api/v1/groups`` and ``/api/v1/groups/{id}/users`` (``okta_directory``) and
``POST /oauth2/v1/token`` with SSWS and Bearer auth (``okta_authority``);
here: ``x-rate-limit-*`` headers on every response from a budget per endpoint family and window,
429 E0000047 past it, ``Date`` from an injectable clock (a test's fake time moves the windows and
expires tokens), ``x-okta-request-id``; faults for the next N requests (5xx, cut-off JSON, dropped
connections), an exhausted budget, and actions scheduled after N requests or before a path (move a
member, delete a group mid-sync). It records what it saw: requests per family, 429s sent, the most
requests in any one window, and a log of (method, target, status).

    with FakeOkta(clock=clock.now) as okta:
        okta.add_api_token("…"); okta.add_users(10)
        ... OktaConnector(base_url=okta.url, …)
"""

import math
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socket import IPPROTO_TCP, TCP_NODELAY
from urllib.parse import parse_qsl, urlsplit

from tests.fakes.okta_authority import Authority
from tests.fakes.okta_directory import PAYLOADS, Directory
from tests.fakes.okta_replies import Refusal, Reply, okta_error

__all__ = ["PAYLOADS", "FakeClock", "FakeOkta"]

WINDOW = 60  # seconds: Okta's budgets are per minute
DEFAULT_BUDGETS = {"users": 600, "groups": 500, "token": 600, "other": 100}  # as in the recorded headers


class FakeClock:
    """Time that moves only when slept on: the fake's clock and the client's ``sleep`` in one."""

    def __init__(self, start: float | None = None):
        self._now = time.time() if start is None else start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self._now += max(seconds, 0.0)


class FakeOkta(Directory, Authority):
    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        budgets: dict[str, int] | None = None,
        page_size: int | None = None,
        token_lifetime: int = 3600,
        seed: bool = True,
        port: int = 0,
    ):
        Directory.__init__(self)
        Authority.__init__(self, token_lifetime=token_lifetime)
        self.clock = clock
        self.budgets = {**DEFAULT_BUDGETS, **(budgets or {})}
        self.page_size = page_size  # caps every limit: many pages from few records
        self.duplicate_across_pages = False  # each next page starts with the previous page's last item
        self._lock = threading.RLock()
        self._windows: dict[str, list] = {}  # family -> [start, count]
        self._scheduled: list[tuple[int | None, str | None, Callable[[], None]]] = []
        self._failures: list[int] = []  # statuses of the next failed API requests
        self._malformed = self._disconnects = 0
        self.requests = 0
        self.requests_by_family: Counter[str] = Counter()
        self.rate_limited = 0  # 429s sent
        self.max_per_window: Counter[str] = Counter()  # the most requests a family got in one window
        self.log: list[tuple[str, str, int]] = []  # (method, target, status); status 0: dropped
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.fake = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.link_base = self.url  # where Link headers point (a test may point them elsewhere)
        if seed:
            self.seed_from_payloads()

    def __enter__(self) -> "FakeOkta":
        threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-okta", daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ---- faults
    def fail_next(self, count: int, *, status: int = 500) -> None:
        self._failures.extend([status] * count)

    def malformed_next(self, count: int) -> None:
        """The next ``count`` successful API answers are cut off halfway, as by a failing proxy."""
        self._malformed += count

    def disconnect_next(self, count: int) -> None:
        self._disconnects += count

    def exhaust(self, family: str) -> float:
        """Spend the family's budget: its requests get 429 until the window resets (returned)."""
        with self._lock:
            self._windows[family] = [self.clock(), self.budgets[family]]
            return self._windows[family][0] + WINDOW

    def schedule(
        self, action: Callable[[], None], *, after_requests: int | None = None, before_path: str | None = None
    ) -> None:
        """Run ``action`` once the fake has answered ``after_requests`` requests, or right before it
        answers the first request whose path starts with ``before_path``."""
        self._scheduled.append((after_requests, before_path, action))

    # ---- serving
    def handle(self, method: str, target: str, headers, body: bytes) -> Reply | None:
        with self._lock:
            parts = urlsplit(target)
            path, query = parts.path, dict(parse_qsl(parts.query, keep_blank_values=True))
            self._run_scheduled(path)
            self.requests += 1
            family = _family(path)
            self.requests_by_family[family] += 1
            api = path.startswith("/api/")
            if api and self._disconnects:
                self._disconnects -= 1
                self.log.append((method, target, 0))
                return None
            limit, remaining, reset = self._spend(family)
            if remaining < 0:
                self.rate_limited += 1
                reply = okta_error(429, "E0000047", "API call exceeded rate limit due to too many requests.")
                remaining = 0
            elif api and self._failures:
                reply = okta_error(self._failures.pop(0), "E0000009", "Internal Server Error")
            else:
                try:
                    reply = self._route(method, path, query, headers, body)
                except Refusal as refusal:
                    reply = refusal.reply
            if api and reply.status == 200 and self._malformed:
                self._malformed -= 1
                reply.body = reply.body[: len(reply.body) // 2]
            reply.headers = [  # names and order as in the 2025 recordings
                ("Content-Type", "application/json"),
                ("Date", formatdate(self.clock(), usegmt=True)),
                *reply.headers,
                ("x-okta-request-id", secrets.token_hex(16)),
                ("x-rate-limit-limit", str(limit)),
                ("x-rate-limit-remaining", str(remaining)),
                ("x-rate-limit-reset", str(reset)),
            ]
            self.log.append((method, target, reply.status))
            return reply

    def _run_scheduled(self, path: str) -> None:
        for entry in list(self._scheduled):
            after_requests, before_path, action = entry
            if (after_requests is not None and self.requests >= after_requests) or (
                before_path is not None and path.startswith(before_path)
            ):
                self._scheduled.remove(entry)
                action()

    def _spend(self, family: str) -> tuple[int, int, int]:
        """(limit, remaining, reset) after this request; remaining -1: over budget. A window opens
        with the first request after the last one closed, as the recorded resets suggest."""
        limit, now = self.budgets.get(family, DEFAULT_BUDGETS["other"]), self.clock()
        window = self._windows.get(family)
        if window is None or now >= window[0] + WINDOW:
            window = self._windows[family] = [now, 0]
        reset = math.ceil(window[0] + WINDOW)
        if window[1] >= limit:
            return limit, -1, reset
        window[1] += 1
        self.max_per_window[family] = max(self.max_per_window[family], window[1])
        return limit, limit - window[1], reset

    def _route(self, method: str, path: str, query: dict, headers, body: bytes) -> Reply:
        if method == "POST" and path == "/oauth2/v1/token":
            return self.token(body)
        segments = path.strip("/").split("/")
        if method == "GET" and segments[:2] == ["api", "v1"]:
            if segments[2:] == ["users"]:
                self.authorize(headers, "users", path)
                return self.list_users(path, query)
            if segments[2:] == ["groups"]:
                self.authorize(headers, "groups", path)
                return self.list_groups(path, query)
            if len(segments) == 5 and segments[2] == "groups" and segments[4] == "users":
                self.authorize(headers, "groups", path)
                return self.list_members(path, segments[3], query)
            # a user's groups need okta.users.read (the scope of its family, /api/v1/users) [U]
            if len(segments) == 4 and segments[2] == "users":
                self.authorize(headers, "users", path)
                return self.get_user(segments[3])
            if len(segments) == 5 and segments[2] == "users" and segments[4] == "groups":
                self.authorize(headers, "users", path)
                return self.list_user_groups(path, segments[3], query)
        return okta_error(404, "E0000007", f"Not found: Resource not found: {path}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeOkta


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Okta
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)  # headers and body go in two writes

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        reply = self.server.fake.handle(self.command, self.path, self.headers, body)
        if reply is None:  # a dropped connection
            self.close_connection = True
            return
        self.send_response_only(reply.status)  # not send_response: its Date would be the real time
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    do_POST = do_GET

    def log_message(self, format, *args) -> None:
        return


def _family(path: str) -> str:
    """Okta budgets per endpoint; which endpoints share one is not recorded, so the fake (like the
    connector) counts a group's members with the groups."""
    if path.startswith("/api/v1/users"):
        return "users"
    if path.startswith("/api/v1/groups"):
        return "groups"
    return "token" if path == "/oauth2/v1/token" else "other"
