"""read_consistently: one stable, read-only view for multi-query reads such as snapshot building."""

import pytest
from django.db import connection, transaction

from apps.audit.models import AuditEvent
from apps.core.actors import Actor
from apps.core.db import read_consistently
from apps.policies.services import snapshot_build
from tests.factories import RouteFactory


def _isolation_and_read_only() -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('transaction_isolation'), current_setting('transaction_read_only')")
        return cursor.fetchone()


@pytest.mark.django_db(transaction=True)
def test_an_outermost_read_gets_repeatable_read_and_read_only():
    assert read_consistently(_isolation_and_read_only) == ("repeatable read", "on")


@pytest.mark.django_db(transaction=True)
def test_inside_a_callers_transaction_the_read_shares_it():
    with transaction.atomic():
        assert read_consistently(_isolation_and_read_only) == ("read committed", "off")


@pytest.mark.django_db(transaction=True)
def test_snapshot_build_reads_consistently_and_writes_its_audit_row_afterwards():
    RouteFactory()
    snapshot = snapshot_build(actor=Actor.system("test"))
    assert snapshot.route_count == 1
    assert AuditEvent.objects.get(action="snapshot.build").after["sha256"] == snapshot.sha256
