"""Suite-wide fixtures: the throwaway PostgreSQL every database test runs on."""

import pytest

from tests.support.postgres import PostgresUnavailable, start_postgres


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
