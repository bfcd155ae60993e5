"""factory-boy factories for rows a test needs but does not test (writes under test use services)."""

import factory
from django.utils import timezone

from apps.gateways.choices import DeploymentState, DeploymentTrigger
from apps.gateways.models import Deployment
from apps.identities.choices import IdentityKind, SourceKind
from apps.identities.models import Group, Identity, IdentitySource, Membership
from apps.policies.choices import GatewayKind
from apps.policies.models import Application, Gateway, Role, RoleMapping, Route


class IdentitySourceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = IdentitySource

    name = factory.Sequence(lambda n: f"Okta org {n}")
    slug = factory.Sequence(lambda n: f"okta-{n}")
    kind = SourceKind.OKTA
    base_url = factory.Sequence(lambda n: f"https://org{n}.okta.example")


class IdentityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Identity

    source = factory.SubFactory(IdentitySourceFactory)
    external_id = factory.Sequence(lambda n: f"00u{n:017d}")
    username = factory.Sequence(lambda n: f"user{n}@example.test")
    email = factory.Sequence(lambda n: f"person{n}@example.test")
    kind = IdentityKind.PERSON


class GroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Group

    source = factory.SubFactory(IdentitySourceFactory)
    external_id = factory.Sequence(lambda n: f"00g{n:017d}")
    name = factory.Sequence(lambda n: f"group-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    identity = factory.SubFactory(IdentityFactory)
    group = factory.SubFactory(GroupFactory, source=factory.SelfAttribute("..identity.source"))


class RoleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Role

    slug = factory.Sequence(lambda n: f"role-{n}")


class ApplicationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Application

    name = factory.Sequence(lambda n: f"Application {n}")
    slug = factory.Sequence(lambda n: f"app-{n}")


class GatewayFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Gateway

    name = factory.Sequence(lambda n: f"edge-{n}")
    kind = GatewayKind.HAPROXY
    listen_address = "127.0.0.1:8443"
    public_hostnames = factory.LazyFunction(list)


class RouteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Route

    gateway = factory.SubFactory(GatewayFactory)
    application = factory.SubFactory(ApplicationFactory)
    host = factory.Sequence(lambda n: f"app{n}.example.test")
    path_prefix = "/"
    upstream_url = "http://127.0.0.1:9000"


class RoleMappingFactory(factory.django.DjangoModelFactory):
    """A group mapping: members of a new group get a new role."""

    class Meta:
        model = RoleMapping

    role = factory.SubFactory(RoleFactory)
    match_kind = "group"
    group = factory.SubFactory(GroupFactory)


class DeploymentFactory(factory.django.DjangoModelFactory):
    """A deployment that went live (give ``snapshot``); pass ``state`` for one in another state."""

    class Meta:
        model = Deployment

    gateway = factory.SubFactory(GatewayFactory)
    trigger = DeploymentTrigger.CLI
    actor = "cli:test"
    state = DeploymentState.LIVE
    finished_at = factory.LazyFunction(timezone.now)
