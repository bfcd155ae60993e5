"""The demo story (``make demo``'s) with what it lacks for a walk through every page of the UI: an
SSH target holding a client key, a deploy request waiting for a decision, and a live deployment on
each gateway (so Explain renders the config lines enforcing a route)."""

from django.contrib.auth import get_user_model
from django.utils import timezone

from apps.core.actors import Actor
from apps.core.demo import demo_seed
from apps.gateways.models import DeployRequest
from apps.gateways.services import ssh_target_set
from apps.policies.models import Gateway, PolicySnapshot
from tests.factories import DeploymentFactory
from tests.support.sshd import key_pair

ACTOR = Actor.system("demo-pages")


def demo_with_everything() -> None:
    snapshot = PolicySnapshot.objects.get(sha256=demo_seed(actor=ACTOR).snapshot_sha256)
    gateway = Gateway.objects.order_by("name").first()
    ssh_target_set(
        gateway=gateway, host="gw.example.test", username="deploy", known_host=key_pair().public_line,
        private_key=key_pair().private_openssh, actor=ACTOR,
    )  # fmt: skip
    requester = get_user_model().objects.create_user("requester", first_name="Rita")
    deploy_request = DeployRequest.objects.create(snapshot=snapshot, requested_by=requester, reason="the demo")
    deploy_request.gateways.add(gateway)
    for each in Gateway.objects.all():
        messages = [{"at": timezone.now().isoformat(), "level": "info", "text": f"{each.name} is live"}]
        DeploymentFactory(gateway=each, snapshot=snapshot, messages=messages)
