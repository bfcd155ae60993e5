"""HTTP for connectors: an httpx client with timeouts and the one retry policy every connector uses.

Each connector says what a response means (``classify``): fine, retry (after the time the source
asked for, or after an exponential backoff with full jitter), refresh the credentials and send
again (once), or fail with a permanent or not-found error. Timeouts and connection errors are
retried like a 5xx. A ``Pacer`` sees every request and response, so a connector can slow down
before a rate-limit budget runs out rather than after.
"""

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from apps.identities.connectors.base import (
    ConnectorError,
    PermanentError,
    Progress,
    ProgressListener,
    Record,
    TransientError,
)

USER_AGENT = "policyhub-identity-sync"
DEFAULT_TIMEOUT = httpx.Timeout(20.0, connect=5.0)


@dataclass(frozen=True)
class Retry:
    """Send again: after ``after`` seconds when the source said so, else after a backoff."""

    reason: str
    after: float | None = None


@dataclass(frozen=True)
class Refresh:
    """The credentials expired: get new ones and send again."""

    reason: str


Verdict = Retry | Refresh | ConnectorError | None  # None: the response is the answer


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6  # sends of one request at most
    base_seconds: float = 0.5
    cap_seconds: float = 30.0

    def backoff(self, attempt: int) -> float:
        """Full jitter (uniform in [0, base·2^attempt], capped): retries of many clients spread out."""
        return random.uniform(0, min(self.cap_seconds, self.base_seconds * 2**attempt))  # noqa: S311 (spreading)


class Pacer:
    """Sees each request before it goes and each response after; the default does nothing."""

    def before(self) -> None:
        return None

    def after(self, response: httpx.Response) -> None:
        return None


class ApiClient:
    """GETs against one source. ``authorize(refresh)`` returns the auth headers (new credentials
    when ``refresh``); ``classify`` judges each response."""

    def __init__(
        self,
        *,
        base_url: str,
        authorize: Callable[[bool], dict[str, str]],
        classify: Callable[[httpx.Response], Verdict],
        policy: RetryPolicy | None = None,
        pacer: Pacer | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ):
        self._client = httpx.Client(
            base_url=base_url, timeout=timeout, headers={"User-Agent": USER_AGENT}, transport=transport
        )
        self._authorize, self._classify = authorize, classify
        self.policy = policy or RetryPolicy()
        self.pacer = pacer or Pacer()
        self._sleep = sleep
        self.requests = 0  # sent, retries included
        self.retries = 0

    def get(self, url: str, params: dict | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
        """The first answer ``classify`` accepts; raises a ``ConnectorError`` subclass otherwise."""
        return self._get(url, params, headers, decode=False)[0]

    def get_json(
        self, url: str, params: dict | None = None, headers: dict[str, str] | None = None
    ) -> tuple[httpx.Response, Any]:
        """Like ``get``, with the body parsed. A body that is not JSON (a proxy's error page, a cut-off
        response) is retried like a 5xx: parsing inside the loop keeps one retry budget per request."""
        return self._get(url, params, headers, decode=True)

    def _get(self, url: str, params: dict | None, headers: dict[str, str] | None, *, decode: bool) -> tuple:
        where = f"GET {urlsplit(url).path or url}"
        attempt, refreshed, refresh = 0, False, False
        while True:
            self.pacer.before()
            try:
                self.requests += 1
                response = self._client.get(url, params=params, headers={**self._authorize(refresh), **(headers or {})})
            except httpx.TransportError as error:  # timeouts, refused and reset connections
                verdict: Verdict = Retry(f"{type(error).__name__}")
            else:
                self.pacer.after(response)
                verdict = self._classify(response)
                if verdict is None and not decode:
                    return response, None
                if verdict is None:
                    try:
                        return response, response.json()
                    except ValueError:  # JSONDecodeError and UnicodeDecodeError both are
                        verdict = Retry("the response is not valid JSON")
            refresh = False
            if isinstance(verdict, ConnectorError):
                raise type(verdict)(f"{where}: {verdict}")
            if isinstance(verdict, Refresh):
                if refreshed:
                    raise PermanentError(f"{where}: {verdict.reason}, again with new credentials")
                refreshed = refresh = True
                continue
            attempt += 1
            if attempt >= self.policy.attempts:
                raise TransientError(f"{where}: {verdict.reason}; gave up after {attempt} attempts")
            self.retries += 1
            self._sleep(verdict.after if verdict.after is not None else self.policy.backoff(attempt))

    def post_form(self, url: str, data: dict[str, str], headers: dict[str, str]) -> httpx.Response:
        """One POST of a form (token requests), with the same transient-error retries."""
        where = f"POST {urlsplit(url).path or url}"
        for attempt in range(1, self.policy.attempts + 1):
            try:
                self.requests += 1
                response = self._client.post(url, data=data, headers=headers)
            except httpx.TransportError as error:
                reason = type(error).__name__
            else:
                if response.status_code < 500 and response.status_code != 429:
                    return response
                reason = f"HTTP {response.status_code}"
            if attempt < self.policy.attempts:
                self.retries += 1
                self._sleep(self.policy.backoff(attempt))
        raise TransientError(f"{where}: {reason}; gave up after {self.policy.attempts} attempts")

    def close(self) -> None:
        self._client.close()


@dataclass
class FetchTally:
    """Pages and records of one fetch, reported to the progress listener after each page."""

    listener: ProgressListener | None
    client: ApiClient
    pages: int = 0
    records: int = 0

    def count(self, record: Record) -> Record:
        self.records += 1
        return record

    def page(self, stage: str) -> None:
        self.pages += 1
        if self.listener is not None:
            self.listener(Progress(stage=stage, pages=self.pages, records=self.records, requests=self.client.requests))
