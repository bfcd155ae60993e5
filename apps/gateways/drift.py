"""Drift detection: does a gateway still run exactly what its last live deployment put there?

Three things are compared, each read from the gateway itself: which release ``current`` names
(through the transport), the sha256 of every file of that release (someone may have edited one in
place), and what the proxy's well-known endpoint answers (someone may have started it on other
files, or a reload may never have happened). Each check is stored on the gateway's ``GatewayDrift``
row; a change of verdict (drift found, changed, or gone) is an audit event.
"""

from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.actors import Actor
from apps.gateways.models import Deployment, GatewayDrift
from apps.gateways.probe import ProbeTarget, well_known_answer
from apps.gateways.selectors import deployable_gateways, deployment_live, gateway_serves_tls
from apps.gateways.transports import Transport, TransportError, transport_for
from apps.policies.models import Gateway


def _file_findings(expected: dict[str, str], found: dict[str, str]) -> list[str]:
    changed = [name for name in sorted(expected) if name in found and found[name] != expected[name]]
    findings = [f"{name} was changed on the gateway" for name in changed]
    findings += [f"{name} is missing on the gateway" for name in sorted(set(expected) - set(found))]
    findings += [f"{name} was added on the gateway" for name in sorted(set(found) - set(expected))]
    return findings


def _release_findings(transport: Transport, deployment: Deployment) -> list[str]:
    try:
        active = transport.active()
        if active != deployment.release:
            return [f"current names release {active or 'none'}, not {deployment.release} (deployment {deployment.pk})"]
        return _file_findings(deployment.file_hashes, transport.file_hashes(deployment.release))
    except (TransportError, OSError) as error:
        return [f"the gateway's files could not be read: {error}"]


def _proxy_findings(gateway: Gateway, deployment: Deployment, host: str) -> list[str]:
    tls = gateway_serves_tls(gateway=gateway)
    target = ProbeTarget.for_listen_address(gateway.listen_address, tls=tls, gateway_host=host)
    try:
        status, answered = well_known_answer(target)
    except OSError as error:
        return [f"the proxy at {target.host}:{target.port} did not answer ({error})"]
    wanted = {"deployment": str(deployment.pk), "snapshot": deployment.snapshot.sha256}
    if status != 200 or not isinstance(answered, dict):
        return [f"the proxy's well-known endpoint answered HTTP {status}"]
    if {key: answered.get(key) for key in wanted} != wanted:
        served = f"deployment {answered.get('deployment')!r}, snapshot {str(answered.get('snapshot'))[:12]}"
        expected = f"deployment {deployment.pk} (snapshot {deployment.snapshot.sha256[:12]})"
        return [f"the proxy serves {served}, not {expected}"]
    return []


def gateway_drift_check(*, gateway: Gateway, actor: Actor) -> GatewayDrift:
    """Compare the gateway with its last live deployment, store the verdict, audit a changed one."""
    deployment = deployment_live(gateway=gateway)
    findings = []
    if deployment is not None:
        transport = transport_for(gateway)
        try:
            findings = _release_findings(transport, deployment)
        finally:
            transport.close()
        findings += _proxy_findings(gateway, deployment, transport.host)
    with transaction.atomic():
        previous = GatewayDrift.objects.select_for_update().filter(gateway=gateway).first()
        before = previous.findings if previous else []
        drift, _ = GatewayDrift.objects.update_or_create(
            gateway=gateway, defaults={"checked_at": timezone.now(), "deployment": deployment, "findings": findings}
        )
        if findings != before:
            audit_record(
                actor=actor,
                action="gateway.drift" if findings else "gateway.drift_resolved",
                object_type="policies.gateway",
                object_id=gateway.pk,
                before={"findings": before},
                after={"findings": findings, "deployment": deployment.pk if deployment else None},
            )
    return drift


def gateways_drift_check(*, actor: Actor) -> list[GatewayDrift]:
    """Check every deployable gateway; one that cannot be checked is a finding, never an abort."""
    return [gateway_drift_check(gateway=gateway, actor=actor) for gateway in deployable_gateways()]
