"""Database helpers shared by services."""

import json
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from django.db import connection, models, transaction

T = TypeVar("T")
LOCK_POLL_SECONDS = 0.02


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


class LockBusy(Exception):
    """Someone else holds the lock; transient: try again later."""


@contextmanager
def advisory_lock(
    lock_class: int, key: int, *, busy: type[LockBusy], message: str, wait_seconds: float = 0
) -> Iterator[None]:
    """One holder of (``lock_class``, ``key``) at a time across every process, enforced by
    PostgreSQL: a session advisory lock taken at once (or within ``wait_seconds``, for locks held
    only briefly) or refused with ``busy(message)``. Held outside any transaction, so the holder's
    writes commit as they happen (others can follow its progress, and the audit chain's lock is
    never held for the whole work). SQLite, the single-process demo, has no such lock."""
    if connection.vendor != "postgresql":
        yield
        return
    deadline = time.monotonic() + wait_seconds
    with connection.cursor() as cursor:
        while True:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [lock_class, key])
            if cursor.fetchone()[0]:
                break
            if time.monotonic() >= deadline:
                raise busy(message)
            time.sleep(LOCK_POLL_SECONDS)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [lock_class, key])


def advisory_lock_held(lock_class: int, key: int) -> bool:
    """Whether some session holds (``lock_class``, ``key``) of ``advisory_lock`` now; asked without
    taking it, so the holder is never disturbed. SQLite has no such locks: never."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        # the two-key form is listed with classid, objid and objsubid 2 (PostgreSQL's pg_locks docs)
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND classid::int8 = %s AND objid::int8 = %s AND objsubid = 2)",
            [lock_class, key],
        )
        return cursor.fetchone()[0]


def rows_insert(model: type[models.Model], fields: list[str], rows: Iterable[tuple], *, batch_size: int = 2_000) -> int:
    """Insert ``rows`` (values in ``fields`` order) without building a model instance per row:
    PostgreSQL's COPY, some hundred thousand rows a second, where ``bulk_create`` manages a tenth
    of that; elsewhere (SQLite, the demo) ``bulk_create``. No signals, no defaults: give every
    column that has no database default. Returns the number of rows inserted."""
    if connection.vendor != "postgresql":
        objects = [model(**dict(zip(fields, row, strict=True))) for row in rows]
        return len(model.objects.bulk_create(objects, batch_size=batch_size))
    columns = [model._meta.get_field(name) for name in fields]
    as_json = [isinstance(column, models.JSONField) for column in columns]
    statement = (
        f"COPY {model._meta.db_table} ({', '.join(connection.ops.quote_name(c.column) for c in columns)}) FROM STDIN"
    )
    count = 0
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([json.dumps(v) if j and v is not None else v for v, j in zip(row, as_json, strict=True)])
            count += 1
    return count
