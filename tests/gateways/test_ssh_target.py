"""A gateway's SSH settings: checked and normalized at the boundary, encrypted and audited without
the private key, never shown by the admin, and what makes ``transport_for`` pick the ssh transport."""

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, Encoding, PrivateFormat
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.core.actors import Actor
from apps.gateways.models import SshTarget
from apps.gateways.probe import ProbeTarget
from apps.gateways.services import ssh_target_set
from apps.gateways.ssh_keys import host_key_fingerprint
from apps.gateways.transports import LocalTransport, SshTransport, transport_for
from tests.factories import GatewayFactory
from tests.support.sshd import key_pair

ACTOR = Actor.system("test")


def _set(gateway, **changes) -> SshTarget:
    host, client = changes.pop("host_pair", None) or key_pair(), changes.pop("client_pair", None) or key_pair()
    values = {"host": "gw1.example.test", "username": "deploy", "known_host": host.public_line + " root@gw1",
              "private_key": client.private_openssh}  # fmt: skip
    return ssh_target_set(gateway=gateway, actor=ACTOR, **{**values, **changes})


@pytest.mark.django_db
def test_settings_are_stored_normalized_with_the_private_key_encrypted_and_audited_masked():
    gateway = GatewayFactory(deploy_directory="/srv/policyhub/edge")
    host, client = key_pair(), key_pair()
    target = _set(gateway, host="GW1.Example.Test", port=2222, host_pair=host, client_pair=client)

    target.refresh_from_db()
    assert (target.host, target.port, target.username) == ("gw1.example.test", 2222, "deploy")
    assert target.known_host == host.public_line  # the comment is dropped
    assert target.private_key.reveal() == client.private_openssh
    with connection.cursor() as cursor:
        cursor.execute("SELECT private_key FROM gateways_sshtarget")
        assert "PRIVATE KEY" not in cursor.fetchone()[0]
    event = AuditEvent.objects.get(action="sshtarget.create")
    assert event.after["host"] == "gw1.example.test"
    assert event.after["private_key"].startswith("********")
    assert "PRIVATE KEY" not in str(event.after)
    assert client.private_openssh not in repr(target.private_key)


@pytest.mark.django_db
def test_changing_the_settings_keeps_the_stored_private_key_unless_a_new_one_is_given():
    gateway, client = GatewayFactory(), key_pair()
    _set(gateway, client_pair=client)
    updated = ssh_target_set(
        gateway=gateway, host="192.0.2.7", username="deploy", known_host=key_pair().public_line, actor=ACTOR
    )
    assert SshTarget.objects.count() == 1
    assert updated.host == "192.0.2.7"
    assert SshTarget.objects.get().private_key.reveal() == client.private_openssh
    event = AuditEvent.objects.get(action="sshtarget.update")
    assert set(event.after) == {"host", "known_host"}


def _encrypted_private_key() -> str:
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"passphrase")).decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"known_host": "ssh-ed25519 not-base64"}, "known_host", "not an OpenSSH public key line"),
        ({"known_host": "PRIVATE"}, "known_host", "not a private key or several lines"),
        ({"private_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----"},
         "private_key", "not an OpenSSH or PEM private key"),
        ({"private_key": "encrypted"}, "private_key", "protected by a passphrase"),
        ({"private_key": ""}, "private_key", "cannot be blank"),
        ({"host": "not a host"}, "host", "RFC 1123"),
        ({"port": 0}, "port", "greater than or equal to 1"),
        ({"username": "Root;rm"}, "username", "POSIX user name"),
    ],
)  # fmt: skip
def test_unusable_settings_are_refused_by_field_without_quoting_a_key(changes, field, message):
    if changes.get("private_key") == "encrypted":
        changes["private_key"] = _encrypted_private_key()
    if changes.get("known_host") == "PRIVATE":
        changes["known_host"] = key_pair().private_openssh
    with pytest.raises(ValidationError) as refused:
        _set(GatewayFactory(), **changes)
    assert message in " ".join(refused.value.message_dict[field])
    keys = [changes[name] for name in ("known_host", "private_key") if changes.get(name)]
    quoted = [line for key in keys for line in key.splitlines() if "-----" not in line]
    assert not [line for line in quoted if len(line) > 8 and line in str(refused.value)]
    assert not SshTarget.objects.exists()


@pytest.mark.django_db
def test_transport_for_picks_ssh_for_a_gateway_with_ssh_settings_and_local_otherwise():
    local_gateway = GatewayFactory(deploy_directory="/srv/policyhub/a")
    remote_gateway = GatewayFactory(deploy_directory="/srv/policyhub/b")
    host = key_pair()
    _set(remote_gateway, host="198.51.100.4", port=2200, host_pair=host)

    local = transport_for(local_gateway)
    remote = transport_for(remote_gateway)

    assert isinstance(local, LocalTransport) and local.directory == "/srv/policyhub/a" and local.host == ""
    assert isinstance(remote, SshTransport)
    assert (remote.directory, remote.host, remote.where) == ("/srv/policyhub/b", "198.51.100.4",
                                                            "ssh deploy@198.51.100.4:2200")  # fmt: skip
    assert remote.settings.host_key == host.public_line
    assert "PRIVATE" not in repr(remote) and "PRIVATE" not in repr(remote.settings)
    remote.close()  # never connected: nothing to close, and no error


def test_a_gateway_listening_on_every_address_is_probed_at_its_host():
    assert ProbeTarget.for_listen_address("0.0.0.0:8443", tls=True, gateway_host="gw1.example.test") == ProbeTarget(
        "gw1.example.test", 8443, True
    )
    assert ProbeTarget.for_listen_address("[::]:80", tls=False, gateway_host="192.0.2.7").host == "192.0.2.7"
    assert ProbeTarget.for_listen_address("0.0.0.0:80", tls=False).host == "127.0.0.1"  # on this host
    assert ProbeTarget.for_listen_address("[::]:80", tls=False).host == "::1"
    assert (
        ProbeTarget.for_listen_address("192.0.2.9:80", tls=False, gateway_host="gw1.example.test").host == "192.0.2.9"
    )


# Admin ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_admin_never_shows_the_private_key_and_keeps_it_when_left_blank(admin_client):
    gateway, client = GatewayFactory(), key_pair()
    target = _set(gateway, client_pair=client)
    change = reverse("admin:gateways_sshtarget_change", args=[target.pk])

    page = admin_client.get(change).content.decode()
    listing = admin_client.get(reverse("admin:gateways_sshtarget_changelist")).content.decode()

    body = client.private_openssh.splitlines()[1]
    assert body not in page and body not in listing
    assert host_key_fingerprint(target.known_host) in listing
    form = {"gateway": gateway.pk, "host": "gw2.example.test", "port": 22, "username": "deploy",
            "known_host": target.known_host, "private_key": ""}  # fmt: skip
    assert admin_client.post(change, form).status_code == 302
    target.refresh_from_db()
    assert target.host == "gw2.example.test"
    assert target.private_key.reveal() == client.private_openssh
    assert AuditEvent.objects.filter(action="sshtarget.update", actor="user:admin").exists()


@pytest.mark.django_db
def test_the_admin_refuses_a_key_it_cannot_use(admin_client):
    form = {"gateway": GatewayFactory().pk, "host": "gw1.example.test", "port": 22, "username": "deploy",
            "known_host": key_pair().public_line, "private_key": "not a key"}  # fmt: skip
    response = admin_client.post(reverse("admin:gateways_sshtarget_add"), form)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["private_key"] == [
        "The client key is not an OpenSSH or PEM private key."
    ]
    assert not SshTarget.objects.exists()
