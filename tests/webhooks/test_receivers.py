"""Each sender's deliveries are authenticated exactly as it signs them, before anything else happens:
forged, stale, oversized and malformed deliveries are refused (and audited) with nothing stored."""

import json
import time

import pytest

from apps.audit.models import AuditEvent
from apps.webhooks import inbox
from apps.webhooks.choices import EventState
from apps.webhooks.models import InboundEvent
from tests.support.problems import problem
from tests.webhooks.conftest import (
    BUILDKITE_TOKEN,
    OKTA_SECRET,
    build_finished,
    buildkite_headers,
    payload,
    post,
    receiver,
    space_headers,
)

pytestmark = pytest.mark.django_db
OKTA_DELIVERY = payload("event_hook_delivery_group_user_membership_remove.json")
SPACE_EVENT = payload("webhook_profile_organization_event.docs.json")
OKTA_URL, SPACE_URL, BUILDKITE_URL = (
    "/webhooks/okta/okta-main",
    "/webhooks/space/space-main",
    "/webhooks/buildkite/buildkite-main",
)


@pytest.fixture
def handled(monkeypatch):
    """Every sender's handler records the events it was given (the handlers themselves are tested
    on their own); returns the list."""
    seen = []

    def record(event, actor):
        seen.append(event.delivery_id)
        return {"recorded": True}

    for sender in ("okta", "space", "buildkite"):
        monkeypatch.setitem(inbox._HANDLERS, sender, record)
    return seen


def _refusals() -> list[dict]:
    return [event.after for event in AuditEvent.objects.filter(action="webhook.refuse")]


# Okta ------------------------------------------------------------------------------------------


def test_an_okta_delivery_with_the_hook_secret_is_stored_then_processed(
    client, okta_receiver, handled, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, OKTA_URL, OKTA_DELIVERY, {"Authorization": OKTA_SECRET})
    assert (response.status_code, response.content) == (200, b"")
    event = InboundEvent.objects.get()
    assert (event.sender, event.delivery_id, event.event_type) == (
        "okta",
        "7725f197-576a-4eff-b1ce-668221e8144a",
        "com.okta.event_hook",
    )
    assert event.payload == json.loads(OKTA_DELIVERY)
    assert (event.state, event.attempts, event.outcome) == (EventState.DONE, 1, {"recorded": True})
    assert handled == [event.delivery_id]
    accepted = AuditEvent.objects.get(action="webhook.accept")
    assert accepted.actor == "webhook:okta/okta-main" and OKTA_SECRET not in json.dumps(accepted.after)


def test_a_redelivered_okta_event_is_acknowledged_and_not_processed_twice(
    client, okta_receiver, handled, django_capture_on_commit_callbacks
):
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            assert post(client, OKTA_URL, OKTA_DELIVERY, {"Authorization": OKTA_SECRET}).status_code == 200
    assert InboundEvent.objects.count() == 1
    assert len(handled) == 1
    assert AuditEvent.objects.filter(action="webhook.duplicate").count() == 2


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "Authorization is required"),
        ({"Authorization": "okta-hook-secret-9c2e"}, "Authorization does not match"),
        ({"Authorization": f"Bearer {OKTA_SECRET}"}, "Authorization does not match"),
        ({"Authorization": "sécret"}, "Authorization does not match"),
    ],
)
def test_okta_deliveries_without_the_secret_are_401s_that_store_nothing(
    client, okta_receiver, handled, headers, reason
):
    body = problem(post(client, OKTA_URL, OKTA_DELIVERY, headers), 401)
    assert (body["code"], body["detail"]) == ("bad_signature", reason)
    assert not InboundEvent.objects.exists() and handled == []
    assert _refusals() == [{"receiver": "okta/okta-main", "status": 401, "reason": reason}]


def test_okta_verification_echoes_the_challenge_only_to_the_hook_secret(client, okta_receiver):
    challenge = {"X-Okta-Verification-Challenge": "pHtG5s0tYZ4kDqA1"}
    answered = client.get(OKTA_URL, headers={**challenge, "Authorization": OKTA_SECRET})
    assert (answered.status_code, answered.json()) == (200, {"verification": "pHtG5s0tYZ4kDqA1"})
    assert problem(client.get(OKTA_URL, headers=challenge), 401)["detail"] == "Authorization is required"
    assert problem(client.get(OKTA_URL, headers={"Authorization": OKTA_SECRET}), 405)["code"] == "method_not_allowed"


# Space -----------------------------------------------------------------------------------------


def test_a_space_delivery_signed_with_the_signing_key_is_accepted(
    client, space_receiver, handled, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, SPACE_URL, SPACE_EVENT, space_headers(SPACE_EVENT))
    assert response.status_code == 202
    event = InboundEvent.objects.get()
    assert response.json() == {
        "event": event.pk,
        "delivery_id": event.delivery_id,
        "state": "pending",
        "duplicate": False,
    }
    assert event.event_type == "ProfileOrganizationEvent"
    assert handled == [event.delivery_id]


