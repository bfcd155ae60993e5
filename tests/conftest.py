"""Suite-wide fixtures: the throwaway PostgreSQL every database test runs on (and, from the plugin,
real Celery workers)."""

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
