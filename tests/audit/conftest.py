"""Audit test helpers: rewriting history the way only a database superuser could."""

from django.db import connection


def tamper(sql: str, params: list) -> None:
    """What an attacker with database superuser rights could do: bypass the trigger and rewrite."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_auditevent_append_only")
        cursor.execute(sql, params)
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_auditevent_append_only")