def test_space_timestamps_in_seconds_are_read_as_such(client, space_receiver, handled):
    assert post(client, SPACE_URL, SPACE_EVENT, space_headers(SPACE_EVENT, unit=1)).status_code == 202
    stale = space_headers(SPACE_EVENT, unit=1, at=time.time() - 600)
    assert "s away from now (at most 300 s)" in problem(post(client, SPACE_URL, SPACE_EVENT, stale), 401)["detail"]


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        (lambda body: space_headers(body, key="another-key"), "X-Space-Signature does not match the body"),
        (lambda body: space_headers(body + b" "), "X-Space-Signature does not match the body"),
        (lambda body: space_headers(body, at=time.time() - 600), "X-Space-Timestamp is"),
        (lambda body: space_headers(body, at=time.time() + 400), "s away from now (at most 300 s)"),
        (lambda body: {"X-Space-Signature": space_headers(body)["X-Space-Signature"]}, "are required"),
        (lambda body: {**space_headers(body), "X-Space-Timestamp": "soon"}, "does not match the body"),
    ],
)
def test_forged_and_stale_space_deliveries_are_refused(client, space_receiver, handled, forge, reason):
    detail = problem(post(client, SPACE_URL, SPACE_EVENT, forge(SPACE_EVENT)), 401)["detail"]
    assert reason in detail
    assert not InboundEvent.objects.exists() and handled == []


def test_a_replayed_space_delivery_is_refused_once_its_timestamp_is_old(client, space_receiver, handled):
    captured = space_headers(SPACE_EVENT, at=time.time() - 301)
    assert "away from now" in problem(post(client, SPACE_URL, SPACE_EVENT, captured), 401)["detail"]


# Buildkite -------------------------------------------------------------------------------------


def test_a_signed_buildkite_build_is_accepted_and_identified_by_pipeline_build_and_state(
    client, buildkite_receiver, handled, django_capture_on_commit_callbacks
):
    body = build_finished(number=41)
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, BUILDKITE_URL, body, buildkite_headers(body)).status_code == 200
    event = InboundEvent.objects.get()
    assert (event.delivery_id, event.event_type) == ("great-pipeline#41:build.finished:passed", "build.finished")


def test_a_buildkite_receiver_configured_for_tokens_compares_the_token(client, db, handled):
    receiver("buildkite", BUILDKITE_TOKEN, slug="bk-token", settings={"auth": "token"})
    ping = payload("webhook_ping.docs-skeleton.json")
    url = "/webhooks/buildkite/bk-token"
    assert (
        post(client, url, ping, {"X-Buildkite-Token": BUILDKITE_TOKEN, "X-Buildkite-Event": "ping"}).status_code == 200
    )
    assert (
        problem(post(client, url, ping, {"X-Buildkite-Token": "guess"}), 401)["detail"]
        == "X-Buildkite-Token does not match"
    )
    signed_instead = buildkite_headers(ping, event="ping")
    assert problem(post(client, url, ping, signed_instead), 401)["detail"] == "X-Buildkite-Token is required"


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        (lambda body: buildkite_headers(body, token="wrong"), "does not match the body"),
        (
            lambda body: buildkite_headers(body, at=time.time() - 3600),
            "s away from now (at most 300 s): a stale or replayed delivery",
        ),
        (lambda body: {"X-Buildkite-Signature": "signature=abc"}, "must read timestamp=<unix s>,signature=<hex>"),
        (lambda body: {}, "X-Buildkite-Signature is required"),
    ],
)
def test_forged_and_stale_buildkite_deliveries_are_refused(client, buildkite_receiver, handled, forge, reason):
    body = build_finished()
    assert reason in problem(post(client, BUILDKITE_URL, body, forge(body)), 401)["detail"]
    assert not InboundEvent.objects.exists()


# Every receiver --------------------------------------------------------------------------------


def test_oversized_bodies_are_refused_before_they_are_read(client, okta_receiver, handled, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 1024
    big = json.dumps({"eventId": "x", "data": {"events": []}, "pad": "x" * 2000}).encode()
    body = problem(post(client, OKTA_URL, big, {"Authorization": OKTA_SECRET}), 413)
    assert body["detail"] == "the body exceeds 1024 bytes"
    assert not InboundEvent.objects.exists()


def test_a_body_that_is_not_json_is_refused(client, okta_receiver, space_receiver, handled):
    form = post(
        client, OKTA_URL, b"a=1", {"Authorization": OKTA_SECRET}, content_type="application/x-www-form-urlencoded"
    )
    assert problem(form, 415)["detail"] == "the body must be application/json"
    broken = b'{"eventId": '
    assert problem(post(client, OKTA_URL, broken, {"Authorization": OKTA_SECRET}), 400)["detail"].startswith("not JSON")
    not_hook = b'{"hello": "world"}'
    detail = problem(post(client, OKTA_URL, not_hook, {"Authorization": OKTA_SECRET}), 400)["detail"]
    assert detail == "an Okta event hook delivery carries eventId and data.events"
    listed = b"[1, 2]"
    assert (
        problem(post(client, SPACE_URL, listed, space_headers(listed)), 400)["detail"]
        == "the body must be a JSON object"
    )
    assert not InboundEvent.objects.exists() and handled == []
    assert [refusal["status"] for refusal in _refusals()] == [415, 400, 400, 400]


def test_a_forged_body_is_refused_before_it_is_parsed(client, okta_receiver, handled):
    # a malformed body with a bad secret is a 401, not a 400: nothing is read before the check
    assert problem(post(client, OKTA_URL, b"{not json", {"Authorization": "guess"}), 401)["code"] == "bad_signature"


def test_unknown_or_disabled_receivers_are_404s(client, okta_receiver):
    assert problem(post(client, "/webhooks/okta/other", OKTA_DELIVERY, {}), 404)["code"] == "not_found"
    okta_receiver.enabled = False
    okta_receiver.save()
    assert problem(post(client, OKTA_URL, OKTA_DELIVERY, {"Authorization": OKTA_SECRET}), 404)["code"] == "not_found"
