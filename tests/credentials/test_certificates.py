"""TLS certificates: checked at upload, encrypted at rest, rendered for both proxies or refused by name."""

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from apps.audit.models import AuditEvent
from apps.core.actors import Actor
from apps.core.crypto import Secret
from apps.credentials.models import Certificate
from apps.credentials.selectors import gateway_certificates
from apps.credentials.services import certificate_add
from apps.gateways.renderers import render
from apps.gateways.renderers.base import RenderError, RenderRequest, TlsCertificate
from apps.gateways.validate import validate
from tests.factories import GatewayFactory
from tests.policies.builder import policy, route, rule
from tests.support.tls import self_signed, tls_certificate

ACTOR = Actor.system("test")


@pytest.mark.django_db
def test_a_certificate_is_parsed_stored_encrypted_and_audited_without_its_key():
    gateway = GatewayFactory()
    chain, key = self_signed("portal.example.test", "*.apps.example.test")
    certificate = certificate_add(gateway=gateway, chain_pem=chain, private_key_pem=key, actor=ACTOR)
    assert certificate.dns_names == ["*.apps.example.test", "portal.example.test"]
    assert certificate.subject == "CN=portal.example.test"
    with connection.cursor() as cursor:
        cursor.execute("SELECT private_key FROM credentials_certificate")
        assert "PRIVATE KEY" not in cursor.fetchone()[0]
    assert Certificate.objects.get().private_key.reveal() == key
    event = AuditEvent.objects.get(action="certificate.create")
    assert "PRIVATE KEY" not in str(event.after)
    assert list(gateway_certificates(gateway=gateway, now=datetime.now(UTC))) == [certificate]
    assert list(gateway_certificates(gateway=gateway, now=certificate.not_after)) == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("material", "message"),
    [
        (lambda: (self_signed("a.test")[0], self_signed("a.test")[1]), "does not belong"),
        (lambda: ("not pem", self_signed("a.test")[1]), "not PEM certificates"),
        (lambda: (self_signed("a.test")[0], "not a key"), "not an unencrypted PEM private key"),
        (lambda: self_signed("a.test", not_before=datetime.now(UTC) - timedelta(days=60)), "not now"),
    ],
)
def test_unusable_material_is_refused_with_the_reason(material, message):
    chain, key = material()
    with pytest.raises(ValidationError, match=message):
        certificate_add(gateway=GatewayFactory(), chain_pem=chain, private_key_pem=key, actor=ACTOR)
    assert not Certificate.objects.exists()


def _request(*certificates: TlsCertificate) -> RenderRequest:
    compiled = policy(route("portal.example.test", "/", rule("public")))
    return RenderRequest(compiled, "edge", "127.0.0.1:8443", (), "policyhub", certificates=certificates)


@pytest.mark.parametrize("kind", ["haproxy", "lighttpd"])
def test_tls_configs_pass_the_real_checkers_and_keep_keys_private(kind):
    rendered = render(kind, _request(tls_certificate("portal.example.test")))
    assert validate(rendered).ok, validate(rendered).problems
    key_files = [name for name, file in rendered.files.items() if b"PRIVATE KEY" in file.content]
    assert key_files
    assert all(rendered.files[name].mode == 0o600 for name in key_files)


def test_haproxy_serves_several_certificates_and_lighttpd_refuses_what_it_cannot_choose_between():
    two = (tls_certificate("a.example.test"), tls_certificate("b.example.test"))
    config = render("haproxy", _request(*two)).files["haproxy.cfg"].content.decode()
    assert "ssl crt tls/certificate-1.pem crt tls/certificate-2.pem ssl-min-ver TLSv1.2" in config
    with pytest.raises(RenderError, match="one certificate"):
        render("lighttpd", _request(*two))


@pytest.mark.parametrize("kind", ["haproxy", "lighttpd"])
def test_a_key_that_is_not_the_certificates_is_refused_at_render(kind):
    mismatched = dataclasses.replace(
        tls_certificate("a.example.test"), private_key=Secret(self_signed("a.example.test")[1])
    )
    with pytest.raises(RenderError, match="does not belong"):
        render(kind, _request(mismatched))
