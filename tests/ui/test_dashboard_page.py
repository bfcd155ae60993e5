"""The dashboard's credentials: each identity source's as "set, last changed …" (from the audit log,
which names the field but masks its value), each gateway's signing keys per purpose with the time the
active one started signing, and whether its SSH client key is set; never a secret, and in a fixed
number of queries whatever the number of sources and gateways."""

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.core.actors import Actor
from apps.credentials.choices import KeyPurpose
from apps.credentials.models import SigningKey
from apps.credentials.services import signing_key_activate, signing_key_generate
from apps.gateways.services import ssh_target_set
from apps.identities.services import identity_source_create, identity_source_update
from apps.ui.selectors import dashboard
from apps.ui.templatetags.ui import timestamp
from tests.factories import GatewayFactory
from tests.support.sshd import key_pair
from tests.ui.pages import signed_in

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")
DAY_ONE = datetime(2025, 1, 15, 12, 30, tzinfo=UTC)


@pytest.fixture
def now_is(monkeypatch):
    def set_now(moment: datetime) -> None:
        monkeypatch.setattr(timezone, "now", lambda: moment)

    return set_now


def _source(name: str, credential: str = ""):
    slug = name.lower().replace(" ", "-")
    kind, url = ("okta", f"https://{slug}.okta.test") if credential else ("local", "")
    return identity_source_create(actor=ACTOR, name=name, slug=slug, kind=kind, base_url=url, credential=credential)


def _rotated_keys(gateway) -> dict[str, SigningKey]:
    """Edge-token keys: 'first' signed from day one, 'second' from day three (first retiring since),
    'third' published next; a signed-link key signing from day one."""
    keys = {"first": signing_key_generate(gateway=gateway, actor=ACTOR)}
    signing_key_activate(key=keys["first"], actor=ACTOR)
    keys["link"] = signing_key_generate(gateway=gateway, actor=ACTOR, purpose=KeyPurpose.SIGNED_LINK)
    signing_key_activate(key=keys["link"], actor=ACTOR)
    keys["second"] = signing_key_generate(gateway=gateway, actor=ACTOR)
    return keys


def _credentials_cell(page: str, name: str) -> str:
    """The text of the credentials cell shown with the dashboard's source or gateway ``name``."""
    after_name = page[page.index(f"<td>{name} <small>") :]
    cell = re.search(r'<td[^>]*class="credentials?">(.*?)</td>', after_name, re.S)[1]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", cell)).split())


def test_a_source_credential_shows_as_set_with_the_time_it_last_changed_never_its_value(client, now_is):
    now_is(DAY_ONE)
    okta = _source("Acme Okta", credential='{"token": "okta-token-one"}')
    _source("Local")
    now_is(DAY_ONE + timedelta(days=2))
    identity_source_update(source=okta, actor=ACTOR, data={"credential": '{"token": "okta-token-two"}'})
    now_is(DAY_ONE + timedelta(days=5))
    identity_source_update(source=okta, actor=ACTOR, data={"sync_interval_minutes": 60})  # not the credential
    now_is(DAY_ONE + timedelta(days=7))
    signed_in(client, "auditor")

    page = client.get("/ui/").content.decode()

    assert _credentials_cell(page, "Acme Okta") == "credential set, last changed 2025-01-17 12:30 UTC (5 days ago)"
    assert f"credential set, last changed {timestamp(DAY_ONE + timedelta(days=2))}" in page
    assert _credentials_cell(page, "Local") == "no credential"
    assert "okta-token" not in page


def test_a_gateway_shows_its_keys_per_purpose_and_whether_its_ssh_client_key_is_set(client, now_is):
    now_is(DAY_ONE)
    gateway = GatewayFactory(name="edge-a", deploy_directory="/srv/policyhub/edge-a")
    keys = _rotated_keys(gateway)
    now_is(DAY_ONE + timedelta(days=2))
    signing_key_activate(key=keys["second"], actor=ACTOR)
    third = signing_key_generate(gateway=gateway, actor=ACTOR)
    host, client_key = key_pair(), key_pair()
    ssh_target_set(
        gateway=gateway, host="gw-a.example.test", username="deploy", known_host=host.public_line,
        private_key=client_key.private_openssh, actor=ACTOR,
    )  # fmt: skip
    GatewayFactory(name="edge-b")  # never deployed: no keys, deployed locally
    now_is(DAY_ONE + timedelta(days=3))
    signed_in(client, "auditor")

    page = client.get("/ui/").content.decode()

    first, second, link = keys["first"].kid, keys["second"].kid, keys["link"].kid
    assert _credentials_cell(page, "edge-a") == (
        f"edge-token: active key {second}, rotated 2025-01-17 12:30 UTC (1 day ago) "
        f"(next {third.kid}; retiring {first}) "
        f"signed-link: active key {link}, rotated 2025-01-15 12:30 UTC (3 days ago) "
        "SSH deploy@gw-a.example.test:22: client key set"
    )
    assert _credentials_cell(page, "edge-b") == "no signing keys yet: its first deploy makes them"
    for secret in (
        *(key.private_material.reveal() for key in SigningKey.objects.all()),
        *client_key.private_openssh.splitlines()[1:-1],
    ):
        assert secret not in page


def test_the_dashboard_reads_in_the_same_queries_for_one_source_and_gateway_as_for_many(client):
    def add(n: int) -> None:
        _source(f"Okta {n}", credential=f'{{"token": "t{n}"}}')
        gateway = GatewayFactory(name=f"edge-{n}")
        _rotated_keys(gateway)
        ssh_target_set(
            gateway=gateway, host=f"gw-{n}.example.test", username="deploy", known_host=key_pair().public_line,
            private_key=key_pair().private_openssh, actor=ACTOR,
        )  # fmt: skip

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            shown = dashboard()
        assert all(status.credential_set for status in shown.sources)
        assert all(status.credentials.ssh_client_key_set for status in shown.gateways)
        return len(captured)

    add(1)
    one = queries()
    for n in range(2, 6):
        add(n)

    assert queries() == one
