"""Settings of the Celery workers the tests start (``tests.support.celery_worker``): the production
settings, from the environment the fixture passes, except that Redis hands out a dead worker's
unacknowledged task after seconds instead of an hour, checking every second, so a test can watch
a task redelivered."""

from policyhub.settings import *  # noqa: F403
from policyhub.settings import CELERY_BROKER_TRANSPORT_OPTIONS

REDELIVERY_SECONDS = 5

CELERY_BROKER_TRANSPORT_OPTIONS = {
    **CELERY_BROKER_TRANSPORT_OPTIONS,
    "visibility_timeout": REDELIVERY_SECONDS,
    "unacked_restore_interval": 1,  # seconds between checks for messages out longer than that
    "unacked_restore_throttle": 1,  # every check looks (the default looks at one in ten)
}
