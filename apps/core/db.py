"""Database helpers shared by services."""

from collections.abc import Callable
from typing import TypeVar

from django.db import connection, transaction

T = TypeVar("T")


def read_consistently(read: Callable[[], T]) -> T:
    """Run ``read`` in one read-only REPEATABLE READ transaction, so all its queries see one state.

    Only an outermost transaction can choose its isolation level; inside a caller's transaction the
    read simply shares it. Never write audit rows in such a transaction: the audit chain must see the
    latest row after taking its lock, which REPEATABLE READ's frozen view would hide.
    """
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return read()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        return read()
