"""Policy written through the services, as an operator would, for tests on live gateways: a gateway
with active keys of every purpose, identity sources, members of groups, roles granted to groups, and
routes with an application each."""

from datetime import timedelta

from django.utils import timezone

from apps.core.actors import Actor
from apps.credentials.choices import KeyPurpose
from apps.credentials.services import signing_key_activate, signing_key_generate
from apps.identities import services as identities
from apps.identities.choices import IdentityKind, SourceKind
from apps.policies import services as policies
from apps.policies.choices import MatchKind

ACTOR = Actor.system("scenario")


def scene_gateway(kind: str, name: str, *hosts: str, listen_address: str = "127.0.0.1:8443"):
    gateway = policies.gateway_create(
        actor=ACTOR, name=name, kind=kind, listen_address=listen_address, public_hostnames=hosts
    )
    # keys made an hour ago, so that a link issued in the past (and expired by now) can be signed
    for purpose in KeyPurpose:
        key = signing_key_generate(
            gateway=gateway, actor=ACTOR, purpose=purpose, now=timezone.now() - timedelta(hours=1)
        )
        signing_key_activate(key=key, actor=ACTOR)
    return gateway


def scene_source(kind: str, slug: str):
    return identities.identity_source_create(
        actor=ACTOR, name=slug, slug=slug, kind=kind,
        base_url="" if kind == SourceKind.LOCAL else f"https://{slug}.example.test",
    )  # fmt: skip


def scene_member(source, username: str, group=None, *, kind=IdentityKind.PERSON, **fields):
    identity = identities.identity_create(
        actor=ACTOR, source=source, external_id=username, username=username, kind=kind, **fields
    )
    if group is not None:
        identities.membership_add(actor=ACTOR, identity=identity, group=group)
    return identity


def scene_role_for_group(slug: str, group):
    role = policies.role_create(actor=ACTOR, slug=slug)
    policies.role_mapping_create(actor=ACTOR, role=role, match_kind=MatchKind.GROUP, group=group)
    return role


def scene_route(gateway, host: str, prefix: str, upstream_url: str = "http://127.0.0.1:9", **options):
    slug = "app-" + "-".join(part for part in prefix.split("/") if part)
    application = policies.application_create(actor=ACTOR, name=f"{host}{prefix}", slug=slug)
    return policies.route_create(
        actor=ACTOR, gateway=gateway, application=application, host=host, path_prefix=prefix,
        upstream_url=upstream_url, **options,
    )  # fmt: skip
