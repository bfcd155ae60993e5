"""Each sender's handler (and accept hook), registered with the inbox when the app is ready."""

from apps.webhooks.choices import Sender
from apps.webhooks.inbox import accept_hook_register, handler_register


def handlers_register() -> None:
    from apps.webhooks.handlers import buildkite, space

    handler_register(Sender.SPACE, space.space_event_handle)
    accept_hook_register(Sender.SPACE, space.automation_accept)
    handler_register(Sender.BUILDKITE, buildkite.buildkite_event_handle)
