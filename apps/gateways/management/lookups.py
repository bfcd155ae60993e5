"""What the gateway commands look up by name, refused with a CommandError that says what exists."""

from django.core.management.base import CommandError

from apps.gateways.selectors import deployable_gateways
from apps.policies.models import Gateway, PolicySnapshot


def gateway_named(name: str) -> Gateway:
    try:
        return Gateway.objects.get(name=name)
    except Gateway.DoesNotExist:
        names = ", ".join(Gateway.objects.values_list("name", flat=True)) or "none"
        raise CommandError(f"no gateway named {name!r} (gateways: {names})") from None


def gateways_named_or_deployable(names: list[str]) -> list[Gateway]:
    """The named gateways, or every deployable one when none is named."""
    gateways = [gateway_named(name) for name in names] or list(deployable_gateways())
    if not gateways:
        raise CommandError("no gateway has a deploy directory: set one to make a gateway deployable")
    return gateways


def refused(gateway: Gateway, error: Exception) -> CommandError:
    """A CommandError naming the gateway and what refused the work (a ValidationError's messages)."""
    return CommandError(f"{gateway.name}: " + " ".join(getattr(error, "messages", [str(error)])))


def snapshot_by_prefix(prefix: str) -> PolicySnapshot:
    matches = list(PolicySnapshot.objects.filter(sha256__startswith=prefix.lower())[:2])
    if len(matches) != 1:
        raise CommandError(f"--snapshot {prefix!r} matches {len(matches)} snapshots; give more of the sha256")
    return matches[0]
