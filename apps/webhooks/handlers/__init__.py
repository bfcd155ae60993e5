"""Each sender's handler, handed to the inbox's registry by ``handlers_register`` (called from
``WebhooksConfig.ready``, so web and worker processes hold the same registry)."""

from apps.webhooks.choices import Sender
from apps.webhooks.handlers import okta
from apps.webhooks.inbox import handler_register


def handlers_register() -> None:
    handler_register(Sender.OKTA, okta.okta_event_hook_handle)
