"""The Celery application and the one place where periodic work is scheduled."""

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "policyhub.settings")

app = Celery("policyhub")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    # Walk the audit hash chain every night at 03:17 UTC (off the hour so installations
    # sharing a database server do not all verify at once); a broken chain logs an error.
    "audit-chain-verify": {
        "task": "apps.audit.tasks.audit_chain_verify_task",
        "schedule": crontab(hour="3", minute="17"),
    },
    # Does every gateway still run what its last live deployment put there? Drift is stored on
    # the gateway and audited when the verdict changes.
    "gateways-drift-check": {
        "task": "apps.gateways.tasks.gateways_drift_check_task",
        "schedule": crontab(minute="*/5"),
    },
    # Keys move with deploys; a gateway nobody deploys still gets one before a key it trusts
    # expires, and a day after a key stopped signing (so it leaves the proxy).
    "gateways-keys-renew": {
        "task": "apps.gateways.tasks.gateways_keys_renew_task",
        "schedule": crontab(minute="7-59/15"),
    },
    # Deploys prove what changed since the live release (and a sample); every night each gateway's
    # live snapshot is proven in full. A failure is logged and makes the next deploy prove everything.
    "gateways-full-proof": {
        "task": "apps.gateways.tasks.gateways_live_prove_task",
        "schedule": crontab(hour="2", minute="41"),
    },
    # Sources with a sync interval are synced when it has passed since their last run started.
    "identity-sources-sync": {
        "task": "apps.identities.tasks.identity_sources_sync_due_task",
        "schedule": 60.0,
        "options": {"expires": 60},
    },
    # Hand workers the deployments nobody works on: requested while the broker was unreachable, or
    # interrupted by a worker's death. A sweep not run within its minute is dropped: the next one comes.
    "deployments-sweep": {
        "task": "apps.gateways.tasks.deployments_sweep_task",
        "schedule": 60.0,
        "options": {"expires": 60},
    },
    # Drop revocation entries no token needs any more, and hand over lists a gateway has not taken up.
    "revocations-sweep": {
        "task": "apps.gateways.tasks.revocations_sweep_task",
        "schedule": 60.0,
        "options": {"expires": 60},
    },
    # Hand workers the webhook deliveries nobody works on: accepted while the broker was unreachable,
    # lost with a worker, or failed (retried up to inbox.MAX_ATTEMPTS times).
    "inbound-events-sweep": {
        "task": "apps.webhooks.tasks.inbound_events_sweep_task",
        "schedule": 60.0,
        "options": {"expires": 60},
    },
}
