import pytest
from django.db import connection

from apps.audit.services import audit_record
from apps.core.actors import Actor


@pytest.mark.django_db
def test_pg():
    assert connection.vendor == "postgresql"
    e = audit_record(actor=Actor.system(), action="x.y")
    assert e.hash
