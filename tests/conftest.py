"""Suite-wide fixtures: the throwaway PostgreSQL every database test runs on (and, from the plugin,
real Celery workers), an identity the token tests share, API clients by hub role, and a gateway live on a
running proxy."""

import pytest

from tests.support.postgres import PostgresUnavailable, start_postgres

pytest_plugins = ["tests.support.celery_worker"]


@pytest.fixture(scope="session")
def postgres_server():
    try:
        server = start_postgres()
    except PostgresUnavailable as error:
        pytest.exit(str(error), returncode=3)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(postgres_server):
    from django.conf import settings

    settings.DATABASES["default"].update(HOST=postgres_server.host, PORT=str(postgres_server.port))


@pytest.fixture
def airflow_admin():
    """okta:00u1abc, with the roles airflow-admin and viewer through a group."""
    # imported here: the root conftest loads before Django is set up
    from apps.core.actors import Actor
    from apps.policies import services as policy_services
    from tests.factories import GroupFactory, IdentityFactory, IdentitySourceFactory, RoleFactory

    source = IdentitySourceFactory(slug="okta")
    identity = IdentityFactory(source=source, external_id="00u1abc", username="alice@example.test")
    group = GroupFactory(source=source, name="platform-admins")
    identity.groups.add(group)
    for slug in ("airflow-admin", "viewer"):
        policy_services.role_mapping_create(
            actor=Actor.system("test"), role=RoleFactory(slug=slug), match_kind="group", group=group
        )
    return identity


@pytest.fixture
def as_role():
    """``as_role(role, name=…)`` -> an API client sending a new service token of that hub role."""
    from rest_framework.test import APIClient

    from apps.api.services import service_token_create
    from apps.core.actors import Actor

    def client(role: str, name: str = "") -> APIClient:
        issued = service_token_create(name=name or f"{role}-bot", role=role, identity=None, actor=Actor.system("test"))
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext.reveal()}")
        return api

    return client


@pytest.fixture(params=["haproxy", "lighttpd"])
def stage(request, db, tmp_path):
    """A gateway of each kind live on a running proxy, to deploy to (tests/support/deploy.py)."""
    from tests.support.deploy import deploy_stage  # the root conftest loads before Django is set up

    with deploy_stage(request.param, tmp_path / "deploy") as staged:
        yield staged
