"""Concurrent writers never fork the chain: appends are serialized by a PostgreSQL advisory lock."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, transaction

from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_chain_verify
from apps.audit.services import audit_record
from apps.core.actors import Actor

pytestmark = pytest.mark.slow


def _writer(worker: int) -> None:
    try:
        for step in range(15):
            with transaction.atomic():
                audit_record(actor=Actor.system(f"w{worker}"), action=f"step.{step}")
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_parallel_transactions_keep_one_chain():
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(_writer, range(4)))
    assert AuditEvent.objects.count() == 60
    assert AuditEvent.objects.values("prev_hash").distinct().count() == 60  # no two rows share a predecessor
    assert audit_chain_verify().intact
