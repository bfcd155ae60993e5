"""Each sender's handler (and accept hook), handed to the inbox's registry by ``handlers_register``
(called from ``WebhooksConfig.ready``, so web and worker processes hold the same registry)."""

from apps.webhooks.choices import Sender
from apps.webhooks.inbox import accept_hook_register, handler_register


def handlers_register() -> None:
    from apps.webhooks.handlers import buildkite, okta, space  # they import models: only once apps are ready

    handler_register(Sender.SPACE, space.space_event_handle)
    accept_hook_register(Sender.SPACE, space.automation_accept)
    handler_register(Sender.BUILDKITE, buildkite.buildkite_event_handle)
    handler_register(Sender.OKTA, okta.okta_event_hook_handle)
