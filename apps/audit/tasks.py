"""Periodic audit work."""

import logging

from celery import shared_task

from apps.audit.selectors import audit_chain_verify

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, soft_time_limit=1800, time_limit=1900)
def audit_chain_verify_task() -> dict:
    """Nightly chain check; a broken chain is logged at ERROR for alerting."""
    result = audit_chain_verify()
    if not result.intact:
        logger.error("audit chain broken at event #%s: %s", result.first_broken_id, result.problem)
    return {"intact": result.intact, "checked": result.checked, "first_broken_id": result.first_broken_id}
