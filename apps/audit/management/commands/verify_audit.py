"""``manage.py verify_audit``: walk the hash chain and name the first broken row."""

from django.core.management.base import BaseCommand, CommandError

from apps.audit.selectors import audit_chain_verify


class Command(BaseCommand):
    help = "Verify the audit log's hash chain; exits non-zero and names the first broken row."

    def handle(self, *args, **options):
        result = audit_chain_verify()
        if not result.intact:
            raise CommandError(
                f"audit chain broken at event #{result.first_broken_id}: {result.problem} "
                f"({result.checked} events before it verified)"
            )
        self.stdout.write(self.style.SUCCESS(f"audit chain intact: {result.checked} events verified"))
