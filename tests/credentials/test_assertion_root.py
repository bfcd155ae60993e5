"""A gateway's identity-assertion root: made once, revealed and replaced only with an audit row."""

import json

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.core.actors import Actor
from apps.credentials.assertions import AssertionRejected, assertion_key_bytes, assertion_sign, assertion_verify
from apps.credentials.choices import KeyPurpose, KeyState
from apps.credentials.models import AssertionRoot, SigningKey
from apps.credentials.rotate import rotation_prepare
from apps.credentials.selectors import assertion_signing_key
from apps.credentials.services import (
    assertion_root_ensure,
    assertion_root_reveal,
    assertion_root_rotate,
    signing_key_activate,
)
from tests.factories import GatewayFactory

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("assertion-root-test")
REQUEST = {"host": "app.example.test", "method": "GET", "path": "/", "identity_headers": {}}


def _audit_text() -> str:
    return json.dumps(list(AuditEvent.objects.values("action", "before", "after")))


def _header(key: SigningKey, now: float) -> str:
    return assertion_sign(key=assertion_key_bytes(key.private_material.reveal()), kid=key.kid, ts=int(now), **REQUEST)


def test_the_root_is_made_once_on_first_use_and_its_audit_row_shows_no_secret():
    gateway = GatewayFactory(kind="haproxy")
    first = assertion_root_ensure(gateway=gateway, actor=ACTOR)
    assert assertion_root_ensure(gateway=gateway, actor=ACTOR) == first
    assert AuditEvent.objects.filter(action="assertionroot.create", object_id=str(first.pk)).count() == 1
    assert first.secret.reveal() not in _audit_text()
    assert first.secret.reveal() not in repr(first.secret)


def test_every_reveal_is_audited():
    gateway = GatewayFactory(kind="lighttpd")
    secret = assertion_root_reveal(gateway=gateway, actor=ACTOR)
    assert secret == assertion_root_reveal(gateway=gateway, actor=ACTOR)
    reveals = AuditEvent.objects.filter(action="assertion_root.reveal", actor=str(ACTOR))
    assert reveals.count() == 2
    assert secret.reveal() not in _audit_text()


def test_rotating_the_root_replaces_the_pending_key_and_upstreams_bridge_with_both_roots():
    gateway = GatewayFactory(kind="haproxy")
    rotation_prepare(gateway=gateway, actor=ACTOR)
    live = signing_key_activate(key=assertion_signing_key(gateway=gateway), actor=ACTOR)
    rotation_prepare(gateway=gateway, actor=ACTOR)
    pending = assertion_signing_key(gateway=gateway)
    old_root = AssertionRoot.objects.get(gateway=gateway).secret.reveal()

    rotated = assertion_root_rotate(gateway=gateway, actor=ACTOR)

    new_root = rotated.secret.reveal()
    assert new_root != old_root and rotated.rotated_at is not None
    update = AuditEvent.objects.get(action="assertionroot.update", object_id=str(rotated.pk))
    assert set(update.after) == {"secret", "rotated_at"} and update.before["secret"] != update.after["secret"]
    assert new_root not in _audit_text() and old_root not in _audit_text()
    states = dict(SigningKey.objects.filter(purpose=KeyPurpose.IDENTITY_ASSERTION).values_list("kid", "state"))
    assert states[pending.kid] == KeyState.RETIRED  # derived from the old root: it must never go live
    assert states[live.kid] == KeyState.ACTIVE  # the live proxy signs with it until the next deploy
    replacement = assertion_signing_key(gateway=gateway)
    assert replacement.state == KeyState.NEXT and replacement.kid not in {pending.kid, live.kid}

    now = timezone.now().timestamp()
    before_deploy, after_deploy = _header(live, now), _header(replacement, now)
    with pytest.raises(AssertionRejected, match="bad-signature"):
        assertion_verify(header=before_deploy, root_secret=new_root, now=now, **REQUEST)
    for header in (before_deploy, after_deploy):  # what an upstream given both roots accepts
        assert assertion_verify(header=header, root_secret=(new_root, old_root), now=now, **REQUEST)


def test_the_command_prints_the_root_and_replaces_it_with_a_warning(capsys):
    gateway = GatewayFactory(kind="haproxy", name="edge-1")
    call_command("assertion_secret", "edge-1")
    shown = capsys.readouterr()
    root = AssertionRoot.objects.get(gateway=gateway).secret.reveal()
    assert shown.out == f"{root}\n" and shown.err == ""

    call_command("assertion_secret", "edge-1", "--rotate")
    shown = capsys.readouterr()
    new_root = AssertionRoot.objects.get(gateway=gateway).secret.reveal()
    assert new_root != root and shown.out == f"{new_root}\n"
    assert "keep accepting the old one" in shown.err and "next deploy of edge-1" in shown.err
    assert AuditEvent.objects.filter(action="assertion_root.reveal", actor__startswith="cli:").count() == 2

    with pytest.raises(CommandError, match="no gateway named 'nope'"):
        call_command("assertion_secret", "nope")
