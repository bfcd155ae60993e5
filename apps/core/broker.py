"""Handing work to Celery when the broker may be down: the caller's row stays where it is, and a
periodic sweep hands it over once the broker is back."""

import logging

from kombu.exceptions import OperationalError as BrokerUnreachable

logger = logging.getLogger(__name__)


def task_hand_over(task, *args, **kwargs) -> str:
    """``task.delay(*args, **kwargs)``; "" when handed over, else why not (the broker is unreachable)."""
    try:
        task.delay(*args, **kwargs)
    except BrokerUnreachable as error:
        logger.warning("%s%s not handed over: the broker is unreachable (%s)", task.name, args, error)
        return f"the broker is unreachable ({error})"
    return ""
