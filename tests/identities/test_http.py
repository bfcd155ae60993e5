"""The connectors' shared HTTP client: which answers are retried, how long it waits, when it gives up.

httpx's own MockTransport answers here: what is under test is the retry policy, not a vendor API
(the connectors are tested against their fakes)."""

import httpx
import pytest

from apps.identities.connectors.base import NotFoundError, PermanentError, TransientError
from apps.identities.connectors.http import ApiClient, Pacer, Refresh, Retry, RetryPolicy


def _classify(response: httpx.Response):
    if response.status_code == 429:
        return Retry("HTTP 429", after=float(response.headers.get("Retry-After", "0")) or None)
    if response.status_code >= 500:
        return Retry(f"HTTP {response.status_code}")
    if response.status_code == 401:
        return Refresh("the token expired")
    if response.status_code == 403:
        return PermanentError("permission denied: Profile.View")
    if response.status_code == 404:
        return NotFoundError("no such team")
    return None


def _client(answers: list, **options):
    """A client whose transport gives ``answers`` in turn (a status, or an exception to raise);
    returns (client, the requests seen, the sleeps asked for)."""
    seen, slept = [], []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer[0], headers=answer[1]) if isinstance(answer, tuple) else httpx.Response(answer)

    tokens = iter(["first", "second", "third"])
    token = [next(tokens)]

    def authorize(refresh: bool) -> dict[str, str]:
        if refresh:
            token[0] = next(tokens)
        return {"Authorization": f"Bearer {token[0]}"}

    client = ApiClient(
        base_url="https://org.example.test",
        authorize=authorize,
        classify=_classify,
        sleep=slept.append,
        transport=httpx.MockTransport(handle),
        **options,
    )
    return client, seen, slept


def test_transient_answers_are_retried_with_jittered_backoff_until_one_succeeds():
    client, seen, slept = _client([503, httpx.ConnectTimeout("slow"), 502, 200], policy=RetryPolicy(base_seconds=1))

    assert client.get("/api/v1/users").status_code == 200

    assert len(seen) == client.requests == 4 and client.retries == 3
    assert [0 <= pause <= 2**attempt for attempt, pause in enumerate(slept, start=1)] == [True, True, True]


def test_the_source_says_how_long_to_wait():
    client, _seen, slept = _client([(429, {"Retry-After": "7"}), 200])
    client.get("/api/http/team-directory/profiles")
    assert slept == [7.0]


def test_retries_run_out_with_a_readable_reason():
    client, seen, _slept = _client([500] * 3, policy=RetryPolicy(attempts=3))
    with pytest.raises(TransientError, match=r"^GET /api/v1/groups: HTTP 500; gave up after 3 attempts$"):
        client.get("https://org.example.test/api/v1/groups?after=abc")
    assert len(seen) == 3


def test_expired_credentials_are_refreshed_once_then_refused():
    client, seen, _slept = _client([401, 200])
    client.get("/x")
    assert [r.headers["Authorization"] for r in seen] == ["Bearer first", "Bearer second"]

    client, seen, _slept = _client([401, 401])
    with pytest.raises(PermanentError, match="the token expired, again with new credentials"):
        client.get("/x")


def test_permanent_and_not_found_answers_are_not_retried():
    client, seen, _slept = _client([403])
    with pytest.raises(PermanentError, match=r"^GET /x: permission denied: Profile.View$"):
        client.get("/x")
    client, seen, _slept = _client([404])
    with pytest.raises(NotFoundError):
        client.get("/x")
    assert len(seen) == 1


def test_the_pacer_sees_every_request_and_response():
    class Counting(Pacer):
        def __init__(self):
            self.before_calls, self.statuses = 0, []

        def before(self):
            self.before_calls += 1

        def after(self, response):
            self.statuses.append(response.status_code)

    pacer = Counting()
    client, _seen, _slept = _client([503, 200], pacer=pacer)
    client.get("/x")
    assert (pacer.before_calls, pacer.statuses) == (2, [503, 200])


def test_token_requests_are_retried_on_5xx_and_returned_otherwise():
    client, seen, _slept = _client([502, 400])
    assert client.post_form("/oauth/token", data={"grant_type": "client_credentials"}, headers={}).status_code == 400
    assert len(seen) == 2
